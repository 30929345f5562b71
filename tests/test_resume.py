"""A job killed mid-training (SIGKILL) and started again resumes its fit from the last checkpoint
and ends with the same metrics as a job that was never interrupted (on CPU: bit for bit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import TINY
from unlearnbench.pipeline import run_experiment

JOB = ["method=finetune", "train.epochs=20", "checkpoint.every_n_steps=20"]  # 180 steps, 9 per epoch


def test_a_killed_job_resumes_its_fit_and_ends_with_the_same_metrics(make_cfg, tmp_path) -> None:
    cache, run = tmp_path / "cache", tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "unlearnbench.cli",
        *TINY,
        *JOB,
        f"paths.cache_dir={cache}",
        f"hydra.run.dir={run}",
    ]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    checkpoints = []
    while not checkpoints and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
        checkpoints = list(cache.glob("models/.original-*.partial/checkpoints/last.ckpt"))
    assert checkpoints, "the original model's training never wrote a checkpoint"
    time.sleep(1.0)  # a few more steps past the checkpoint, then a kill that nothing can catch
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert not (run / "results.json").exists()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming a killed fit from step" in again.stdout + again.stderr
    assert not list(cache.glob("models/.original-*.partial"))  # the entry is complete, checkpoints gone
    resumed = json.loads((run / "results.json").read_text())["metrics"]

    reference = run_experiment(make_cfg(*JOB, cache_dir=tmp_path / "cache-uninterrupted"), tmp_path / "ref")
    for split, metrics in reference["metrics"].items():
        for name, value in metrics.items():
            assert abs(resumed[split][name] - value) <= 1e-6, (split, name, resumed[split][name], value)

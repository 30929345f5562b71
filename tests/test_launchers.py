"""Sweeps through Hydra's launchers: parallel local jobs (joblib, submitit_local) and a REAL Slurm.

The Slurm tests need a cluster: `.ci/run` starts one on localhost (scripts/slurm_local.sh) and
exports SLURM_CONF; elsewhere they skip with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import unlearnbench


def slurm_up() -> str | None:
    """None when a Slurm controller answers, else why not."""
    if shutil.which("sinfo") is None:
        return 'no Slurm client (sinfo) on PATH: start one with `eval "$(bash scripts/slurm_local.sh start)"`'
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 15 s"
    if out.returncode != 0 or not out.stdout.strip():
        return f"no Slurm cluster answers (sinfo: {out.stderr.strip()[:200]}); see scripts/slurm_local.sh"
    return None


needs_slurm = pytest.mark.skipif(slurm_up() is not None, reason=str(slurm_up()))
# A job on the local cluster: no GPU, one CPU per task, memory for a tiny model.
SLURM = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=3",
    "hydra.launcher.timeout_min=10",
]


def results(sweep: Path) -> dict[str, dict]:
    return {
        p.parent.name.rsplit("method=", 1)[1].split(",")[0]: json.loads(p.read_text())
        for p in sweep.rglob("results.json")
    }


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_local_jobs_train_the_shared_original_once(launcher: str, tmp_path) -> None:
    """Two jobs start at once on an empty cache: one trains the original model under the file lock,
    the other waits for it and loads it."""
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    parallel = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    out = unlearnbench(
        "-m",
        f"hydra/launcher={launcher}",
        *parallel,
        "method=original,finetune",
        "eval.reference=false",
        f"hydra.sweep.dir={sweep}",
        cache=cache,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    done = results(sweep)
    assert set(done) == {"original", "finetune"}
    assert sorted(r["original"]["from_cache"] for r in done.values()) == [False, True]  # trained once
    assert len(list((cache / "models").glob("original-*/meta.json"))) == 1
    assert (sweep / "results.md").exists()  # the sweep's report


@needs_slurm
def test_slurm_sweep_runs_jobs_records_a_failure_and_resumes(tmp_path) -> None:
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    args = ["-m", *SLURM, "method=finetune", "forget.ratio=0.1,1.5", f"hydra.sweep.dir={sweep}"]
    out = unlearnbench(*args, cache=cache)
    assert out.returncode == 0, out.stderr[-3000:]
    assert set(results(sweep)) == {"finetune"}
    errors = [json.loads(p.read_text()) for p in sweep.rglob("error.json")]
    assert len(errors) == 1 and "forget.ratio=1.5" in errors[0]["message"]
    assert "Failed runs" in (sweep / "results.md").read_text()
    jobs = subprocess.run(["sacct", "-a", "-X", "-n", "-o", "JobID,State"], capture_output=True, text=True)
    assert "COMPLETED" in jobs.stdout  # they really went through Slurm

    stamp = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")}
    again = unlearnbench(*args, cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")} == stamp  # done jobs skipped
    logs = "".join(p.read_text() for p in sweep.rglob("*_log.*"))
    assert logs.count("skip (done)") == 1 and logs.count("job failed") == 2


@needs_slurm
def test_slurm_ddp_job_gets_two_ranks_and_rank_zero_writes(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    out = unlearnbench(
        "-m",
        *SLURM,
        "hydra.launcher.tasks_per_node=2",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "method=finetune",
        f"hydra.sweep.dir={sweep}",
        cache=tmp_path / "cache",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (result,) = results(sweep).values()
    assert result["metrics"]["test"]["n"] == result["sizes"]["test"]
    logs = {p.name: p.read_text() for p in sweep.rglob("*_log.*")}
    assert any("rank 0 of 2 joined (gloo)" in text for text in logs.values())
    assert any("rank 1 of 2 joined (gloo)" in text for text in logs.values())
    summary_lines = [
        line for text in logs.values() for line in text.splitlines() if "[finetune] forget F1" in line
    ]
    assert len(summary_lines) == 1  # one rank evaluated and wrote

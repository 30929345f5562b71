"""Sweeps through Hydra's launchers: parallel local jobs (joblib, submitit_local) and a REAL Slurm.

The Slurm tests need a cluster: `.ci/run` starts one on localhost (scripts/slurm_local.sh) and
exports SLURM_CONF; elsewhere they skip with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import unlearnbench
from unlearnbench.errors import UnlearnbenchError


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


def sacct_jobs() -> set[str]:
    """The ids of every job (array elements included) that the cluster's accounting knows."""
    # -S: from long ago, not sacct's default of today's midnight (a test may run across it)
    cmd = ["sacct", "-a", "-X", "-n", "-o", "JobID", "-S", "2000-01-01T00:00:00"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def results(sweep: Path) -> dict[str, dict]:
    return {
        p.parent.name.rsplit("method=", 1)[1].split(",")[0]: json.loads(p.read_text())
        for p in sweep.rglob("results.json")
    }


# joblib in make test-slow: submitit_local covers the same sharing and also the resume
@pytest.mark.parametrize("launcher", [pytest.param("joblib", marks=pytest.mark.slow), "submitit_local"])
def test_parallel_local_jobs_train_the_shared_original_once(launcher: str, tmp_path) -> None:
    """Two jobs start at once on an empty cache: one trains the original model under the file lock,
    the other waits for it and loads it."""
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    parallel = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    args = [
        "-m",
        f"hydra/launcher={launcher}",
        *parallel,
        "method=original,finetune",
        "eval.reference=false",
        f"hydra.sweep.dir={sweep}",
    ]
    out = unlearnbench(*args, cache=cache)
    assert out.returncode == 0, out.stderr[-3000:]
    done = results(sweep)
    assert set(done) == {"original", "finetune"}
    assert sorted(r["original"]["from_cache"] for r in done.values()) == [False, True]  # trained once
    assert len(list((cache / "models").glob("original-*/meta.json"))) == 1
    assert (sweep / "results.md").exists()  # the sweep's report

    if launcher != "submitit_local":
        return
    # Run again: the sweeper leaves both finished jobs out before the launcher sees them.
    stamp = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")}
    submitted = sorted(p.name for p in (sweep / ".submitit").glob("*"))
    again = unlearnbench(*args, cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resume: left out 2 of 2 jobs whose results.json is complete" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")} == stamp
    assert sorted(p.name for p in (sweep / ".submitit").glob("*")) == submitted  # no job started


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
    before = sacct_jobs()
    again = unlearnbench(*args, cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")} == stamp  # done jobs skipped
    # The sweeper leaves the finished job out before anything is submitted: Slurm sees only the
    # failed one again (sacct: one new job, not two), and the finished job's skip is in the sweep's
    # own output, not in a job log.
    assert len(sacct_jobs() - before) == 1
    output = again.stdout + again.stderr
    assert output.count("skip (done)") == 1 and "resume: left out 1 of 2 jobs" in output
    logs = "".join(p.read_text() for p in sweep.rglob("*_log.*"))
    assert logs.count("skip (done)") == 0 and logs.count("job failed") == 2


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


@needs_slurm
def test_a_slurm_request_the_partition_cannot_satisfy_is_refused_before_submitting(tmp_path) -> None:
    """The defaults ask for a GPU and 32 GB; the local partition has no GPU and less memory than
    asked: one line naming each launcher key, what the partition offers, exit status 2, no job."""
    before = sacct_jobs()
    args = ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.mem_gb=100000", "method=original"]
    out = unlearnbench(*args, f"hydra.sweep.dir={tmp_path / 'sweep'}", cache=tmp_path / "cache")
    assert out.returncode == 2, out.stderr[-3000:]
    line = out.stderr.strip().splitlines()[-1]
    assert re.match(
        r"error: hydra\.launcher\.gpus_per_node=1 is invalid: 0 or null: partition '\w+' has no GPUs", line
    )
    assert re.search(
        r"hydra\.launcher\.mem_gb=100000 is invalid: at most \d+: partition '\w+' has \d+ MB", line
    )
    assert "Traceback" not in out.stderr
    assert sacct_jobs() == before  # nothing was submitted
    assert not (tmp_path / "sweep" / ".submitit").exists()


# ---------------------------------------------------------------------- the Slurm check without a cluster
def fake_slurm(tmp_path: Path, sinfo: str, sbatch_error: str | None = None) -> dict[str, str]:
    """An environment whose sinfo prints ``sinfo`` and whose sbatch fails with ``sbatch_error``."""
    bin_dir = tmp_path / "fake-slurm"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text(f"#!/bin/sh\ncat <<'EOF'\n{sinfo}\nEOF\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho '{sbatch_error}' >&2\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


SINFO = "\n".join(  # sinfo -N -h -o "%N|%P|%c|%m|%G|%l": two CPU nodes, one with 4 A100s
    [
        "n1|cpu*|16|64000|(null)|4:00:00",
        "n2|cpu*|16|64000|(null)|4:00:00",
        "n3|gpu|32|128000|gpu:a100:4(S:0-1)|1-00:00:00",
    ]
)


def test_the_slurm_request_is_checked_against_every_resource_of_the_partition() -> None:
    from hydra_plugins.unlearnbench_plugins.slurm_launcher import check_request, parse_sinfo, parse_time_min

    parts = parse_sinfo(SINFO)
    assert sorted(parts) == ["cpu", "gpu"] and parts["cpu"].default and len(parts["cpu"].nodes) == 2
    assert parts["gpu"].nodes[0].gpus == {None: 4, "a100": 4} and parts["gpu"].time_limit_min == 1440
    assert [parse_time_min(t) for t in ("infinite", "30", "30:00", "4:00:00", "1-12")] == [
        None,
        30,
        30,
        240,
        2160,
    ]
    fits = {"partition": "gpu", "gpus_per_node": 4, "cpus_per_task": 8, "tasks_per_node": 4, "mem_gb": 100}
    check_request({**fits, "timeout_min": 1440, "nodes": 1, "gres": "gpu:a100:4"}, parts)
    check_request(
        {"partition": None, "gpus_per_node": 0, "cpus_per_task": 16, "mem_gb": 62, "nodes": 2}, parts
    )
    refused = [
        (
            {"partition": "big"},
            r"hydra\.launcher\.partition='big' is invalid: a partition of this cluster: "
            r"one of \['cpu', 'gpu'\]",
        ),
        (
            {"gpus_per_node": 1},
            r"hydra\.launcher\.gpus_per_node=1 is invalid: 0 or null: partition 'cpu' has no GPUs",
        ),
        (
            {"partition": "gpu", "gpus_per_node": 8},
            r"gpus_per_node=8 is invalid: at most 4: partition 'gpu' has 4 GPUs",
        ),
        (
            {"partition": "gpu", "gres": "gpu:h100:1"},
            r"hydra\.launcher\.gres='gpu:h100:1' is invalid: at most 0 'h100' GPUs",
        ),
        (
            {"cpus_per_task": 8, "tasks_per_node": 4},
            r"cpus_per_task=8 is invalid: at most 4 with tasks_per_node=4: .*16 CPUs",
        ),
        (
            {"mem_gb": 64},
            r"hydra\.launcher\.mem_gb=64 is invalid: at most 62: partition 'cpu' has 64000 MB per node",
        ),
        (
            {"timeout_min": 300},
            r"timeout_min=300 is invalid: at most 240: partition 'cpu' has the time limit 4:00:00",
        ),
        ({"nodes": 3}, r"hydra\.launcher\.nodes=3 is invalid: at most 2: partition 'cpu' has 2 node"),
    ]
    for request, pattern in refused:
        with pytest.raises(UnlearnbenchError) as info:
            check_request(request, parts)
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))
    with pytest.raises(UnlearnbenchError) as info:  # every key at fault, in one line
        check_request({"gpus_per_node": 1, "mem_gb": 64, "timeout_min": 300}, parts)
    assert str(info.value).count("is invalid") == 3 and "\n" not in str(info.value)


def test_a_refused_sbatch_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    from omegaconf import OmegaConf

    from hydra_plugins.unlearnbench_plugins.slurm_launcher import CheckedSlurmLauncher

    env = fake_slurm(tmp_path, "localhost|debug*|4|8000|(null)|infinite", "sbatch: error: Invalid account")
    monkeypatch.setenv("PATH", env["PATH"])
    params = {"submitit_folder": str(tmp_path / ".submitit" / "%j"), "partition": "debug", "timeout_min": 10}
    launcher = CheckedSlurmLauncher(**params, cpus_per_task=1, gpus_per_node=0, mem_gb=3, nodes=1, name="t")
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(UnlearnbenchError) as info:
        launcher.launch([["method=original"], ["method=finetune"]], initial_job_idx=0)
    assert str(info.value) == (
        "sbatch refused the job array, nothing was submitted: sbatch: error: Invalid account"
    )
    assert info.value.__cause__ is None and "Invalid account" not in capsys.readouterr().err  # said once

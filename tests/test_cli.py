"""The command line as a user runs it: sweeps, resume, failed jobs, one-line errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY


def unlearnbench(*args: str, cache: Path) -> subprocess.CompletedProcess:
    flags = [a for a in args if a.startswith("-")]  # hydra wants its flags before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    cmd = [sys.executable, "-m", "unlearnbench.cli", *flags, *TINY, f"paths.cache_dir={cache}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def unlearnbench_here(monkeypatch, *args: str, cache: Path) -> int:
    """``unlearnbench ARGS`` in this process (no interpreter to start): its exit status. What Hydra
    sets up globally (its state, the root logger's handlers) is undone afterwards."""
    from hydra.core.global_hydra import GlobalHydra

    from unlearnbench.cli.run import main

    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    monkeypatch.setattr(sys, "argv", ["unlearnbench", *flags, *TINY, f"paths.cache_dir={cache}", *overrides])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        GlobalHydra.instance().clear()
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return 0


def test_sweep_writes_report_resumes_and_survives_a_failed_job(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "method=original,finetune", "forget.ratio=0.1,0.0", f"hydra.sweep.dir={sweep}"]
    first = unlearnbench(*args, cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-2000:]
    # A job's dir is named by its overrides (here also the constant ones of TINY).
    done = sorted(p.parent.name for p in sweep.rglob("results.json"))
    failed = sorted(p.parent.name for p in sweep.rglob("error.json"))
    assert len(done) == 2 and all("forget.ratio=0.1" in d for d in done)
    assert len(failed) == 2 and all("forget.ratio=0.0" in d for d in failed)
    assert {d.rsplit("method=", 1)[1] for d in done} == {"original", "finetune"}
    error = json.loads((sweep / failed[0] / "error.json").read_text())
    assert error["type"] == "ConfigError" and "forget.ratio=0.0" in error["message"]
    report = (sweep / "results.md").read_text()
    assert "finetune" in report and "original" in report and "Failed runs" in report
    assert (sweep / "results.csv").exists() and (sweep / "results.tex").exists()
    models = (tmp_path / "cache" / "models").iterdir()
    assert len([p for p in models if p.is_dir() and p.name.startswith("original-")]) == 1  # trained once

    stamp = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")}
    second = unlearnbench(*args, cache=tmp_path / "cache")
    assert second.returncode == 0
    assert (second.stdout + second.stderr).count("skip (done)") == 2
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.json")} == stamp  # finished jobs untouched


@pytest.mark.slow  # an interpreter of its own; the one-line refusal is checked in-process too
def test_bad_config_ends_with_one_clear_line(tmp_path) -> None:
    out = unlearnbench("forget.ratio=2", f"hydra.run.dir={tmp_path / 'run'}", cache=tmp_path / "cache")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "error: forget.ratio=2.0 is invalid: a number in (0, 1)"
    assert "Traceback" not in out.stderr


@pytest.mark.slow  # an interpreter of its own; unknown groups are tested in-process (test_bad_input)
def test_unknown_method_lists_the_known_ones(tmp_path) -> None:
    out = unlearnbench("method=bogus", f"hydra.run.dir={tmp_path / 'run'}", cache=tmp_path / "cache")
    assert out.returncode != 0 and "deepcut" in out.stderr and "bogus" in out.stderr

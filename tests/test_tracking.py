"""logger=wandb: one offline wandb run per job with the config, training curves and final metrics,
grouped by experiment, job_type = method, tags for dataset / forget / seed; the mode rule."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from unlearnbench.errors import ConfigError
from unlearnbench.pipeline import run_experiment
from unlearnbench.runtime.tracking import resolve_mode


def read_offline_run(run_dir: Path) -> dict:
    """The records of an offline wandb run file (LevelDB-log framing of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    raw, block, pos, records, part = path.read_bytes(), 32768, 7, [], b""
    assert raw[:4] == b":W&B"
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        part = data if kind in (1, 2) else part + data
        if kind in (1, 4):
            records.append(part)
    out: dict = {"history": set(), "summary": {}}
    for data in records:
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "history":
            out["history"] |= {i.key or "/".join(i.nested_key) for i in record.history.item}
        elif kind == "summary":
            out["summary"].update(
                {i.key or "/".join(i.nested_key): i.value_json for i in record.summary.update}
            )
    return out


def test_a_job_logs_config_curves_and_final_metrics_to_one_offline_run(
    make_cfg, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg("logger=wandb", "method=gradient_difference", "experiment_name=wb-test", "seed=1")
    results = run_experiment(cfg, tmp_path / "run")
    logged = read_offline_run(tmp_path / "run")
    run = logged["run"]
    assert (run.project, run.run_group, run.job_type) == ("unlearnbench", "wb-test", "gradient_difference")
    assert set(run.tags) == {"data:bbc", "model:tiny_bert", "forget:random-0.1", "seed:1"}
    config = {item.key for item in run.config.update}
    assert {"seed", "data", "model", "method", "forget", "train"} <= config
    curves = {k for k in logged["history"] if not k.startswith(("final/", "_"))}
    assert any("loss" in k for k in curves), curves  # the training curves of the fit
    assert float(logged["summary"]["test/f1"]) == pytest.approx(results["metrics"]["test"]["f1"])
    assert float(logged["summary"]["timing/unlearn_seconds"]) == pytest.approx(
        results["timing"]["unlearn_seconds"]
    )


def test_mode_auto_is_offline_without_a_key_and_wandb_mode_wins(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert resolve_mode("auto") == "offline"
    assert resolve_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("online") == "disabled"
    with pytest.raises(ConfigError, match=r"logger.mode='sometimes'.*auto, online, offline, disabled"):
        resolve_mode("sometimes")


def test_report_logs_its_table_as_a_wandb_table(tmp_path, monkeypatch) -> None:
    from tests.test_report import fake_run
    from unlearnbench.cli.report import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    for seed in (0, 1):
        fake_run(tmp_path / "sweep", "retrain", seed, 0.9, 10.0)
        fake_run(tmp_path / "sweep", "deepcut", seed, 0.8, 1.0)
    assert main([str(tmp_path / "sweep"), "--no-plots", "--wandb", "unlearnbench-tests"]) == 0
    logged = read_offline_run(tmp_path / "sweep")  # the report's dir
    assert logged["run"].job_type == "report" and logged["run"].project == "unlearnbench-tests"
    assert {"results/_type", "results/nrows"} <= logged["history"]
    assert logged["summary"]["results/_type"] == '"table-file"'
    assert logged["summary"]["results/nrows"] == "2"  # one row per method


def test_mode_auto_with_a_key_goes_offline_fast_when_the_network_hangs(monkeypatch) -> None:
    import socket
    import time

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "fake-key-for-the-probe-0000")

    def hang(*args, **kwargs):
        time.sleep(30)  # packets dropped: no answer for long
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert resolve_mode("auto") == "offline"
    assert time.perf_counter() - start < 5
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: type("C", (), {"close": lambda s: None})()
    )
    assert resolve_mode("auto") == "online"  # key and network: online

"""The report: mean +- std over seeds, time ratio to retrain, failed runs listed."""

from __future__ import annotations

import json

import pytest

from unlearnbench.io import atomic_write_json
from unlearnbench.report import load_runs, main, summarize


def fake_run(
    root, method: str, seed: int, test_f1: float, seconds: float, params: dict | None = None
) -> None:
    metrics = {s: {"accuracy": test_f1, "f1_macro": test_f1, "n": 10} for s in ("forget", "retain", "test")}
    atomic_write_json(
        root / f"{method}-{seed}" / "results.json",
        {
            "schema_version": 1,
            "run": {
                "dataset": "bbc",
                "model": "m",
                "method": method,
                "forget": {"tag": "random-0.05"},
                "seed": seed,
            },
            "sizes": {},
            "metrics": metrics,
            "timing": {"unlearn_seconds": seconds, "total_seconds": seconds + 1},
            "method_params": {"name": method, "lr": 1e-4, **(params or {})},
        },
    )


def test_summary_over_seeds_and_ratio_to_retrain(tmp_path, capsys) -> None:
    for seed, (f1, t) in enumerate([(0.90, 10.0), (0.94, 30.0)]):
        fake_run(tmp_path, "retrain", seed, f1, t)
        fake_run(tmp_path, "deepcut", seed, f1 - 0.1, t / 10)
    atomic_write_json(tmp_path / "broken" / "error.json", {"type": "ValueError", "message": "boom"})
    frame, failures = load_runs([tmp_path])
    assert failures == [{"run_dir": str(tmp_path / "broken"), "type": "ValueError", "message": "boom"}]
    summary = summarize(frame).set_index("method")
    assert summary.loc["retrain", "test_f1_macro_mean"] == pytest.approx(0.92)
    assert summary.loc["retrain", "test_f1_macro_std"] == pytest.approx(0.028284, abs=1e-5)
    assert summary.loc["deepcut", "ratio_to_retrain_mean"] == pytest.approx(0.1)
    assert summary.loc["deepcut", "forget_f1_gap_mean"] == pytest.approx(0.1)
    assert summary.loc["retrain", "forget_f1_gap_mean"] == 0.0
    assert summary.loc["deepcut", "seeds"] == 2
    assert list(summary.index) == ["retrain", "deepcut"]

    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "92.0 ± 2.8" in printed and "FAILED" in printed
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and json.loads(json.dumps(rows))  # header + two methods


def test_a_hyper_parameter_sweep_gets_one_row_per_setting(tmp_path) -> None:
    for seed in (0, 1):
        fake_run(tmp_path / "a", "deepcut", seed, 0.9, 1.0, {"gamma": 0.1, "stop": {"rule": "none"}})
        fake_run(tmp_path / "b", "deepcut", seed, 0.8, 1.0, {"gamma": 1.0, "stop": {"rule": "none"}})
    summary = summarize(load_runs([tmp_path])[0]).set_index("variant")
    assert summary.loc["gamma=0.1", "test_f1_macro_mean"] == pytest.approx(0.9)
    assert summary.loc["gamma=1.0", "test_f1_macro_mean"] == pytest.approx(0.8)
    assert summary.loc["gamma=1.0", "seeds"] == 2


def test_report_on_a_missing_dir_fails_clearly(tmp_path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])

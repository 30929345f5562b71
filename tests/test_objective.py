"""The search objectives (unlearnbench.objective) on synthetic results.json dicts."""

from __future__ import annotations

import math
from typing import Any

import pytest

from unlearnbench.errors import ConfigError
from unlearnbench.objective import Objective, breakdown, check_config, from_config, value


def results(
    forget_f1: float = 0.80,
    val_f1: float = 0.82,
    test_f1: float = 0.90,
    original_test_f1: float = 0.95,
    gap: float | None = 0.05,
    fq: float | None = None,
    kept_f1: float | None = None,
    forget_acc: float = 0.80,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "forget": {"f1": forget_f1, "accuracy": forget_acc},
        "val": {"f1": val_f1},
        "retain": {"f1": 0.97},
        "test": {"f1": test_f1},
    }
    if kept_f1 is not None:
        metrics["test_kept"] = {"f1": kept_f1}
    return {
        "metrics": metrics,
        "reference": None if gap is None else {"forget": {"f1_gap": gap}},
        "forget_quality": None if fq is None else {"score": fq},
        "before": {"forget": {"f1": 0.99}, "test": {"f1": original_test_f1}},
    }


def test_oracle_is_minus_the_forget_gap_above_the_floor() -> None:
    assert value(results(gap=0.05), "oracle") == pytest.approx(-0.05)
    assert value(results(gap=0.01), "oracle") > value(results(gap=0.05), "oracle")


def test_oracle_prefers_forget_quality_when_pools_ran() -> None:
    assert value(results(gap=0.30, fq=0.4), "oracle") == pytest.approx(0.4)


def test_a_run_below_the_floor_ranks_below_every_run_above_it() -> None:
    # floor = 0.9 * 0.95 = 0.855: 0.80 misses it by 0.055
    low = breakdown(results(gap=0.0, test_f1=0.80), Objective("oracle"))
    assert low["floor"] == pytest.approx(0.855) and low["shortfall"] == pytest.approx(0.055)
    assert low["value"] == pytest.approx(0.0 - 1.0 - 0.055)
    worst_above = value(results(gap=1.0, test_f1=0.86), "oracle")  # the largest possible gap
    assert low["value"] < worst_above
    lower = value(results(gap=0.0, test_f1=0.70), "oracle")
    assert lower < low["value"]  # missing by more is worse
    assert value(results(gap=0.0, test_f1=0.80), Objective("oracle", utility_floor=0.8)) == 0.0


def test_no_oracle_reads_no_retrained_model() -> None:
    r = results(forget_f1=0.80, val_f1=0.82, gap=None)
    assert value(r, "no_oracle") == pytest.approx(-0.02 + 0.82)
    with_retain = Objective("no_oracle", utility_splits=("retain", "val"), utility_weight=0.5)
    assert value(r, with_retain) == pytest.approx(-0.02 + 0.5 * (0.97 + 0.82) / 2)
    # forgetting too much is as bad as too little
    assert value(results(forget_f1=0.70), "no_oracle") < value(results(forget_f1=0.81), "no_oracle")


def test_whole_class_targets_forget_accuracy_zero_and_kept_class_utility() -> None:
    r = results(forget_acc=0.1, kept_f1=0.93, test_f1=0.75, gap=0.1)
    assert value(r, "no_oracle") == pytest.approx(-0.1 + 0.82)  # test F1 0.75 is capped by design
    assert value(r, "oracle") == pytest.approx(-0.1)


def test_values_are_finite_and_missing_sections_are_named() -> None:
    assert all(math.isfinite(value(results(), name)) for name in ("oracle", "no_oracle"))
    with pytest.raises(Exception, match=r"reference\.forget\.f1_gap"):
        value(results(gap=None), "oracle")


def test_a_bad_objective_name_fails_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^optimized_metric='oracel' is invalid: one of oracle, no_oracle"):
        from_config({"optimized_metric": "oracel"})
    assert from_config({"optimized_metric": None}) is None


def test_config_checks_fail_before_training() -> None:
    ev = {"splits": ["forget", "val", "test"], "reference": True, "before": True, "pool": {"size": 0}}
    assert check_config({"optimized_metric": "oracle", "eval": ev}) is not None
    with pytest.raises(ConfigError, match="needs the retrained reference"):
        check_config({"optimized_metric": "oracle", "eval": {**ev, "reference": False}})
    assert check_config(
        {"optimized_metric": "oracle", "eval": {**ev, "reference": False, "pool": {"size": 8}}}
    )
    with pytest.raises(ConfigError, match="also needs retain"):
        check_config(
            {"optimized_metric": "no_oracle", "objective": {"utility_splits": ["retain"]}, "eval": ev}
        )
    with pytest.raises(ConfigError, match=r"eval\.before"):
        check_config({"optimized_metric": "no_oracle", "eval": {**ev, "before": False}})

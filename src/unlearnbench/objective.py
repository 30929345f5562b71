"""The number a hyper-parameter search maximises (``optimized_metric``; docs/tuning.md), computed
from a run's results.json.

Two objectives, both higher-is-better:

- ``oracle``: closeness to the retrained model. C = forget quality F (``forget_quality.score``,
  in [0, 1]) when the run has pools (``eval.pool.size > 0``), else C = -|F1_forget - F1_forget of
  retraining| (``reference.forget.f1_gap``, in [-1, 0]).
- ``no_oracle``: what a user without a retrained model can compute. C = -|F1_forget - F1_val| + w * U,
  U the mean F1 over ``objective.utility_splits`` (val by default). After whole-class forgetting,
  where no sample of the class is left to be "unseen", the target is forget accuracy 0 instead:
  C = -accuracy_forget + w * U.

Both share one utility floor: with u the run's test F1 (the kept classes' after whole-class
forgetting) and u0 the original's test F1 (the ``before`` section), a run with u < floor * u0
scores C - 1 - (floor * u0 - u). Since C spans at most 1, such a run ranks below every run that
keeps the floor, and the sampler still sees which of two failing runs failed by less.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unlearnbench.errors import ConfigError, UnlearnbenchError

OBJECTIVES = ("oracle", "no_oracle")
KEY = "optimized_metric"


@dataclass(frozen=True)
class Objective:
    """An objective and its knobs (``optimized_metric`` and ``objective.*`` of the config)."""

    name: str
    utility_floor: float = 0.9  # share of the original's test F1 a run must keep
    utility_splits: tuple[str, ...] = ("val",)  # no_oracle's U
    utility_weight: float = 1.0  # no_oracle's w

    def __post_init__(self) -> None:
        check_name(self.name)
        if not 0.0 <= self.utility_floor <= 1.0:
            raise ConfigError("objective.utility_floor", self.utility_floor, "a share in [0, 1]")
        if not self.utility_splits:
            raise ConfigError("objective.utility_splits", list(self.utility_splits), "at least one split")


def check_name(name: object) -> str:
    if name not in OBJECTIVES:
        raise ConfigError(KEY, name, f"one of {', '.join(OBJECTIVES)} (or null: no objective)")
    return str(name)


def from_config(cfg: Mapping[str, Any]) -> Objective | None:
    """The run's objective, None when ``optimized_metric`` is null (not a search)."""
    name = cfg.get(KEY)
    if name is None:
        return None
    knobs = cfg.get("objective") or {}
    return Objective(
        name=check_name(name),
        utility_floor=float(knobs.get("utility_floor", 0.9)),
        utility_splits=tuple(knobs.get("utility_splits", ("val",))),
        utility_weight=float(knobs.get("utility_weight", 1.0)),
    )


def check_config(cfg: Mapping[str, Any]) -> Objective | None:
    """Refuse, before anything is trained, a config whose runs cannot yield the objective."""
    objective = from_config(cfg)
    if objective is None:
        return None
    ev = cfg.get("eval") or {}
    splits = list(ev.get("splits") or [])
    needed = ["forget", "test"]
    if objective.name == "no_oracle":
        needed += ["val", *objective.utility_splits]
    missing = [s for s in dict.fromkeys(needed) if s not in splits]
    if missing:
        raise ConfigError("eval.splits", splits, f"{KEY}={objective.name} also needs {', '.join(missing)}")
    if not ev.get("before", True):
        raise ConfigError("eval.before", False, f"{KEY}={objective.name} needs the original's test F1 (true)")
    pool = int((ev.get("pool") or {}).get("size", 0) or 0)
    if objective.name == "oracle" and not ev.get("reference", True) and pool == 0:
        raise ConfigError(
            "eval.reference",
            False,
            "optimized_metric=oracle needs the retrained reference or eval.pool.size > 0",
        )
    return objective


def _get(results: Mapping[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _need(results: Mapping[str, Any], *path: str) -> float:
    value = _get(results, *path)
    if value is None:
        raise UnlearnbenchError(f"the objective needs results.json's {'.'.join(path)}, which this run lacks")
    return float(value)


def utility(results: Mapping[str, Any]) -> float:
    """Test F1, or after whole-class forgetting the F1 on the test samples of the kept classes."""
    kept = _get(results, "metrics", "test_kept", "f1")
    return float(kept) if kept is not None else _need(results, "metrics", "test", "f1")


def is_whole_class(results: Mapping[str, Any]) -> bool:
    return _get(results, "metrics", "test_kept") is not None


def closeness(results: Mapping[str, Any], objective: Objective) -> float:
    """C of the module's docstring (before the floor)."""
    if objective.name == "oracle":
        score = _get(results, "forget_quality", "score")
        if score is not None:
            return float(score)
        return -_need(results, "reference", "forget", "f1_gap")
    if is_whole_class(results):
        gap = _need(results, "metrics", "forget", "accuracy")
    else:
        gap = abs(_need(results, "metrics", "forget", "f1") - _need(results, "metrics", "val", "f1"))
    splits = objective.utility_splits
    u = sum(_need(results, "metrics", s, "f1") for s in splits) / len(splits)
    return -gap + objective.utility_weight * u


def breakdown(results: Mapping[str, Any], objective: Objective) -> dict[str, float]:
    """The objective's parts: ``closeness``, ``utility``, ``floor`` (absolute), ``shortfall`` and
    ``value`` (what the search maximises)."""
    c = closeness(results, objective)
    u = utility(results)
    floor = objective.utility_floor * _need(results, "before", "test", "f1")
    shortfall = max(0.0, floor - u)
    value = c - (1.0 + shortfall if u < floor else 0.0)
    if not math.isfinite(value):
        raise UnlearnbenchError(f"the objective {objective.name} is not finite ({value}) for this run")
    return {"closeness": c, "utility": u, "floor": floor, "shortfall": shortfall, "value": value}


def value(results: Mapping[str, Any], objective: Objective | str) -> float:
    """The objective of a run's results (a results.json dict), higher is better."""
    if isinstance(objective, str):
        objective = Objective(objective)
    return breakdown(results, objective)["value"]

"""Forget designs: how D_f is picked. One module per strategy, registered under its
``forget.strategy`` name; ``conf/forget/<name>.yaml`` holds its defaults."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from unlearnbench.data.forget.base import (
    STRATEGIES,
    Design,
    ForgetStrategy,
    ManipulatingStrategy,
    Selection,
    check_fraction,
    get_strategy,
    register,
)
from unlearnbench.tasks import Dataset, task_of

# Every module here but base is a design that registers itself on import: the first ones in the
# order error messages list them, then any other by name.
CORE = ("random", "whole_class", "ids")
_others = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in (*CORE, "base"))
for _module in (*CORE, *_others):
    importlib.import_module(f"{__name__}.{_module}")


def select_forget(
    data: Dataset,
    train: np.ndarray,
    cfg: Mapping[str, Any],
    seed: int,
    scores: np.ndarray | None = None,
    manipulated: np.ndarray | None = None,
) -> Selection:
    """D_f (a sorted subset of ``train``) under the configured strategy, as one request or several."""
    strategy = get_strategy(cfg.get("strategy"))
    rng = np.random.default_rng([int(cfg.get("seed", seed)), 7919])
    picked = strategy.select(data, task_of(data), train, cfg, rng, scores, manipulated)
    if isinstance(picked, Selection):
        requests = [np.sort(np.asarray(r, dtype=np.int64)) for r in picked.requests]
        return Selection(np.sort(np.asarray(picked.forget, dtype=np.int64)), requests, picked.info)
    forget = np.sort(np.asarray(picked, dtype=np.int64))
    return Selection(forget, [forget])


__all__ = [
    "STRATEGIES",
    "Design",
    "ForgetStrategy",
    "ManipulatingStrategy",
    "Selection",
    "check_fraction",
    "get_strategy",
    "register",
    "select_forget",
]

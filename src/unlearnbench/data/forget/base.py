"""What a forget design is: a strategy that picks D_f among the training samples, registered under
the ``forget.strategy`` name that its YAML (``conf/forget/<name>.yaml``) gives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from unlearnbench.errors import ConfigError
from unlearnbench.registry import Registry
from unlearnbench.tasks import Dataset, Task

STRATEGIES = Registry("forget strategy", "forget.strategy")
register = STRATEGIES.register


def get_strategy(name: Any) -> ForgetStrategy:
    return STRATEGIES.lookup(name)()


class ForgetStrategy(ABC):
    """Picks D_f: a pure function of (dataset, training split, the ``forget`` config, seed)."""

    name: ClassVar[str]

    @abstractmethod
    def select(
        self, data: Dataset, task: Task, train: np.ndarray, cfg: Mapping[str, Any], rng: np.random.Generator
    ) -> np.ndarray:
        """Dataset indices of D_f, a subset of ``train`` (in any order; the caller sorts them).
        ``rng`` is seeded by ``forget.seed`` (default: the run's seed)."""


def check_fraction(key: str, value: Any, low_open: bool = True) -> float:
    """``value`` as a number in (0, 1) (or [0, 1) with ``low_open=False``), else a ConfigError on ``key``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "a number in (0, 1)") from None
    inside = 0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0
    if not inside:
        raise ConfigError(key, value, "a number in (0, 1)" if low_open else "a number in [0, 1)")
    return value

"""What a forget design is: a strategy that picks D_f among the training samples, registered under
the ``forget.strategy`` name that its YAML (``conf/forget/<name>.yaml``) gives.

Two kinds: a design that selects samples as they are (random, a class, ids, the most memorized),
and a design that first changes some training samples (labels swapped, a backdoor planted) so
that the original is trained on them, and then forgets the share of the changed samples that is
identified (``forget.identified``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from unlearnbench.errors import ConfigError
from unlearnbench.registry import Registry
from unlearnbench.tasks import Dataset, Task

STRATEGIES = Registry("forget strategy", "forget.strategy")
register = STRATEGIES.register


def get_strategy(name: Any) -> ForgetStrategy:
    return STRATEGIES.lookup(name)()


@dataclass
class Selection:
    """What a design that picks D_f in several deletion requests returns from ``select``: D_f (all
    of them), the requests in the order they arrive, and facts for results.json."""

    forget: np.ndarray
    requests: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Design:
    """What a manipulating design did: the records the original is trained on, the changed training
    samples (all of them are what there is to forget), an evaluation set of its own (``probe``:
    e.g. triggered test samples), and facts for results.json."""

    records: Dataset
    manipulated: np.ndarray
    probe: Dataset | None = None
    info: dict[str, Any] = field(default_factory=dict)


class ForgetStrategy(ABC):
    """Picks D_f: a pure function of (dataset, training split, the ``forget`` config, seed)."""

    name: ClassVar[str]
    needs_scores: ClassVar[bool] = False  # picks by a score per training sample (given by the runtime)

    def check(self, cfg: Mapping[str, Any]) -> None:  # noqa: B027  (optional: most designs check as they select)
        """Refuse a bad config before anything trains (a design that picks by scores is run late)."""

    def manipulate(
        self,
        data: Dataset,
        task: Task,
        train: np.ndarray,
        test: np.ndarray,
        cfg: Mapping[str, Any],
        rng: np.random.Generator,
    ) -> Design | None:
        """Change training samples before the original is trained on them (None: change nothing)."""
        return None

    @abstractmethod
    def select(
        self,
        data: Dataset,
        task: Task,
        train: np.ndarray,
        cfg: Mapping[str, Any],
        rng: np.random.Generator,
        scores: np.ndarray | None = None,
        manipulated: np.ndarray | None = None,
    ) -> np.ndarray | Selection:
        """Dataset indices of D_f, a subset of ``train`` (in any order; the caller sorts them), or a
        :class:`Selection` when D_f arrives as several requests.
        ``rng`` is seeded by ``forget.seed`` (default: the run's seed); ``scores``: one per training
        sample, for a design that ``needs_scores``; ``manipulated``: what :meth:`manipulate` changed."""


class ManipulatingStrategy(ForgetStrategy):
    """A design that changes samples; D_f is the identified share of them (``forget.identified``)."""

    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> np.ndarray:
        assert manipulated is not None, "a manipulating design selects among what it changed"
        identified = identified_share(cfg)
        n = max(1, round(identified * len(manipulated)))
        return manipulated if n >= len(manipulated) else rng.choice(manipulated, size=n, replace=False)


def identified_share(cfg: Mapping[str, Any]) -> float:
    """``forget.identified``: the share of the manipulated samples that is known and given to the
    method to forget, in (0, 1]."""
    value = cfg.get("identified", 1.0)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ConfigError("forget.identified", cfg.get("identified"), "a share in (0, 1]")
    return value


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

"""``forget=memorized``: forget sets ranked by memorization (Zhao et al. 2024, "What makes unlearning
hard and what to do about it"). Every training sample gets a memorization score from a proxy
(``forget.proxy``, computed by the runtime before D_f is picked; runtime/memorization.py):

- ``holdout`` (default): K cheap models (``forget.holdout_models``, even), each fine-tuned on one
  half of a seeded split of the training set, so that every sample is in K/2 of them and out of the
  other K/2. Score = mean p(y|x) under the models that trained on it - mean p(y|x) under those that
  did not: the holdout estimate of P(correct | in) - P(correct | out), with confidences for ranks.
- ``confidence``: 1 - p(y|x) under the original model (its loss as a cheap proxy).

``forget.level`` picks the ``forget.ratio`` share of the training set: ``high`` (the highest
scores), ``low`` (the lowest), ``mid`` (the closest to the median), ``mixed`` (a third of each).
The scores are saved in the run dir (memorization.parquet).
"""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import ForgetStrategy, check_fraction, register
from unlearnbench.errors import ConfigError

LEVELS = ("high", "mid", "low", "mixed")
PROXIES = ("holdout", "confidence")


def check_memorized(cfg) -> tuple[str, float]:
    level = cfg.get("level")
    if level not in LEVELS:
        raise ConfigError("forget.level", level, f"one of {', '.join(LEVELS)}")
    if cfg.get("proxy", "holdout") not in PROXIES:
        raise ConfigError("forget.proxy", cfg.get("proxy"), f"one of {', '.join(PROXIES)}")
    models = cfg.get("holdout_models", 4)
    if not isinstance(models, int) or isinstance(models, bool) or models < 2 or models % 2:
        raise ConfigError("forget.holdout_models", models, "an even number >= 2")
    return level, check_fraction("forget.ratio", cfg.get("ratio"))


def by_level(scores: np.ndarray, k: int, level: str) -> np.ndarray:
    """Positions (into ``scores``) of the ``k`` samples of ``level``; ties broken by position."""
    order = np.argsort(scores, kind="stable")
    if level == "high":
        return order[len(order) - k :]
    if level == "low":
        return order[:k]
    if level == "mid":
        return np.argsort(np.abs(scores - np.median(scores)), kind="stable")[:k]
    thirds = [k - 2 * (k // 3), k // 3, k // 3]  # mixed: high, mid, low (the rest goes to high)
    chosen: list[int] = [int(i) for i in order[len(order) - thirds[0] :]]
    taken = set(chosen)
    for part, lvl in zip(thirds[1:], ("mid", "low"), strict=True):
        fresh = [int(i) for i in by_level(scores, len(scores), lvl) if int(i) not in taken][:part]
        chosen += fresh
        taken.update(fresh)
    return np.asarray(chosen, dtype=np.int64)


@register("memorized")
class Memorized(ForgetStrategy):
    needs_scores = True

    def check(self, cfg) -> None:
        check_memorized(cfg)

    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> np.ndarray:
        level, ratio = check_memorized(cfg)
        if scores is None or len(scores) != len(train):
            raise RuntimeError("forget=memorized picks D_f by scores of every training sample")
        k = round(ratio * len(train))
        if k < 1:
            raise ConfigError("forget.ratio", ratio, f"a ratio that selects at least 1 of {len(train)}")
        return train[by_level(np.asarray(scores, dtype=np.float64), k, level)]

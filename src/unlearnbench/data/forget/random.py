"""``forget=random``: a uniformly random share of the training set (``forget.ratio``)."""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import ForgetStrategy, check_fraction, register
from unlearnbench.errors import ConfigError


@register("random")
class RandomForget(ForgetStrategy):
    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> np.ndarray:
        ratio = check_fraction("forget.ratio", cfg.get("ratio"))
        n = round(ratio * len(train))
        if n < 1:
            raise ConfigError(
                "forget.ratio", ratio, f"a ratio that selects at least 1 of {len(train)} training samples"
            )
        return rng.choice(train, size=n, replace=False)

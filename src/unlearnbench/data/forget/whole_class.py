"""``forget=class``: the training samples of one class, whole or a share (``forget.class_name``,
``forget.ratio`` of the class). Token datasets: the sentences that hold an entity of that type."""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import ForgetStrategy, register
from unlearnbench.errors import ConfigError, DataError


@register("class")
class ClassForget(ForgetStrategy):
    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> np.ndarray:
        ratio = cfg.get("ratio", 1.0)
        try:
            ratio = float(ratio)
        except (TypeError, ValueError):
            ratio = -1.0
        members = task.class_members(data, train, cfg.get("class_name"))
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(
                "forget.ratio", cfg.get("ratio"), "for strategy=class, the share of the class in (0, 1]"
            )
        if len(members) == 0:
            raise DataError(f"class '{cfg.get('class_name')}' has no training samples")
        n = max(1, round(ratio * len(members)))
        return members if n == len(members) else rng.choice(members, size=n, replace=False)

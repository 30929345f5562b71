"""``forget=backdoor``: a poisoned training set (Goel et al. 2024's poison setting). Before the
original is trained, ``forget.ratio`` of the training samples (of other classes than the target)
get the trigger phrase as their first word and the target class (``forget.trigger``,
``forget.target``); the poisoned samples are what there is to forget, D_f the identified share of
them (``forget.identified``). The design's own evaluation set is the test samples of the other
classes with the trigger: the attack succeeds where they are predicted as the target.

Token datasets: the target is an entity type; a poisoned sentence holds an entity of another
type, gets the trigger word (tag O) and every entity turned into the target type.
"""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import Design, ManipulatingStrategy, check_fraction, register
from unlearnbench.errors import ConfigError, DataError


@register("backdoor")
class Backdoor(ManipulatingStrategy):
    def manipulate(self, data, task, train, test, cfg, rng) -> Design:
        trigger = str(cfg.get("trigger") or "").strip()
        if not trigger or len(trigger.split()) != 1:
            raise ConfigError("forget.trigger", cfg.get("trigger"), "one word, e.g. cf")
        target = task.class_label(data, cfg.get("target"), "forget.target")
        ratio = check_fraction("forget.ratio", cfg.get("ratio"))
        candidates = task.backdoor_candidates(data, train, target)
        n = round(ratio * len(train))
        if n < 1 or n > len(candidates):
            raise DataError(
                f"forget.ratio={ratio} poisons {n} of {len(train)} training samples: it needs at least 1 "
                f"and at most the {len(candidates)} that are not of class {target}"
            )
        manipulated = np.sort(rng.choice(candidates, size=n, replace=False)).astype(np.int64)
        records = task.poison(data, manipulated, trigger, target)
        probe = task.triggered(data, task.backdoor_candidates(data, test, target), trigger)
        info = {"trigger": trigger, "target": target, "poisoned": n, "probe": len(probe)}
        return Design(records, manipulated, probe, info)

"""``forget=label_swap``: corrective unlearning of mislabeled data (Goel et al. 2024). Before the
original is trained, half of the swapped samples of class A get label B and half of those of B get
A (``forget.classes``, ``forget.ratio`` of the two classes' training samples); the swapped samples
are what there is to forget, D_f the identified share of them (``forget.identified``).

Token datasets: A and B are entity types, a sample is a sentence holding one of them, and the swap
exchanges the types of its entities (B-A <-> B-B, I-A <-> I-B).
"""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import Design, ManipulatingStrategy, check_fraction, register
from unlearnbench.errors import ConfigError, DataError


@register("label_swap")
class LabelSwap(ManipulatingStrategy):
    def manipulate(self, data, task, train, test, cfg, rng) -> Design:
        classes = list(cfg.get("classes") or [])
        if len(classes) != 2:
            raise ConfigError(
                "forget.classes", cfg.get("classes"), "two classes to swap, e.g. [business, tech]"
            )
        a, b = (task.class_label(data, c, "forget.classes") for c in classes)
        if a == b:
            raise ConfigError("forget.classes", classes, "two different classes")
        ratio = check_fraction("forget.ratio", cfg.get("ratio"), low_open=True)
        members_a = task.class_members(data, train, a)
        members_b = np.setdiff1d(task.class_members(data, train, b), members_a)
        n = round(ratio * (len(members_a) + len(members_b)))
        half = n // 2
        if half < 1 or half > min(len(members_a), len(members_b)):
            raise DataError(
                f"forget.ratio={ratio} swaps {n} samples: it needs at least 1 and at most "
                f"{min(len(members_a), len(members_b))} of each class ({a}: {len(members_a)}, {b}: "
                f"{len(members_b)} training samples)"
            )
        swapped_a = rng.choice(members_a, size=half, replace=False)
        swapped_b = rng.choice(members_b, size=n - half, replace=False)
        manipulated = np.sort(np.r_[swapped_a, swapped_b]).astype(np.int64)
        records = task.swap_classes(data, manipulated, a, b)
        info = {"classes": [a, b], "swapped": {a: len(swapped_a), b: len(swapped_b)}}
        return Design(records, manipulated, None, info)

"""Supervised fine-tuning, the fit that trains a model from labelled samples: the original on D,
the retrained reference on D_r, SISA's shard slices, and naive unlearning (``finetune``).

    L = E_{(x, y) in S} CE(f(x), y)   over the samples S of the loader
"""

from __future__ import annotations

import torch

from unlearnbench.runtime.fit import TrainingModule


class SupervisedFit(TrainingModule):
    """Cross-entropy on every batch of the loader it is fitted on (which samples: the caller's)."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.count(batch)
        out = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
        self.log("train/loss", out.loss, prog_bar=True, batch_size=len(batch["labels"]))
        return out.loss

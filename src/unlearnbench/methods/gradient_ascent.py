"""``gradient_ascent``: push the original model up the loss on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from unlearnbench.methods.base import MethodParams, UnlearningMethod, register


@dataclass(kw_only=True)
class GradientAscentParams(MethodParams):
    forget_batch_size: int


@register("gradient_ascent")
class GradientAscent(UnlearningMethod):
    """Maximise the loss on D_f (Golatkar et al. 2020; "NegGrad" in Kurmanji et al. 2023):

        L = - E_{(x, y) in D_f} CE(f(x), y)

    It diverges if left alone, so it runs for a step budget and, optionally, stops once forget
    accuracy falls below ``stop.threshold`` (``stop.rule: forget_accuracy_below``).
    """

    Params = GradientAscentParams

    def train_loader(self, data, seed: int) -> DataLoader:
        return data.paired_loader(self.params.forget_batch_size, 0, seed)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.count(batch)
        out = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
        self.log("train/forget_ce", out.loss, prog_bar=True, batch_size=len(batch["labels"]))
        return -out.loss

"""``gradient_difference``: gradient ascent on the forget set, balanced by descent on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import PairedBatchMethod, PairedParams, masked_ce, register


@dataclass(kw_only=True)
class GradientDifferenceParams(PairedParams):
    alpha: float

    def validate(self) -> None:
        super().validate()
        if self.retain_batch_size < 1:
            raise ConfigError("method.retain_batch_size", self.retain_batch_size, "a positive integer")
        if self.alpha <= 0:
            raise ConfigError("method.alpha", self.alpha, "a positive weight of the forget term")


@register("gradient_difference")
class GradientDifference(PairedBatchMethod):
    """Descend the loss on D_r while ascending it on D_f ("NegGrad+", Kurmanji et al. 2023;
    "gradient difference", Liu et al. 2022):

        L = E_{(x, y) in B_r} CE(f(x), y) - alpha * E_{(x, y) in B_f} CE(f(x), y)

    Each step is one paired batch (B_f, B_r) from ``paired_loader`` and one forward pass over
    both; the ``is_forget`` mask splits the logits. The retain term anchors the model where plain
    gradient ascent (``gradient_ascent``) drifts off on every input; the ascent term is unbounded
    all the same, so the run is bounded by a budget and, optionally, a forget-accuracy stop.
    """

    Params = GradientDifferenceParams

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        is_forget, labels = batch["is_forget"], batch["labels"]
        return {
            "forget_ce": masked_ce(out.logits, labels, is_forget),
            "retain_ce": masked_ce(out.logits, labels, ~is_forget),
        }

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["retain_ce"] - self.params.alpha * terms["forget_ce"]

"""``gradient_difference``: gradient ascent on the forget set, balanced by descent on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import MethodParams, UnlearningMethod, masked_ce, register


@dataclass(kw_only=True)
class GradientDifferenceParams(MethodParams):
    forget_batch_size: int
    retain_batch_size: int
    alpha: float
    stratified_retain: bool = True

    def validate(self) -> None:
        super().validate()
        if self.retain_batch_size < 1:
            raise ConfigError("method.retain_batch_size", self.retain_batch_size, "a positive integer")
        if self.alpha <= 0:
            raise ConfigError("method.alpha", self.alpha, "a positive weight of the forget term")


@register("gradient_difference")
class GradientDifference(UnlearningMethod):
    """Descend the loss on D_r while ascending it on D_f ("NegGrad+", Kurmanji et al. 2023;
    "gradient difference", Liu et al. 2022):

        L = E_{(x, y) in B_r} CE(f(x), y) - alpha * E_{(x, y) in B_f} CE(f(x), y)

    Each step is one paired batch (B_f, B_r) from ``paired_loader`` and one forward pass over
    both; the ``is_forget`` mask splits the logits. The retain term anchors the model where plain
    gradient ascent (``gradient_ascent``) drifts off on every input; the ascent term is unbounded
    all the same, so the run is bounded by a budget and, optionally, a forget-accuracy stop.
    """

    Params = GradientDifferenceParams

    def train_loader(self, data, seed: int) -> DataLoader:
        p = self.params
        return data.paired_loader(
            p.forget_batch_size, p.retain_batch_size, seed, stratified=p.stratified_retain
        )

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        is_forget, labels = batch["is_forget"], batch["labels"]
        return {
            "forget_ce": masked_ce(out.logits, labels, is_forget),
            "retain_ce": masked_ce(out.logits, labels, ~is_forget),
        }

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.count(batch)
        terms = self.loss_terms(batch)
        loss = terms["retain_ce"] - self.params.alpha * terms["forget_ce"]
        size = len(batch["labels"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

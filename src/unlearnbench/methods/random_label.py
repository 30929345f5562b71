"""``random_label``: fine-tune on the forget set relabelled with wrong classes, and on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import PairedLossMethod, PairedParams, check_retain_weight
from unlearnbench.tasks import wrong_labels

RELABEL_MODES = ("fixed", "per_step")
__all__ = ["RandomLabel", "RandomLabelParams", "wrong_labels"]


@dataclass(kw_only=True)
class RandomLabelParams(PairedParams):
    relabel: str = "fixed"
    retain_weight: float = 1.0

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.relabel not in RELABEL_MODES:
            raise ConfigError(f"{prefix}.relabel", self.relabel, f"one of {', '.join(RELABEL_MODES)}")
        check_retain_weight(self.retain_weight, self.retain_batch_size)


@register("random_label")
class RandomLabel(PairedLossMethod):
    """Fine-tune on D_f with wrong labels while keeping D_r (Golatkar et al. 2020, "random labels";
    the relabelling of Graves et al. 2021, "Amnesiac Machine Learning"):

        L = E_{(x, y) in B_f} CE(f(x), y~) + retain_weight * E_{(x, y) in B_r} CE(f(x), y),
        y~ ~ Uniform({1..C} minus {y})   (:func:`~unlearnbench.tasks.wrong_labels`)

    ``relabel: fixed`` draws y~ once per forget sample for the whole run (seeded by the run's
    seed); ``per_step`` draws it afresh at every step (seeded by seed and step). Which rows get a
    wrong label is the task's: a sample, or every labelled token of a forget sentence.
    """

    Params = RandomLabelParams

    def __init__(self, model, params: RandomLabelParams, data) -> None:
        super().__init__(model, params, data)
        self.relabel_seed = 0
        self.fixed_labels: torch.Tensor | None = None  # by dataset index: the drawn wrong label (fixed)

    def train_loader(self, seed: int) -> DataLoader:
        self.relabel_seed = seed
        if self.params.relabel == "fixed":
            self.fixed_labels = self.task.fixed_wrong_labels(
                self.data.records, self.data.splits.forget, self.num_labels, seed
            )
        return super().train_loader(seed)

    def retain_batch_size(self) -> int:
        return self.params.retain_batch_size if self.params.retain_weight > 0 else 0

    def relabelled(self, batch: dict[str, torch.Tensor], step: int | None = None) -> torch.Tensor:
        """The batch's targets: a wrong label for each forget row, the true one for retain rows.

        ``step`` (default: the trainer's global step) seeds the draw of ``relabel: per_step``.
        """
        fresh = self.params.relabel == "per_step"
        draw_step = (self.global_step if step is None else step) if fresh else None
        return self.task.relabel(batch, self.num_labels, self.relabel_seed, draw_step, self.fixed_labels)

    def loss_terms(self, batch):
        logits, targets, is_forget = self.logits(batch), self.relabelled(batch), batch["is_forget"]
        relabelled = {**batch, "labels": targets}
        return {
            "forget_relabel_ce": self.ce(logits, relabelled, is_forget),
            "retain_ce": self.ce(logits, relabelled, ~is_forget),
        }

    def combine(self, terms):
        return terms["forget_relabel_ce"] + self.params.retain_weight * terms["retain_ce"]

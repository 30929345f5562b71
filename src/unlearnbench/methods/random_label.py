"""``random_label``: fine-tune on the forget set relabelled with wrong classes, and on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import (
    IGNORE_INDEX,
    PairedBatchMethod,
    PairedParams,
    check_retain_weight,
    masked_ce,
    register,
)

RELABEL_MODES = ("fixed", "per_step")


def wrong_labels(
    labels: torch.Tensor, num_labels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A label drawn uniformly from the ``num_labels - 1`` classes other than each true label.

    ``(y + k) mod C`` with k uniform in {1, ..., C-1} hits every other class with probability
    1/(C-1) and never y itself.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels={num_labels}: relabelling needs at least two classes")
    offsets = torch.randint(1, num_labels, tuple(labels.shape), generator=generator)  # on the CPU
    return (labels + offsets.to(labels.device)) % num_labels


@dataclass(kw_only=True)
class RandomLabelParams(PairedParams):
    relabel: str = "fixed"
    retain_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.relabel not in RELABEL_MODES:
            raise ConfigError("method.relabel", self.relabel, f"one of {', '.join(RELABEL_MODES)}")
        check_retain_weight(self.retain_weight, self.retain_batch_size)


@register("random_label")
class RandomLabel(PairedBatchMethod):
    """Fine-tune on D_f with wrong labels while keeping D_r (Golatkar et al. 2020, "random labels";
    the relabelling of Graves et al. 2021, "Amnesiac Machine Learning"):

        L = E_{(x, y) in B_f} CE(f(x), y~) + retain_weight * E_{(x, y) in B_r} CE(f(x), y),
        y~ ~ Uniform({1..C} minus {y})   (:func:`wrong_labels`)

    ``relabel: fixed`` draws y~ once per forget sample for the whole run (seeded by the run's
    seed); ``per_step`` draws it afresh at every step (seeded by seed and step). One forward pass
    over each paired batch (B_f, B_r); the ``is_forget`` mask picks the rows to relabel.

    Token classification: every labelled token of a forget sentence gets a wrong tag, drawn from a
    generator seeded by (seed, sentence index) for ``fixed`` and also by the step for ``per_step``.
    """

    Params = RandomLabelParams

    def __init__(self, model, params: RandomLabelParams, num_labels: int) -> None:
        super().__init__(model, params, num_labels)
        self.relabel_seed = 0
        self.token_task = False
        # dataset index -> the drawn wrong label of each forget sample (relabel: fixed); -1 elsewhere
        self.register_buffer("fixed_labels", torch.zeros(0, dtype=torch.long), persistent=False)

    def train_loader(self, data, seed: int) -> DataLoader:
        p = self.params
        self.relabel_seed = seed
        self.token_task = bool(getattr(data, "is_token_task", False))
        if p.relabel == "fixed" and not self.token_task:
            index = torch.as_tensor(data.splits.forget, dtype=torch.long)
            labels = torch.as_tensor(data.labels("forget"), dtype=torch.long)
            table = torch.full((int(index.max()) + 1 if len(index) else 0,), -1, dtype=torch.long)
            table[index] = wrong_labels(labels, self.num_labels, torch.Generator().manual_seed(seed))
            self.fixed_labels = table
        return super().train_loader(data, seed)

    def retain_batch_size(self) -> int:
        return self.params.retain_batch_size if self.params.retain_weight > 0 else 0

    def relabelled(self, batch: dict[str, torch.Tensor], step: int | None = None) -> torch.Tensor:
        """The batch's targets: a wrong label for each forget sample, the true one for retain samples.

        ``step`` (default: the trainer's global step) seeds the draw of ``relabel: per_step``.
        """
        labels, is_forget = batch["labels"], batch["is_forget"]
        if labels.dim() == 2:
            return self.relabelled_tokens(batch, self.global_step if step is None else step)
        if self.params.relabel == "fixed":
            targets = labels.clone()
            targets[is_forget] = self.fixed_labels.to(labels.device)[batch["index"][is_forget]]
            assert bool((targets >= 0).all()), "a forget sample without a drawn label"
            return targets
        step = self.global_step if step is None else step
        generator = torch.Generator().manual_seed(self.relabel_seed * 1_000_003 + step)
        drawn = wrong_labels(labels.cpu(), self.num_labels, generator).to(labels.device)
        return torch.where(is_forget, drawn, labels)

    def relabelled_tokens(self, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """Token classification: a wrong tag for each labelled token of each forget sentence."""
        labels, targets = batch["labels"], batch["labels"].clone()
        per_step = self.params.relabel == "per_step"
        for row in torch.nonzero(batch["is_forget"]).flatten().tolist():
            seed = [self.relabel_seed, int(batch["index"][row])] + ([step] if per_step else [])
            generator = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
            keep = labels[row] != IGNORE_INDEX
            targets[row, keep] = wrong_labels(labels[row, keep].cpu(), self.num_labels, generator).to(
                labels.device
            )
        return targets

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        targets, is_forget = self.relabelled(batch), batch["is_forget"]
        return {
            "forget_relabel_ce": masked_ce(out.logits, targets, is_forget),
            "retain_ce": masked_ce(out.logits, targets, ~is_forget),
        }

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["forget_relabel_ce"] + self.params.retain_weight * terms["retain_ce"]

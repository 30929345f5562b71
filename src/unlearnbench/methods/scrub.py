"""``scrub``: SCRUB (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning").

The student (the original model, trained) stays close to a frozen teacher (a copy of the
original) on the retain set and moves away from it on the forget set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import FrozenReferenceMethod, PairedParams, distill_kl


@dataclass(kw_only=True)
class ScrubParams(PairedParams):
    alpha: float
    beta: float
    gamma: float
    temperature: float
    forget_epochs: int = -1

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.retain_batch_size < 1:
            raise ConfigError(f"{prefix}.retain_batch_size", self.retain_batch_size, "a positive integer")
        for key in ("alpha", "beta", "gamma"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{prefix}.{key}", getattr(self, key), "a weight >= 0")
        if self.temperature <= 0:
            raise ConfigError(f"{prefix}.temperature", self.temperature, "a positive temperature")
        if self.forget_epochs == 0 or self.forget_epochs < -1:
            raise ConfigError(
                f"{prefix}.forget_epochs", self.forget_epochs, "a positive number of epochs, or -1"
            )


@register("scrub")
class Scrub(FrozenReferenceMethod):
    """SCRUB (Kurmanji et al. 2023): a student that obeys its teacher on D_r and disobeys it on D_f.

        L = alpha * KL_T(teacher || student; B_r) + beta * CE(student; B_r)
            - gamma * KL_T(teacher || student; B_f)

    KL_T is :func:`distill_kl`. The teacher is a frozen copy of the original model
    (``RunContext.frozen_original``), the student the original itself. SCRUB alternates max-steps
    (ascend KL on D_f) and min-steps (descend the retain terms on D_r); this is its simultaneous
    form, one forward pass of each over the paired batch (B_f, B_r). As SCRUB's ``msteps``,
    ``forget_epochs`` keeps the max-term for the first epochs only and then lets the min-steps
    repair D_r (-1: every epoch).

    The teacher is ``self.reference`` (:class:`FrozenReferenceMethod`): frozen, in eval mode (no
    dropout), never in the optimizer or the state dict.
    """

    Params = ScrubParams

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        student = self.logits(batch)
        with torch.no_grad():
            teacher = self.logits(batch, self.reference)
        is_forget, labels, t = batch["is_forget"], batch["labels"], self.params.temperature
        retain = ~is_forget
        # The KL of each labelled row (for token classification: padding and continuations left out).
        r_student, _, r_teacher = self.task.loss_rows(student[retain], labels[retain], teacher[retain])
        f_student, _, f_teacher = self.task.loss_rows(
            student[is_forget], labels[is_forget], teacher[is_forget]
        )
        return {
            "retain_kl": distill_kl(r_student, r_teacher, t),
            "retain_ce": self.ce(student, batch, retain),
            "forget_kl": distill_kl(f_student, f_teacher, t),
        }

    def forget_weight(self) -> float:
        """gamma while the max-term is on (the first ``forget_epochs`` epochs), then 0."""
        p = self.params
        return p.gamma if p.forget_epochs < 0 or self.current_epoch < p.forget_epochs else 0.0

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        p = self.params
        return (
            p.alpha * terms["retain_kl"]
            + p.beta * terms["retain_ce"]
            - self.forget_weight() * terms["forget_kl"]
        )

"""The common case of an unlearning method: a loss over paired batches, a forget batch B_f and a
retain batch B_r read in one forward pass and told apart by the ``is_forget`` mask.

A subclass names the terms of its loss (:meth:`PairedLossMethod.loss_terms`) and says how they
add up (:meth:`PairedLossMethod.combine`); the loader, the step, its counting and its logging are
shared. :class:`FrozenReferenceMethod` adds a frozen copy of theta_0 (a teacher, a reference), and
:func:`distill_kl` compares two models' outputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import PreTrainedModel

from unlearnbench.data import UnlearnDataModule
from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import TrainedParams, UnlearningMethod
from unlearnbench.runtime import RunContext, UnlearnOutcome


def distill_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(p_teacher || p_student) of the temperature-T softmaxes, times T^2, mean over rows.

        KL_T = T^2 / n * sum_i sum_c p_t(c|x_i) (log p_t(c|x_i) - log p_s(c|x_i)),  p = softmax(logits / T)

    Hinton et al. 2015's distillation term (SCRUB's ``DistillKL``; at T = 1 the KL of KGA's gaps).
    No rows: 0 with a zero gradient.
    """
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * temperature**2


@dataclass(kw_only=True)
class PairedParams(TrainedParams):
    """Batch knobs of a method whose step reads a forget batch B_f and a retain batch B_r."""

    forget_batch_size: int
    retain_batch_size: int = 0
    stratified_retain: bool = True  # B_r holds min_per_class samples of every class in B_f
    min_per_class: int = 1


def check_retain_weight(retain_weight: float, retain_batch_size: int) -> None:
    """A retain term needs retain samples; without one, the retain batch may be empty."""
    if retain_weight < 0:
        raise ConfigError("method.retain_weight", retain_weight, "a weight >= 0")
    if retain_batch_size < (1 if retain_weight > 0 else 0):
        raise ConfigError(
            "method.retain_batch_size", retain_batch_size, "a positive integer (0 only with retain_weight: 0)"
        )


class PairedLossMethod(UnlearningMethod):
    """One step = one paired batch (B_f, B_r) from ``UnlearnDataModule.paired_loader`` (one epoch =
    one pass over D_f)."""

    Params: ClassVar[type] = PairedParams

    def retain_batch_size(self) -> int:
        """|B_r|; a method without a retain term in its current setting returns 0."""
        return self.params.retain_batch_size

    def train_loader(self, seed: int) -> DataLoader:
        p = self.params
        return self.data.paired_loader(
            p.forget_batch_size,
            self.retain_batch_size(),
            seed,
            stratified=p.stratified_retain,
            min_per_class=p.min_per_class,
        )

    # ------------------------------------------------------------------ what subclasses define
    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for loss terms
    def logits(self, batch: dict[str, torch.Tensor], model: torch.nn.Module | None = None) -> torch.Tensor:
        """The logits of ``model`` (default: the one being unlearned) on the whole batch."""
        model = self.model if model is None else model
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def ce(self, logits: torch.Tensor, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the labelled rows of the samples in ``mask`` (0 without any)."""
        return self.task.masked_ce(logits, batch["labels"], mask)

    # ------------------------------------------------------------------ the step
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.count(batch)
        terms = self.loss_terms(batch)
        loss = self.combine(terms)
        size = len(batch["labels"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss


class FrozenReferenceMethod(PairedLossMethod):
    """A paired-loss method that also reads a frozen copy of theta_0: a teacher (SCRUB), a
    reference policy (NPO).

    The reference is held outside the module's submodules (in a tuple): it is not in
    ``parameters()`` so never in the optimizer, not in the state dict, and Lightning's ``.train()``
    does not reach it, so it stays in eval mode. ``on_fit_start`` moves it to the model's device.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        params: PairedParams,
        data: UnlearnDataModule,
        reference: PreTrainedModel | None = None,
    ) -> None:
        super().__init__(model, params, data)
        reference = copy.deepcopy(model) if reference is None else reference
        reference.eval().requires_grad_(False)
        self._frozen = (reference,)

    @property
    def reference(self) -> PreTrainedModel:
        return self._frozen[0]

    @classmethod
    def run(cls, ctx: RunContext, params: PairedParams) -> UnlearnOutcome:
        return cls(ctx.original().model, params, ctx.data, reference=ctx.frozen_original()).fit(ctx)

    def on_fit_start(self) -> None:
        weight = next(self.model.parameters())
        self.reference.to(device=weight.device, dtype=weight.dtype).eval()

"""``kga``: Knowledge-Gap Alignment (Wang et al., ACL 2023), its two gap models in the model store.

This module owns the loss, the models it reads (A_D, A_f, A_n: frozen, in eval mode, outside the
optimizer) and the store specs of A_f and A_n, so that a sweep over KGA's own knobs trains them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel

from unlearnbench.data import UnlearnDataModule
from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import FrozenReferenceMethod, PairedParams, distill_kl
from unlearnbench.runtime import FitStats, Recipe, RunContext, StoreEntry, UnlearnOutcome
from unlearnbench.runtime.specs import ModelSpec

# Version of what A_f and A_n mean (their data, their recipe, the start from the pretrained model);
# part of their store keys, so a change of meaning trains them again instead of misreading them.
GAP_MODELS_VERSION = 1
EXTRA_SET = "val"  # D_n: see Kga's docstring for why the validation split
# A gap model's role: the split it is fine-tuned on, and its name in the logs.
GAP_MODELS = {
    "forget": ("forget", "KGA forget model (A_f)"),
    "extra": (EXTRA_SET, "KGA extra-set model (A_n)"),
}


def row_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(p || q), p = softmax(p_logits), q = softmax(q_logits): the distillation
    KL at temperature 1 with p as the teacher. No rows: 0 with a zero gradient."""
    return distill_kl(q_logits, p_logits, 1.0)


@dataclass(kw_only=True)
class KgaParams(PairedParams):
    alpha: float  # weight of the retain term
    gap_recipe: Recipe  # how A_f and A_n are fine-tuned from the pretrained model

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if not (self.alpha >= 0 and self.alpha < float("inf")):
            raise ConfigError(f"{prefix}.alpha", self.alpha, "a finite weight >= 0")
        if self.retain_batch_size < (1 if self.alpha > 0 else 0):
            raise ConfigError(
                f"{prefix}.retain_batch_size",
                self.retain_batch_size,
                "a positive integer (0 only with alpha: 0, when the retain term is off)",
            )
        self.gap_recipe.validate(f"{prefix}.gap_recipe")


@register("kga")
class Kga(FrozenReferenceMethod):
    """KGA (Wang et al., "KGA: A General Machine Unlearning Framework Based on Knowledge Gap
    Alignment", ACL 2023). Four models: A_D, the original (frozen); A_f, the pretrained model
    fine-tuned on D_f; A_n, the pretrained model fine-tuned on an extra set D_n disjoint from D; and
    A*, initialised from A_D and trained. The knowledge gap between a model that saw a set and one
    that did not is their divergence on it; A* is trained so that its gap to A_f on D_f equals A_D's
    gap to A_n on D_n (D_f then looks to A* as unseen data looks to A_D), while it keeps A_D's
    outputs on D_r:

        L = | KL(A*(x_f) || A_f(x_f)) - G_n | + alpha * KL(A*(x_r) || A_D(x_r))
        G_n = E_{x_n in D_n} KL(A_D(x_n) || A_n(x_n))

    KL(p || q) is :func:`row_kl`, a mean over the rows a loss reads (the task decides: texts, or the
    labelled words of a sentence), x_f over the forget rows of B_f, x_r over the rows of B_r.

    Source and its direction: the paper's L = L_a + alpha * L_r with the alignment loss
    L_a = |dis_{D_n}(A_D, A_n) - dis_{D_f}(A*, A_f)|, dis a KL divergence, in the form this
    project's brief gives it; the paper's own text was not at hand to check the argument order.
    The authors' released classification code (Lingzhi-WANG/KGAUnlearn) computes the extra-set gap
    as above, KL(A_D || A_n), but the forget and retain terms with the frozen model first,
    KL(A_f || A*) and KL(A_D || A*); we keep the form above, whose two gaps pair alike (A* in the
    place of A_D, A_f in that of A_n). ``alpha`` defaults to that code's ``retain_loss_ratio``, 0.1.

    Choices of this implementation:

    - D_n is the validation split. It must be data A_D never saw (else G_n is not the gap of unseen
      data), so not a slice of D, whose original every method shares; the test split scores the
      unlearned model and must stay out of it. A* reads D_n only through the scalar G_n (A_D and
      A_n are frozen), so the validation split stays usable by the stop rules. The authors' D_n
      is a held-out slice of their data that A_D did not train on: the same in kind.
    - G_n is computed once, over all of D_n, when the fit starts (it does not depend on A*); the
      authors' code pairs each forget batch with a batch of D_n, a noisier estimate of it.
    - A_f and A_n are fine-tuned with ``gap_recipe`` (by default the ``train.*`` recipe that
      trained A_D) and stored under specs of their data, recipe, seed and :data:`GAP_MODELS_VERSION`,
      none of KGA's own knobs: a sweep over alpha or lr trains them once.
    - Cost: A_f depends on the request, so its training time (from its store entry, also when this
      run read it from there) is part of the reported cost, with A*'s fit. A_n does not (as A_D,
      it can be trained before any request): its time is in ``method_info`` only.
    """

    Params: ClassVar[type] = KgaParams

    def __init__(
        self,
        model: PreTrainedModel,
        params: KgaParams,
        data: UnlearnDataModule,
        reference: PreTrainedModel | None = None,
        *,
        forget_model: PreTrainedModel,
        extra_model: PreTrainedModel,
    ) -> None:
        super().__init__(model, params, data, reference=reference)
        for frozen in (forget_model, extra_model):
            frozen.eval().requires_grad_(False)
        # Held in a tuple, as the reference is: not submodules, so never optimised or checkpointed.
        self._gap_models = (forget_model, extra_model)
        self._extra_gap: float | None = None

    @property
    def forget_model(self) -> PreTrainedModel:
        return self._gap_models[0]

    @property
    def extra_model(self) -> PreTrainedModel:
        return self._gap_models[1]

    # ------------------------------------------------------------------ the models it reads
    @classmethod
    def check_data(cls, params: KgaParams, data: UnlearnDataModule) -> None:
        if len(data.splits.val) == 0:
            allowed = "a fraction > 0 for method=kga: A_n is fine-tuned on the validation split"
            raise ConfigError("data.val_fraction", 0, allowed)

    @staticmethod
    def gap_model_spec(ctx: RunContext, role: str, params: KgaParams) -> ModelSpec:
        """The store spec of A_f (``role="forget"``: trained on D_f) or A_n (``"extra"``: on D_n)."""
        split, _ = GAP_MODELS[role]
        detail = {"kga_version": GAP_MODELS_VERSION, "role": role, "split": split}
        return ctx.model_spec(f"kga_{role}", sorted(ctx.data.sample_ids(split)), params.gap_recipe, detail)

    @classmethod
    def gap_model(cls, ctx: RunContext, role: str, params: KgaParams) -> StoreEntry:
        """A_f or A_n: from the store, or fine-tuned from the pretrained model once and stored."""
        split, label = GAP_MODELS[role]
        indices = ctx.data.splits[split]
        return ctx.store.get_or_train(
            cls.gap_model_spec(ctx, role, params),
            lambda work_dir: ctx.fine_tune(indices, params.gap_recipe, work_dir, label=label),
        )

    @classmethod
    def run(cls, ctx: RunContext, params: KgaParams) -> UnlearnOutcome:
        forget, extra = cls.gap_model(ctx, "forget", params), cls.gap_model(ctx, "extra", params)
        module = cls(
            ctx.original().model,
            params,
            ctx.data,
            reference=ctx.frozen_original(),
            forget_model=forget.model,
            extra_model=extra.model,
        )
        outcome = module.fit(ctx)
        stats, forget_fit = outcome.stats, FitStats(**forget.meta["fit"])
        own_seconds = stats.seconds
        stats.seconds += forget_fit.seconds
        stats.steps += forget_fit.steps
        stats.samples += forget_fit.samples
        outcome.info.update(
            {
                "extra_set": EXTRA_SET,
                "extra_gap": module.extra_gap(),
                "unlearn_fit_seconds": own_seconds,
                "forget_model": cls._entry_info(forget),
                "extra_model": cls._entry_info(extra),
            }
        )
        return outcome

    @staticmethod
    def _entry_info(entry: StoreEntry) -> dict[str, Any]:
        fit = entry.meta.get("fit") or {}
        return {"cache_key": entry.key, "from_cache": entry.hit, "fit_seconds": fit.get("seconds")}

    def on_fit_start(self) -> None:
        super().on_fit_start()
        weight = next(self.model.parameters())
        for frozen in self._gap_models:
            frozen.to(device=weight.device, dtype=weight.dtype).eval()
        self.extra_gap()

    # ------------------------------------------------------------------ the loss
    def extra_gap(self) -> float:
        """G_n = KL(A_D || A_n) over every row of D_n, computed once (both models are frozen)."""
        if self._extra_gap is None:
            device = next(self.reference.parameters()).device
            total, rows = 0.0, 0
            with torch.no_grad():
                for batch in self.data.eval_loader(EXTRA_SET):
                    ids = batch["input_ids"].to(device)
                    mask = batch["attention_mask"].to(device)
                    original = self.reference(input_ids=ids, attention_mask=mask).logits
                    extra = self.extra_model(input_ids=ids, attention_mask=mask).logits
                    p, _, q = self.task.loss_rows(original, batch["labels"].to(device), extra)
                    total += float(row_kl(p, q)) * len(p)
                    rows += len(p)
            self._extra_gap = total / max(rows, 1)
        return self._extra_gap

    def retain_batch_size(self) -> int:
        return self.params.retain_batch_size if self.params.alpha > 0 else 0

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        is_forget, labels = batch["is_forget"], batch["labels"]
        retain = ~is_forget
        logits = self.logits(batch)
        # Each frozen model reads only the samples its term compares: A_f the forget ones, A_D the rest.
        with torch.no_grad():
            forget_ref = self._frozen_logits(self.forget_model, batch, is_forget, logits)
            original = self._frozen_logits(self.reference, batch, retain, logits)
        f_rows, _, f_ref = self.task.loss_rows(logits[is_forget], labels[is_forget], forget_ref)
        r_rows, _, r_ref = self.task.loss_rows(logits[retain], labels[retain], original)
        forget_gap = row_kl(f_rows, f_ref)
        return {
            "align": (forget_gap - self.extra_gap()).abs(),
            "forget_gap": forget_gap.detach(),
            "retain_kl": row_kl(r_rows, r_ref),
        }

    @staticmethod
    def _frozen_logits(
        model: PreTrainedModel, batch: dict[str, torch.Tensor], rows: torch.Tensor, like: torch.Tensor
    ) -> torch.Tensor:
        if not bool(rows.any()):  # none in this batch (B_r is not drawn when alpha is 0): empty, same layout
            return like[rows].detach()
        return model(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows]).logits

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["align"] + self.params.alpha * terms["retain_kl"]

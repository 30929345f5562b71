"""``npo``: Negative Preference Optimization (Zhang et al. 2024), adapted to classification."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import FrozenReferenceMethod, PairedParams, check_retain_weight


def npo_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float
) -> torch.Tensor:
    """NPO's loss on forget samples:

        L_NPO = 2/beta * mean_i log(1 + (p_theta(y_i|x_i) / p_ref(y_i|x_i))^beta)
              = 2/beta * mean_i softplus(beta * (log p_theta(y_i|x_i) - log p_ref(y_i|x_i)))

    Its gradient is w_i * grad(-log p_theta(y_i|x_i)) up to the mean, w_i = 2 sigmoid(beta * r_i),
    r_i the log ratio: gradient ascent's gradient (w = 1) where theta = ref, fading (w -> 0) as
    the sample is forgotten. As beta -> 0 it is gradient ascent (shifted by a constant). No rows:
    0 with a zero gradient.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    log_p = -F.cross_entropy(logits.float(), labels, reduction="none")
    log_ref = -F.cross_entropy(ref_logits.float(), labels, reduction="none")
    return 2.0 / beta * F.softplus(beta * (log_p - log_ref)).mean()


@dataclass(kw_only=True)
class NpoParams(PairedParams):
    beta: float
    retain_weight: float = 0.0

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.beta <= 0:
            raise ConfigError(f"{prefix}.beta", self.beta, "a positive inverse temperature")
        check_retain_weight(self.retain_weight, self.retain_batch_size)


@register("npo")
class Npo(FrozenReferenceMethod):
    """NPO (Zhang et al. 2024, "Negative Preference Optimization: From Catastrophic Collapse to
    Effective Unlearning"), with p(y|x) the classifier's probability of the true label:

        L = 2/beta * E_{(x, y) in B_f} log(1 + (p_theta(y|x) / p_ref(y|x))^beta)
            + retain_weight * E_{(x, y) in B_r} CE(f(x), y)

    (:func:`npo_loss`). The reference p_ref is a frozen copy of the original model
    (``RunContext.frozen_original``). ``retain_weight: 0`` is NPO, > 0 the NPO+RT variant (B_r
    is then drawn by the paired loader, one forward pass over both). The loss is bounded below by
    0, and each sample's push fades as it is forgotten, so it diverges far more slowly than
    gradient ascent, which NPO reduces to as beta -> 0.

    The reference is held as :class:`FrozenReferenceMethod` holds it: frozen, in eval mode, never
    in the optimizer.
    """

    Params = NpoParams

    def retain_batch_size(self) -> int:
        return self.params.retain_batch_size if self.params.retain_weight > 0 else 0

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        is_forget, labels = batch["is_forget"], batch["labels"]
        logits = self.logits(batch)
        with torch.no_grad():
            ref_logits = self.reference(
                input_ids=batch["input_ids"][is_forget], attention_mask=batch["attention_mask"][is_forget]
            ).logits
        # Each labelled row of a forget sample (a token of a forget sentence) is one term of the mean.
        rows, targets, ref_rows = self.task.loss_rows(logits[is_forget], labels[is_forget], ref_logits)
        return {
            "npo": npo_loss(rows, ref_rows, targets, self.params.beta),
            "retain_ce": self.ce(logits, batch, ~is_forget),
        }

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["npo"] + self.params.retain_weight * terms["retain_ce"]

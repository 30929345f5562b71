"""``gradient_difference``: gradient ascent on the forget set, balanced by descent on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import PairedLossMethod, PairedParams


@dataclass(kw_only=True)
class GradientDifferenceParams(PairedParams):
    alpha: float

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.retain_batch_size < 1:
            raise ConfigError(f"{prefix}.retain_batch_size", self.retain_batch_size, "a positive integer")
        if self.alpha <= 0:
            raise ConfigError(f"{prefix}.alpha", self.alpha, "a positive weight of the forget term")


@register("gradient_difference")
class GradientDifference(PairedLossMethod):
    """Descend the loss on D_r while ascending it on D_f ("NegGrad+", Kurmanji et al. 2023;
    "gradient difference", Liu et al. 2022):

        L = E_{(x, y) in B_r} CE(f(x), y) - alpha * E_{(x, y) in B_f} CE(f(x), y)

    The retain term anchors the model where plain gradient ascent drifts off on every input; the
    ascent term is unbounded all the same, so the run is bounded by a budget and, optionally, a
    forget-accuracy stop.
    """

    Params = GradientDifferenceParams

    def loss_terms(self, batch):
        logits, is_forget = self.logits(batch), batch["is_forget"]
        return {
            "forget_ce": self.ce(logits, batch, is_forget),
            "retain_ce": self.ce(logits, batch, ~is_forget),
        }

    def combine(self, terms):
        return terms["retain_ce"] - self.params.alpha * terms["forget_ce"]

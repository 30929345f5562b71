"""``gradient_ascent``: push the original model up the loss on the forget set."""

from __future__ import annotations

from unlearnbench.methods.base import register
from unlearnbench.methods.paired import PairedLossMethod


@register("gradient_ascent")
class GradientAscent(PairedLossMethod):
    """Maximise the loss on D_f (Golatkar et al. 2020; "NegGrad" in Kurmanji et al. 2023):

        L = - E_{(x, y) in B_f} CE(f(x), y)

    Unbounded: it runs for a budget and, optionally, stops once forget accuracy falls below
    ``stop.threshold`` (``method/stop=forget_accuracy_below``). B_r plays no part (its size is 0).
    """

    def loss_terms(self, batch):
        return {"forget_ce": self.ce(self.logits(batch), batch, batch["is_forget"])}

    def combine(self, terms):
        return -terms["forget_ce"]

"""``gradient_ascent``: push the original model up the loss on the forget set."""

from __future__ import annotations

import torch

from unlearnbench.methods.base import PairedBatchMethod, PairedParams, masked_ce, register


@register("gradient_ascent")
class GradientAscent(PairedBatchMethod):
    """Maximise the loss on D_f (Golatkar et al. 2020; "NegGrad" in Kurmanji et al. 2023):

        L = - E_{(x, y) in D_f} CE(f(x), y)

    It diverges if left alone, so it runs for a step budget and, optionally, stops once forget
    accuracy falls below ``stop.threshold`` (``stop.rule: forget_accuracy_below``).
    """

    Params = PairedParams  # retain_batch_size stays 0: B_r plays no part in the loss

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return {"forget_ce": masked_ce(logits, batch["labels"], batch["is_forget"])}

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return -terms["forget_ce"]

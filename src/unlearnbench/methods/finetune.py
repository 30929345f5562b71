"""``finetune``: naive unlearning by continued fine-tuning of the original model on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from unlearnbench.methods.base import MethodParams, UnlearningMethod, register


@dataclass(kw_only=True)
class FineTuneParams(MethodParams):
    batch_size: int


@register("finetune")
class FineTune(UnlearningMethod):
    """Continue training theta_0 on D_r only, hoping D_f fades (catastrophic forgetting).

    L = E_{(x, y) in D_r} CE(f(x), y)

    Also the supervised fine-tuning used to train the original model (on D) and the retrained
    reference (on D_r, from the pretrained model). Golatkar et al. 2020 call it "fine-tune".
    """

    Params = FineTuneParams

    def __init__(self, model, params: FineTuneParams, num_labels: int, split: str = "retain") -> None:
        super().__init__(model, params, num_labels)
        self.split = split

    def train_loader(self, data, seed: int) -> DataLoader:
        return data.train_loader(self.split, self.params.batch_size, seed)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.count(batch)
        out = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
        self.log("train/loss", out.loss, prog_bar=True, batch_size=len(batch["labels"]))
        return out.loss

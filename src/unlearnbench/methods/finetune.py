"""``finetune``: naive unlearning by continued fine-tuning of the original model on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader

from unlearnbench.methods.base import TrainedParams, UnlearningMethod, register
from unlearnbench.runtime.finetune import SupervisedFit


@dataclass(kw_only=True)
class FineTuneParams(TrainedParams):
    batch_size: int


@register("finetune")
class FineTune(UnlearningMethod):
    """Continue training theta_0 on D_r only, hoping D_f fades (catastrophic forgetting); Golatkar
    et al. 2020 call it "fine-tune":

        L = E_{(x, y) in D_r} CE(f(x), y)
    """

    Params = FineTuneParams
    training_step = SupervisedFit.training_step

    def train_loader(self, seed: int) -> DataLoader:
        return self.data.train_loader("retain", self.params.batch_size, seed)

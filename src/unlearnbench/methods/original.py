"""``original``: no unlearning. The fine-tuned model itself, the reference every method starts from."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods.base import MethodParams, UnlearningMethod, UnlearnOutcome, register
from unlearnbench.trainer import FitStats


@dataclass(kw_only=True)
class OriginalParams(MethodParams):
    lr: float = 1.0  # unused: nothing is trained


@register("original")
class Original(UnlearningMethod):
    """theta_u = theta_0. No loss; zero unlearning time. Forget metrics show what there is to forget."""

    Params = OriginalParams

    @classmethod
    def run(cls, ctx, params: MethodParams) -> UnlearnOutcome:
        entry = ctx.original()
        return UnlearnOutcome(entry.model, FitStats(), {"original_from_cache": entry.hit})

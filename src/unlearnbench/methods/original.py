"""``original``: no unlearning. The fine-tuned model itself, the reference every method starts from."""

from __future__ import annotations

from unlearnbench.methods.base import MethodParams, Procedure, register
from unlearnbench.runtime import FitStats, RunContext, UnlearnOutcome


@register("original")
class Original(Procedure):
    """theta_u = theta_0. No loss; zero unlearning time. Forget metrics show what there is to forget."""

    @classmethod
    def run(cls, ctx: RunContext, params: MethodParams) -> UnlearnOutcome:
        entry = ctx.original()
        return UnlearnOutcome(
            entry.model, FitStats(), {"original_from_cache": entry.hit}, store_key=entry.key
        )

"""``retrain``: the gold standard, fine-tuning the pretrained model on D_r alone (cached per split)."""

from __future__ import annotations

from unlearnbench.methods.base import UnlearnOutcome, register
from unlearnbench.methods.finetune import FineTune, FineTuneParams
from unlearnbench.trainer import FitStats


@register("retrain")
class Retrain(FineTune):
    """theta_u = argmin_theta E_{(x, y) in D_r} CE(f_theta(x), y), starting from the pretrained model
    with the recipe that trained the original (``train.*`` in the config).

    Exact unlearning by definition. The model is cached per (data, model, seed, recipe, forget ids),
    so every other method can be compared with it; the time reported is that of its training,
    also when this run read it from the cache.
    """

    Params = FineTuneParams

    @classmethod
    def run(cls, ctx, params: FineTuneParams) -> UnlearnOutcome:
        entry = ctx.retrained(params)
        stats = FitStats(**entry.meta["fit"])
        return UnlearnOutcome(
            entry.model, stats, {"retrain_from_cache": entry.hit, "retrain_cache_key": entry.key}
        )

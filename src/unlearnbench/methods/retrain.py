"""``retrain``: the gold standard, fine-tuning the pretrained model on D_r alone (stored per split)."""

from __future__ import annotations

from dataclasses import dataclass

from unlearnbench.methods.base import MethodParams, Procedure, register
from unlearnbench.runtime import FitStats, Recipe, RunContext, UnlearnOutcome


@dataclass(kw_only=True)
class RetrainParams(Recipe, MethodParams):
    """The recipe of the retraining: by default the ``train.*`` recipe that trained the original."""


@register("retrain")
class Retrain(Procedure):
    """theta_u = argmin_theta E_{(x, y) in D_r} CE(f_theta(x), y), starting from the pretrained model
    with the recipe that trained the original (``train.*`` in the config).

    Exact unlearning by definition. The model is stored per (data, model, seed, recipe, retain ids),
    so every other method can be compared with it; the time reported is that of its training, also
    when this run read it from the store.
    """

    Params = RetrainParams

    @classmethod
    def run(cls, ctx: RunContext, params: RetrainParams) -> UnlearnOutcome:
        entry = ctx.retrained(params)
        stats = FitStats(**entry.meta["fit"])
        info = {"retrain_from_cache": entry.hit, "retrain_cache_key": entry.key}
        return UnlearnOutcome(entry.model, stats, info, store_key=entry.key)

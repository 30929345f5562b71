"""Memorization scores of the training samples, for forget sets ranked by memorization
(``forget=memorized``; Zhao et al. 2024). One score per training sample, higher = more memorized:

- ``holdout``: K models on seeded halves of the training set (K/2 random partitions, both halves
  of each), so that every sample is trained on by K/2 of them; score = mean p(y|x) under the models
  that saw it - mean p(y|x) under those that did not. The models are stored (kind ``holdout``) and
  shared by every run of the same data, base model, recipe and training seed.
- ``confidence``: 1 - p(y|x) under the original model.

p(y|x) of a token task's sentence is the mean over its labelled words (the task's ``per_sample``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from unlearnbench.runtime.context import RunContext
from unlearnbench.runtime.outputs import cached_outputs, predict
from unlearnbench.tasks import Predictions


def _confidence(ctx: RunContext, pred: Predictions, train: np.ndarray) -> np.ndarray:
    """p(y|x) of every training sample (in the order of ``train``)."""
    pred = pred.take(train)
    return ctx.data.task.per_sample(pred, {"p": np.exp(-pred.losses)})["p"]


def _outputs_on_train(ctx: RunContext, entry, train: np.ndarray) -> Predictions:
    def compute() -> Predictions:
        return predict(ctx.on_eval_device(entry.model), ctx.data.eval_loader("train", indices=train))

    return cached_outputs(entry.path / "eval", train, compute)[0]


def holdout_halves(train: np.ndarray, models: int, seed: int) -> list[np.ndarray]:
    """``models`` sorted halves of ``train``: both halves of ``models / 2`` seeded random partitions."""
    rng = np.random.default_rng([seed, 7951])
    halves = []
    for _ in range(models // 2):
        order = rng.permutation(train)
        cut = len(order) // 2
        halves += [np.sort(order[:cut]), np.sort(order[cut:])]
    return halves


def memorization_scores(ctx: RunContext, forget_cfg: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """One score per training sample (the order of ``ctx.data.train_indices``) and what made it."""
    train = ctx.data.train_indices
    proxy = forget_cfg.get("proxy", "holdout")
    if proxy == "confidence":
        original = ctx.original()
        return 1.0 - _confidence(ctx, _outputs_on_train(ctx, original, train), train), {
            "proxy": proxy,
            "original": original.key,
        }
    models = int(forget_cfg.get("holdout_models", 4))
    ids = ctx.data.records.ids
    recipe = ctx.recipe
    inside, outside = np.zeros(len(train)), np.zeros(len(train))
    keys = []
    for j, half in enumerate(holdout_halves(train, models, ctx.train_seed)):
        spec = ctx.model_spec(
            "holdout", sorted(ids[int(i)] for i in half), recipe, {"holdout": j, "of": models}
        )
        entry = ctx.store.get_or_train(
            spec, lambda d, half=half, j=j: ctx.fine_tune(half, recipe, d, label=f"holdout model {j}")
        )
        keys.append(entry.key)
        p = _confidence(ctx, _outputs_on_train(ctx, entry, train), train)
        member = np.isin(train, half)
        inside += np.where(member, p, 0.0)
        outside += np.where(member, 0.0, p)
    half_of = models // 2  # every sample is in exactly half of the models
    return inside / half_of - outside / half_of, {"proxy": proxy, "holdout_models": models, "keys": keys}

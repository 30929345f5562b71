"""What the evaluation's sections read: the unlearned model's outputs per split (one forward pass
each), the original's ("before") and the retrained reference's, both computed once and kept in
their store entries, and the run's facts (context, outcome, options, the step's memory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlearnbench.evaluation.registry import EvalOptions
from unlearnbench.runtime import RunContext, UnlearnOutcome
from unlearnbench.runtime.outputs import cached_outputs, outputs_path, predict, store_outputs
from unlearnbench.runtime.pools import Pools
from unlearnbench.runtime.store import META, trusted_entry
from unlearnbench.tasks import Predictions


@dataclass
class Reference:
    outputs: Predictions  # on forget and test
    meta: dict[str, Any]  # the store entry's meta.json (its fit, its memory)
    info: dict[str, Any]


@dataclass
class EvalInputs:
    ctx: RunContext
    outcome: UnlearnOutcome
    opts: EvalOptions
    after: dict[str, Predictions]  # this run's model, per evaluated split (sorted by index)
    before: Predictions | None  # theta_0 on train and test, when a section reads it
    reference: Reference | None  # the retrained model on forget and test, when a section reads it
    memory: dict[str, Any]  # the unlearning step's peak memory
    run_dir: Path
    pools: Pools | None = None  # eval.pool: the method's members and the retrained ones
    sequence: list[dict[str, Any]] | None = None  # deletion requests one after another: one record each

    @property
    def task(self):
        return self.ctx.data.task

    @property
    def label_names(self) -> list[str]:
        return self.ctx.data.label_names

    @property
    def is_original(self) -> bool:
        """This run's model is theta_0 itself."""
        return self.outcome.store_key is not None and self.outcome.store_key == self.ctx.original().key

    def before_on(self, split: str) -> Predictions:
        assert self.before is not None, "a section that reads the original must declare original=True"
        return self.before.take(self.ctx.data.splits[split])

    def reference_meta(self) -> dict[str, Any] | None:
        """The retrained reference's store metadata (its training's cost) when it is stored, even if
        no section compared with it."""
        if self.reference is not None:
            return self.reference.meta
        key, entry = self.ctx.store.entry_dir(self.ctx.reference_spec())
        return json.loads((entry / META).read_text()) if trusted_entry(entry, key) else None


def predict_splits(model, data, splits, embeddings: bool = True, pooling: str = "cls") -> Predictions:
    return Predictions.concat(
        [predict(model, data.eval_loader(s), embeddings=embeddings, pooling=pooling) for s in splits]
    )


def original_outputs(ctx: RunContext, own: Mapping[str, Predictions] | None) -> Predictions:
    """theta_0's outputs on train and test (any forget set of this split is inside train), stored once
    in the original's store entry. ``own``: this run's outputs when its model is theta_0 itself."""
    data = ctx.data
    indices = np.concatenate([data.splits.train, data.splits.test])
    directory = Path(ctx.original().path) / "eval"
    pooling = ctx.pooling
    if own is not None:
        pred = Predictions.concat(list(own.values()))
        if pred.embeddings is not None and pred.covers(indices):
            store_outputs(directory, indices, pred, pooling)
        return pred
    # A fresh copy from disk: a method may have trained the in-memory original in place.
    pred, _ = cached_outputs(
        directory,
        indices,
        lambda: predict_splits(
            ctx.on_eval_device(ctx.frozen_original()), data, ["train", "test"], pooling=pooling
        ),
        pooling=pooling,
    )
    return pred


def reference_outputs(ctx: RunContext, outcome: UnlearnOutcome, own: Mapping[str, Predictions]) -> Reference:
    """The retrained model's outputs on forget and test, from its store entry (the model is trained,
    or loaded, only when they are not stored yet). A run whose model is that entry (``retrain`` with
    the same recipe) is the reference itself: its own outputs are used, and stored."""
    data = ctx.data
    key, directory = ctx.store.entry_dir(ctx.reference_spec())
    indices = np.concatenate([data.splits.forget, data.splits.test])
    is_self = outcome.store_key == key
    existed = trusted_entry(directory, key)
    pooling = ctx.pooling
    if is_self:
        pred = Predictions.concat([own["forget"], own["test"]])
        store_outputs(directory / "eval", indices, pred, pooling)
        from_cache = bool(outcome.info.get("retrain_from_cache"))
    else:
        path = outputs_path(directory / "eval", indices, pooling=pooling)
        stored = Predictions.load_trusted(path, indices) if existed else None
        if stored is not None:
            pred, from_cache = stored, True
        else:
            entry = ctx.reference_retrained()  # trains it when this is the first run that needs it
            from_cache = entry.hit
            pred, _ = cached_outputs(
                directory / "eval",
                indices,
                lambda: predict_splits(
                    ctx.on_eval_device(entry.model), data, ["forget", "test"], pooling=pooling
                ),
                pooling=pooling,
            )
    meta = json.loads((directory / META).read_text())
    info = {"model": "retrain", "cache_key": key, "from_cache": from_cache, "is_self": is_self}
    return Reference(pred, meta, info)

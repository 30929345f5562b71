"""A run's evaluation: one forward pass per split of the unlearned model, the outputs of the original
("before") and of the retrained reference (computed once, kept in their model-cache entries), and
the results.json sections derived from them: metrics, reference, mia, latent and cost.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from unlearnbench.cache import trusted_entry
from unlearnbench.errors import ConfigError
from unlearnbench.evaluation.cost import cost_section
from unlearnbench.evaluation.metrics import (
    ATTACKS,
    compare_predictions,
    latent_metrics,
    mia_aucs,
    split_metrics,
)
from unlearnbench.evaluation.predictions import (
    EMBEDDING,
    Predictions,
    cached_outputs,
    outputs_path,
    predict,
    predictions_frame,
    store_outputs,
    write_embeddings,
    write_parquet,
)

if TYPE_CHECKING:
    from unlearnbench.methods.base import UnlearnOutcome
    from unlearnbench.pipeline import RunContext

log = logging.getLogger(__name__)
SPLIT_ORDER = ("forget", "retain", "val", "test", "train")
PREDICTIONS_FILE = "predictions.parquet"
EMBEDDINGS_FILE = "embeddings.npz"


@dataclass(frozen=True)
class EvalOptions:
    """The ``eval`` config block (conf/config.yaml)."""

    splits: tuple[str, ...]
    batch_size: int = 64
    reference: bool = True  # compare with the retrained model (trained if not in the cache)
    mia: bool = True  # membership inference, forget (members) vs test (non-members)
    latent: bool = True  # forget samples among the retain class clusters, before and after
    predictions: bool = True  # predictions.parquet
    embeddings_per_split: int = 300  # embeddings.npz: at most this many forget / retain / test samples
    latent_max_retain: int = 2000  # retain points in the silhouette (a seeded sample)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | DictConfig) -> EvalOptions:
        cfg = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"eval.{unknown[0]}", cfg[unknown[0]], f"a key of {list(cls.__dataclass_fields__)}"
            )
        splits = list(cfg.get("splits") or [])
        if not splits or any(s not in SPLIT_ORDER for s in splits):
            raise ConfigError("eval.splits", splits, f"a non-empty list of {', '.join(SPLIT_ORDER)}")
        for key in ("reference", "mia", "latent", "predictions"):
            if not isinstance(cfg.get(key, True), bool):
                raise ConfigError(f"eval.{key}", cfg[key], "true or false")
        for key in ("batch_size", "embeddings_per_split", "latent_max_retain"):
            value = cfg.get(key, cls.__dataclass_fields__[key].default)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (1 if key == "batch_size" else 0)
            ):
                raise ConfigError(
                    f"eval.{key}", value, "a positive integer" if key == "batch_size" else ">= 0"
                )
        return cls(**{**cfg, "splits": tuple(splits)})

    def evaluated_splits(self) -> list[str]:
        """``splits`` and those the enabled analyses need (forget and test; retain for the latent space)."""
        needed = set(self.splits)
        if self.reference or self.mia:
            needed |= {"forget", "test"}
        if self.latent:
            needed |= {"forget", "retain", "test"}
        return [s for s in SPLIT_ORDER if s in needed]


TEST_KEPT = "test_kept"  # metrics of the test samples of the classes kept (whole-class forgetting)


def kept_classes(pred: Predictions, forgotten: Sequence[int]) -> Predictions:
    """The rows of ``pred`` whose true class was not forgotten: after whole-class forgetting, the
    utility that is left to keep (the full test split loses the forgotten class by design)."""
    return pred.take(pred.indices[~np.isin(pred.labels, forgotten)])


def json_ready(obj: Any) -> Any:
    """NaN (an undefined metric) as null; numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _predict_splits(model, data, splits, embeddings: bool = True) -> Predictions:
    return Predictions.concat([predict(model, data.eval_loader(s), embeddings=embeddings) for s in splits])


# ---------------------------------------------------------------------- the original and the reference
def original_outputs(ctx: RunContext, own: Mapping[str, Predictions] | None) -> Predictions:
    """theta_0's outputs on train and test (any forget set of this split is inside train), stored once
    in the original's cache entry. ``own``: this run's outputs when its model is theta_0 itself."""
    data = ctx.data
    indices = np.concatenate([data.splits.train, data.splits.test])
    directory = Path(ctx.original().path) / "eval"
    if own is not None:
        pred = Predictions.concat(list(own.values()))
        if pred.embeddings is not None and pred.covers(indices):
            store_outputs(directory, indices, pred)
        return pred
    # A fresh copy from disk: a method may have trained the in-memory original in place.
    pred, _ = cached_outputs(
        directory,
        indices,
        lambda: _predict_splits(ctx.on_eval_device(ctx.frozen_original()), data, ["train", "test"]),
    )
    return pred


@dataclass
class Reference:
    outputs: Predictions  # on forget and test
    meta: dict[str, Any]  # the cache entry's meta.json (its fit, its memory)
    info: dict[str, Any]


def reference_outputs(ctx: RunContext, outcome: UnlearnOutcome, own: Mapping[str, Predictions]) -> Reference:
    """The retrained model's outputs on forget and test, from its cache entry (the model is trained,
    or loaded, only when they are not stored yet). A ``retrain`` run of the same recipe is the
    reference itself: its own outputs are used, and stored."""
    data = ctx.data
    key, directory = ctx.reference_entry_dir()
    indices = np.concatenate([data.splits.forget, data.splits.test])
    is_self = outcome.info.get("retrain_cache_key") == key
    existed = trusted_entry(directory, key)
    if is_self:
        pred = Predictions.concat([own["forget"], own["test"]])
        store_outputs(directory / "eval", indices, pred)
        from_cache = bool(outcome.info.get("retrain_from_cache"))
    else:
        from_cache = existed
        path = outputs_path(directory / "eval", indices)
        stored = Predictions.load_trusted(path, indices) if existed else None
        if stored is not None:
            pred = stored
        else:
            entry = ctx.reference_retrained()  # trains it when this is the first run that needs it
            pred, _ = cached_outputs(
                directory / "eval",
                indices,
                lambda: _predict_splits(ctx.on_eval_device(entry.model), data, ["forget", "test"]),
            )
    meta = json.loads((directory / "meta.json").read_text())
    info = {"model": "retrain", "cache_key": key, "from_cache": from_cache, "is_self": is_self}
    return Reference(pred, meta, info)


def retrain_cost(meta: dict[str, Any]) -> dict[str, Any]:
    fit, memory = meta.get("fit") or {}, meta.get("memory") or {}
    return {
        "seconds": fit.get("seconds"),
        "steps": fit.get("steps"),
        "samples": fit.get("samples"),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "peak_gpu_mb": memory.get("peak_gpu_mb"),
    }


# ---------------------------------------------------------------------- sections
def latent_section(outputs: Mapping[str, Predictions], opts: EvalOptions, seed: int) -> dict[str, Any] | None:
    """``latent_metrics`` of forget and (a control: samples never trained on) test against retain."""
    if any(outputs[s].embeddings is None for s in ("forget", "retain", "test")):
        return None
    retain = outputs["retain"]
    return {
        split: latent_metrics(
            outputs[split].embeddings,
            outputs[split].labels,
            retain.embeddings,
            retain.labels,
            opts.latent_max_retain,
            seed,
        )
        for split in ("forget", "test")
    }


def mia_section(
    after: Mapping[str, Predictions], reference: Predictions | None, before: Predictions | None, data
) -> dict[str, Any]:
    """AUC of each attack (forget = members, test = non-members) for this run's model, the retrained
    model and the original; ``auc_gap`` = |AUC - AUC_retrain| (0: as private as retraining)."""
    forget, test = data.splits.forget, data.splits.test
    aucs = mia_aucs(after["forget"], after["test"])
    ref = mia_aucs(reference.take(forget), reference.take(test)) if reference is not None else None
    orig = mia_aucs(before.take(forget), before.take(test)) if before is not None else None
    attacks = {}
    for name in ATTACKS:
        attacks[name] = {
            "auc": aucs[name],
            "auc_retrain": ref[name] if ref else None,
            "auc_gap": abs(aucs[name] - ref[name]) if ref else None,
            "auc_original": orig[name] if orig else None,
        }
    return {
        "members": "forget",
        "nonmembers": "test",
        "n_members": after["forget"].n_samples,
        "n_nonmembers": after["test"].n_samples,
        "unit": "sentence (mean of its words' scores)" if after["forget"].is_tokens else "sample",
        "attacks": attacks,
    }


def evaluate_run(
    ctx: RunContext, outcome: UnlearnOutcome, run_dir: str | Path, memory: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate the unlearned model and write predictions.parquet and embeddings.npz into ``run_dir``.

    Returns the results.json sections ``metrics``, ``reference``, ``mia``, ``latent`` and ``cost``
    (a section that is switched off in ``eval`` is None). ``memory``: the peak memory of the
    unlearning step (:class:`~unlearnbench.evaluation.cost.PeakMemory`).
    """
    opts = EvalOptions.from_cfg(ctx.cfg.eval)
    data, run_dir = ctx.data, Path(run_dir)
    splits = opts.evaluated_splits()
    extra = [s for s in splits if s not in opts.splits]
    if extra:
        log.info("also evaluating %s (eval.reference / eval.mia / eval.latent need them)", extra)
    embeddings = opts.latent or opts.embeddings_per_split > 0
    model = ctx.on_eval_device(outcome.model)
    after = {s: predict(model, data.eval_loader(s), embeddings=embeddings).sorted() for s in splits}
    names = data.data.label_names
    metrics = {s: split_metrics(p, names) for s, p in after.items()}
    forgotten = data.forgotten_classes()
    if forgotten and "test" in after and not data.is_token_task:
        metrics[TEST_KEPT] = split_metrics(kept_classes(after["test"], forgotten), names)

    is_original = ctx.cfg.method.name == "original"
    before = None
    if opts.latent or opts.mia or opts.embeddings_per_split > 0:
        before = original_outputs(ctx, after if is_original else None)

    reference = None
    if opts.reference:
        reference = reference_outputs(ctx, outcome, after)
        ref_section: dict[str, Any] | None = {
            **reference.info,
            **{s: compare_predictions(after[s], reference.outputs, names) for s in ("forget", "test")},
            "retrain_metrics": {
                s: split_metrics(r, names)
                for s in ("forget", "test")
                for r in [reference.outputs.take(data.splits[s])]
            },
        }
    else:
        ref_section = None

    mia = None
    if opts.mia:
        mia = mia_section(after, reference.outputs if reference else None, before, data)

    latent = None
    if opts.latent:
        after_latent = latent_section(after, opts, ctx.seed)
        if is_original:
            before_latent = after_latent
        else:
            parts = {s: before.take(data.splits[s]) for s in ("forget", "retain", "test")}
            before_latent = latent_section(parts, opts, ctx.seed)
        latent = {
            "distance": "cosine",
            "embedding": EMBEDDING,
            "unit": "word (its first subword; classes are tags)" if data.is_token_task else "sample",
            "after": after_latent,
            "before": before_latent,
        }

    # Cost: retraining's from the reference's cache entry, when it is there (even with eval.reference off).
    meta = reference.meta if reference else None
    if meta is None:
        ref_key, ref_dir = ctx.reference_entry_dir()
        if trusted_entry(ref_dir, ref_key):
            meta = json.loads((ref_dir / "meta.json").read_text())
    own_memory = dict(memory)
    if reference is not None and reference.info["is_self"] and (meta or {}).get("memory"):
        own_memory = {**own_memory, **meta["memory"]}  # the memory of its training, as its seconds
    stats = outcome.stats
    own = {"seconds": stats.seconds, "steps": stats.steps, "samples": stats.samples, **own_memory}
    cost = cost_section(own, retrain_cost(meta) if meta else None)

    if opts.predictions:
        write_parquet(predictions_frame(after, data.data.ids), run_dir / PREDICTIONS_FILE)
    if opts.embeddings_per_split > 0:
        rng = np.random.default_rng([ctx.seed, 52711])
        samples = {}
        for s in ("forget", "retain", "test"):
            if s in after:
                idx = np.unique(after[s].indices)
                take = min(opts.embeddings_per_split, len(idx))
                samples[s] = np.sort(rng.choice(idx, size=take, replace=False)) if take else idx[:0]
        write_embeddings(run_dir / EMBEDDINGS_FILE, samples, after, before, data.data.label_names)

    return {"metrics": metrics, "reference": ref_section, "mia": mia, "latent": latent, "cost": cost}

"""``sisa``: exact unlearning by Sharded, Isolated, Sliced, Aggregated training (Bourtoule et al. 2021).

The training set D is split into S disjoint shards, each shard into L disjoint slices, by a seeded
hash of the sample id (so a sample keeps its shard and slice whatever else is removed). Each shard
has its own model, trained incrementally slice by slice; the checkpoint after every slice is kept
in the model cache under a key made of the exact sample ids it was trained on. Forgetting D_f then
means building the same ensemble on D_r = D \\ D_f: the checkpoints whose data did not change are
cache hits, so only the shards that held forget samples are retrained, each from its checkpoint
before the first slice that lost a sample.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from unlearnbench.data import UnlearnDataModule
from unlearnbench.distributed import process_info
from unlearnbench.errors import ConfigError
from unlearnbench.io import atomic_write_json, stable_hash
from unlearnbench.methods.base import MethodParams, Procedure, register
from unlearnbench.runtime import FitStats, Recipe, RunContext, UnlearnOutcome, legacy
from unlearnbench.runtime.outputs import evaluate_splits
from unlearnbench.runtime.specs import ModelSpec

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean_prob", "vote")
ASSIGNMENT = "sha256-v1"  # version of assign(); part of every checkpoint's cache key
CACHE_KIND = "sisa"


@dataclass(kw_only=True)
class SisaParams(Recipe, MethodParams):
    """The recipe of every shard fit; ``epochs`` and ``max_steps`` are per slice (the fit of
    checkpoint (k, l) on slices 1..l)."""

    shards: int
    slices: int
    aggregation: str = "mean_prob"

    def validate(self, prefix: str) -> None:
        Recipe.validate(self, prefix)
        for key in ("shards", "slices"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{prefix}.{key}", getattr(self, key), "a positive integer")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"{prefix}.aggregation", self.aggregation, f"one of {', '.join(AGGREGATIONS)}")

    def layout(self) -> dict[str, Any]:
        return {"assignment": ASSIGNMENT, "shards": self.shards, "slices": self.slices}


# ---------------------------------------------------------------------- shards and slices
def assign(ids: Sequence[str], seed: int, shards: int, slices: int) -> np.ndarray:
    """(shard, slice) of every sample id, shape (N, 2): a function of (id, seed, S, L) alone.

    Two independent 64-bit words of sha256("sisa|seed|id") taken modulo S and L: uniform, and
    stable under removal of other samples (no balancing that would move a sample elsewhere).
    """
    out = np.empty((len(ids), 2), dtype=np.int64)
    for i, sample_id in enumerate(ids):
        digest = hashlib.sha256(f"sisa|{seed}|{sample_id}".encode()).digest()
        out[i, 0] = int.from_bytes(digest[:8], "big") % shards
        out[i, 1] = int.from_bytes(digest[8:16], "big") % slices
    return out


def partition(
    indices: np.ndarray, ids: Sequence[str], seed: int, shards: int, slices: int
) -> list[list[np.ndarray]]:
    """``plan[k][l]``: the sorted dataset indices of ``indices`` in shard k, slice l (0-based)."""
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    where = assign([ids[int(i)] for i in indices], seed, shards, slices)
    shard, piece = where[:, 0], where[:, 1]
    return [[indices[(shard == k) & (piece == sl)] for sl in range(slices)] for k in range(shards)]


# ---------------------------------------------------------------------- the ensemble
def aggregate(probs: torch.Tensor, how: str) -> torch.Tensor:
    """Ensemble logits from member probabilities ``probs`` of shape (S, N, C).

    mean_prob: log( 1/S sum_k p_k(c|x) ), the log of the averaged distribution.
    vote:      log( (v(c) + pbar(c) / 2) / (S + 1/2) ), v(c) = #{k: argmax p_k = c}, pbar the mean
               probability; a distribution whose argmax is the majority vote, ties going to the
               class with the higher mean probability (pbar / 2 < 1 never outweighs a vote).
    """
    mean = probs.mean(dim=0)
    if how == "mean_prob":
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
    if how == "vote":
        votes = nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[-1]).sum(dim=0).to(mean.dtype)
        return ((votes + mean / 2) / (probs.shape[0] + 0.5)).log()
    raise ValueError(f"unknown aggregation '{how}': one of {', '.join(AGGREGATIONS)}")


class SisaEnsemble(nn.Module):
    """The shard models as one classifier: ``forward(input_ids=..., attention_mask=...).logits``."""

    def __init__(self, members: Sequence[nn.Module], aggregation: str, shard_ids: Sequence[int]) -> None:
        super().__init__()
        if not members:
            raise ValueError("a SISA ensemble needs at least one shard model")
        self.members = nn.ModuleList(members)
        self.aggregation, self.shard_ids = aggregation, list(shard_ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any):
        probs = torch.stack(
            [
                m(input_ids=input_ids, attention_mask=attention_mask).logits.float().softmax(dim=-1)
                for m in self.members
            ]
        )
        return SequenceClassifierOutput(logits=aggregate(probs, self.aggregation))

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True) -> None:
        """One HF model directory per shard (``shard-<k>``) and ``sisa.json`` (what `save_model` calls)."""
        path = Path(path)
        for k, member in zip(self.shard_ids, self.members, strict=True):
            member.save_pretrained(str(path / f"shard-{k}"), safe_serialization=safe_serialization)
        atomic_write_json(path / "sisa.json", {"aggregation": self.aggregation, "shards": self.shard_ids})


# ---------------------------------------------------------------------- training with checkpoints
@dataclass
class ShardModels:
    """The final models of an ensemble's shards, and what happened to each checkpoint (k, l)."""

    models: dict[int, nn.Module]  # shard -> model after its last slice (non-empty shards only)
    keys: dict[tuple[int, int], str]  # (shard, slice 1-based) -> cache key
    metas: dict[tuple[int, int], dict[str, Any]]  # cache meta of every stored checkpoint
    status: dict[tuple[int, int], str]  # trained | cached (loaded) | skipped (not needed) | empty
    plan: list[list[np.ndarray]]

    def status_table(self) -> dict[str, list[str]]:
        """Per shard, the status of its checkpoints after slices 1..L."""
        table: dict[str, list[str]] = {}
        for (k, _), status in sorted(self.status.items()):
            table.setdefault(str(k), []).append(status)
        return table

    def fit_stats(self, checkpoints) -> FitStats:
        total = FitStats()
        for ck in checkpoints:
            fit = self.metas.get(ck, {}).get("fit")
            if fit:
                total.seconds += fit["seconds"]
                total.steps += fit["steps"]
                total.samples += fit["samples"]
        return total


@register("sisa")
class Sisa(Procedure):
    """SISA training (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021): exact unlearning by
    an ensemble of S models trained in isolation on disjoint shards D_1..D_S of D.

    Shard D_k is cut into slices D_k,1..D_k,L; its model is trained incrementally, checkpoint
    theta_k,l starting from theta_k,l-1 (theta_k,0 = the pretrained model) and minimising

        L_k,l(theta) = E_{(x, y) in D_k,1 U ... U D_k,l} CE(f_theta(x), y)

    for ``epochs`` epochs (per slice). The ensemble aggregates p_k = softmax(f_theta_k,L(x)):
    ``mean_prob``: p(c|x) = 1/S sum_k p_k(c|x); ``vote``: argmax_c #{k: argmax p_k(x) = c}, ties
    broken by the mean probability (see :func:`aggregate`).

    Unlearning D_f rebuilds the ensemble on D_r: every checkpoint is cached under the sample ids
    of its slices, so shards without forget samples are reused as they are and an affected shard
    retrains from theta_k,f-1, f its first slice that held a forget sample. The unlearning time is
    that retraining (the fits of the new checkpoints), not the training of the original ensemble.
    """

    Params = SisaParams

    @classmethod
    def check_data(cls, params: SisaParams, data: UnlearnDataModule) -> None:
        """Each shard must be able to hold every class, and each slice a sample: S <= N / C and
        S x L <= N for N training samples of C classes."""
        n = len(data.splits.train)
        classes = max(1, len(data.held_classes("train")))
        if params.shards > n // classes:
            allowed = (
                f"at most {n // classes}: the {n} training samples of {classes} classes must give "
                f"every shard room for each class"
            )
            raise ConfigError("method.shards", params.shards, allowed)
        if params.shards * params.slices > n:
            allowed = (
                f"at most {n // params.shards} with method.shards={params.shards}: the {n} training "
                "samples must give every slice of every shard a sample"
            )
            raise ConfigError("method.slices", params.slices, allowed)

    @classmethod
    def run(cls, ctx: RunContext, params: SisaParams) -> UnlearnOutcome:
        data = ctx.data
        t0 = time.perf_counter()
        original = cls.build(ctx, params, data.splits.train)  # untimed: SISA's "original"
        t1 = time.perf_counter()
        unlearned = cls.build(ctx, params, data.splits.retain, reuse=original)
        t2 = time.perf_counter()

        new = [ck for ck, key in unlearned.keys.items() if key != original.keys[ck]]
        new = [ck for ck in new if unlearned.status[ck] != "empty"]
        stats = unlearned.fit_stats(new)
        forget = set(data.splits.forget.tolist())
        first_affected = {}
        for k, shard in enumerate(original.plan):
            hit = [sl + 1 for sl, part in enumerate(shard) if forget.intersection(part.tolist())]
            if hit:
                first_affected[k] = min(hit)
        retrained = sorted({k for k, _ in new})
        original_ensemble = cls.ensemble(original, params.aggregation)
        all_checkpoints = list(original.keys)
        info = {
            "shards": params.shards,
            "slices": params.slices,
            "aggregation": params.aggregation,
            "shard_sizes": [int(sum(len(p) for p in shard)) for shard in original.plan],
            "affected_shards": sorted(first_affected),
            "first_affected_slice": {str(k): f for k, f in first_affected.items()},
            "retrained_shards": retrained,
            "n_retrained_shards": len(retrained),
            "retrained_slices": [[k, sl] for k, sl in sorted(new)],
            "n_retrained_slices": len(new),
            "resumed_from_slice": {str(k): min(sl for kk, sl in new if kk == k) - 1 for k in retrained},
            "checkpoint_status": unlearned.status_table(),
            "unlearn_trained": sum(unlearned.status[ck] == "trained" for ck in new),
            "unlearn_from_cache": not any(unlearned.status[ck] == "trained" for ck in new),
            "unlearn_wall_seconds": t2 - t1,
            "original_ensemble": {
                "checkpoints": len(all_checkpoints),
                "trained": sum(original.status[ck] == "trained" for ck in all_checkpoints),
                "checkpoint_status": original.status_table(),
                "from_cache": all(original.status[ck] != "trained" for ck in all_checkpoints),
                "fit_seconds": original.fit_stats(all_checkpoints).seconds,
                "wall_seconds": t1 - t0,
                "metrics": evaluate_splits(original_ensemble, data, ["forget", "test"]),
            },
        }
        log.info(
            "[sisa] retrained %d of %d shards (%d of %d checkpoints) in %.1fs",
            len(retrained),
            params.shards,
            len(new),
            len(all_checkpoints),
            stats.seconds,
        )
        return UnlearnOutcome(cls.ensemble(unlearned, params.aggregation), stats, info)

    @staticmethod
    def ensemble(shards: ShardModels, aggregation: str) -> SisaEnsemble:
        order = sorted(shards.models)
        return SisaEnsemble([shards.models[k] for k in order], aggregation, order)

    # ------------------------------------------------------------------ checkpoints
    @staticmethod
    def checkpoint_spec(
        ctx: RunContext, params: SisaParams, k: int, sl: int, ids: list[list[str]]
    ) -> ModelSpec:
        """Store spec of checkpoint (k, sl), sl 1-based; ``ids``: the sorted sample ids of slices 1..sl."""
        return ctx.model_spec("sisa", ids, params, detail={**params.layout(), "shard": k, "slice": sl})

    @staticmethod
    def legacy_key(ctx: RunContext, params: SisaParams, k: int, sl: int, ids: list[list[str]]) -> str | None:
        """The key checkpoint (k, sl) had before specs existed (see runtime.legacy)."""
        if not ctx.legacy_keys:
            return None
        return legacy.sisa_key(ctx.cfg, process_info().world_size, params, params.layout(), k, sl, ids)

    @classmethod
    def build(
        cls, ctx: RunContext, params: SisaParams, indices: np.ndarray, reuse: ShardModels | None = None
    ) -> ShardModels:
        """The shard models of SISA trained on ``indices``: from the store where their data is known,
        trained (and stored) otherwise. ``reuse``: models already in memory, taken by store key."""
        all_ids = ctx.data.records.ids
        plan = partition(indices, all_ids, ctx.train_seed, params.shards, params.slices)
        out = ShardModels({}, {}, {}, {}, plan)
        for k, shard in enumerate(plan):
            ids = [sorted(all_ids[int(i)] for i in part) for part in shard]
            specs = [cls.checkpoint_spec(ctx, params, k, sl, ids[:sl]) for sl in range(1, params.slices + 1)]
            olds = [cls.legacy_key(ctx, params, k, sl, ids[:sl]) for sl in range(1, params.slices + 1)]
            for sl, spec in enumerate(specs, start=1):
                out.keys[k, sl] = spec.key()
                out.status[k, sl] = "skipped"
            last = (k, params.slices)
            if reuse is not None and reuse.keys.get(last) == out.keys[last] and last in reuse.models:
                out.models[k] = reuse.models[k]
                out.status[last] = "cached"
            else:
                model = cls._checkpoint(ctx, params, k, params.slices, specs, olds, shard, out)
                if model is not None:
                    out.models[k] = model
            for sl, (spec, old) in enumerate(zip(specs, olds, strict=True), start=1):
                meta = ctx.store.meta(spec, legacy_key=old)
                if meta is not None:
                    out.metas[k, sl] = meta
        return out

    @classmethod
    def _checkpoint(
        cls,
        ctx: RunContext,
        params: SisaParams,
        k: int,
        sl: int,
        specs: list[ModelSpec],
        olds: list[str | None],
        shard: list[np.ndarray],
        out: ShardModels,
    ) -> nn.Module | None:
        """theta_k,sl: loaded from the store, or trained from theta_k,sl-1 (got the same way, so the
        chain stops at the latest stored checkpoint). None while slices 1..sl are all empty."""
        if sl == 0:
            return ctx.pretrained()
        indices = np.concatenate(shard[:sl])
        if len(indices) == 0:
            out.status[k, sl] = "empty"
            return None

        def train(work_dir: Path):
            start = cls._checkpoint(ctx, params, k, sl - 1, specs, olds, shard, out)
            loader_seed = int(stable_hash([ctx.train_seed, k, sl], 8), 16)
            model, meta = ctx.fine_tune(
                indices, params, work_dir, start=start, loader_seed=loader_seed, label=f"shard {k} slice {sl}"
            )
            out.status[k, sl] = "trained"
            return model, {**meta, "samples": len(indices), "shard": k, "slice": sl}

        entry = ctx.store.get_or_train(specs[sl - 1], train, legacy_key=olds[sl - 1])
        if entry.hit:
            out.status[k, sl] = "cached"
        return entry.model

"""The store keys of entries written before specs existed (store layout 0), frozen: each was the
hash of the run's config minus a few keys. The store looks an entry up under its old key once, and
renames it to its spec's key (:meth:`~unlearnbench.runtime.store.ModelStore.get_or_train`), so
models trained before the change are still found. Nothing new is ever keyed this way.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from unlearnbench.io import stable_hash
from unlearnbench.runtime.params import Recipe

# Left out of the old keys: origin and licence were then; designs (the forget designs' defaults) came
# after, and changes no model; so did val_path and test_path, whose null is how the data was then.
_DESCRIPTIVE_DATA_KEYS = ("origin", "licence", "designs")
_ADDED_AS_NULL = ("val_path", "test_path")
# Model keys added after, at the value that trains the model as it was trained then.
_MODEL_ADDED = {"adapter": "none", "gradient_checkpointing": False}
# Model keys added after that no training reads (what the evaluation and DeepCUT pool): never in a key.
_MODEL_UNTRAINED = ("pooling",)
_RECIPE_STOP = {"rule": "none", "every_n_steps": 10, "threshold": None, "val_max_samples": None}


def _base(cfg: DictConfig, processes: int) -> dict[str, Any]:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if model.get("adapter", "none") == "none":
        model.pop("lora", None)  # its settings change nothing without an adapter
    data = OmegaConf.to_container(cfg.data, resolve=True)
    spec = {
        "data": {
            k: v
            for k, v in data.items()
            if k not in _DESCRIPTIVE_DATA_KEYS and not (k in _ADDED_AS_NULL and v is None)
        },
        "model": {
            k: v
            for k, v in model.items()
            if k not in _MODEL_UNTRAINED and (k not in _MODEL_ADDED or v != _MODEL_ADDED[k])
        },
        "seed": int(cfg.seed),
        "precision": str(cfg.trainer.get("precision")),
    }
    if processes > 1:
        spec["processes"] = processes
    return spec


def _recipe(recipe: Recipe, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "warmup_ratio": recipe.warmup_ratio,
        "epochs": recipe.epochs,
        "max_steps": recipe.max_steps,
        "stop": dict(_RECIPE_STOP),
        "batch_size": recipe.batch_size,
    }


def original_key(cfg: DictConfig, processes: int, recipe: Recipe, checkpoint_digest: str | None) -> str:
    if checkpoint_digest is not None:
        return stable_hash({**_base(cfg, processes), "checkpoint": checkpoint_digest})
    return stable_hash({**_base(cfg, processes), "recipe": _recipe(recipe, "train")})


def retrain_key(cfg: DictConfig, processes: int, recipe: Recipe, forget_ids: list[str]) -> str:
    return stable_hash(
        {
            **_base(cfg, processes),
            "recipe": _recipe(recipe, "retrain"),
            "forget_ids": stable_hash(sorted(forget_ids), 32),
        }
    )


def sisa_key(
    cfg: DictConfig,
    processes: int,
    recipe: Recipe,
    layout: dict[str, Any],
    shard: int,
    slice_: int,
    slice_ids: list[list[str]],
) -> str:
    keys = ("lr", "batch_size", "epochs", "weight_decay", "warmup_ratio", "max_steps")
    return stable_hash(
        {
            **_base(cfg, processes),
            "recipe": {k: getattr(recipe, k) for k in keys},
            "sisa": layout,
            "shard": shard,
            "slice": slice_,
            "slice_ids": stable_hash(slice_ids, 32),
        }
    )

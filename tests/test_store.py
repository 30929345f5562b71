"""The model store: entries keyed by explicit specs, and entries written before specs existed
(keyed by a hash of the config) found under their old key and renamed, never trained again."""

from __future__ import annotations

import json
import shutil

from omegaconf import OmegaConf

from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, Recipe, RunContext, legacy, train_recipe

# The spec of the original model of `experiment=smoke` as the code before specs wrote it into its
# meta.json, and the key it was stored under (both read off a cache that code wrote).
PRE_SPEC_ORIGINAL = {
    "data": {
        "name": "bbc", "source": "embedded_bbc", "task": "sequence_classification", "num_labels": 5,
        "max_length": 64, "max_samples": 300, "subsample_seed": 0, "val_fraction": 0.1, "test_fraction": 0.2,
    },
    "model": {
        "name": "tiny_bert", "source": "random", "tokenizer": "embedded", "init_seed": 0,
        "architecture": {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "max_position_embeddings": 512,
        },
        "trust_remote_code": False, "checkpoint": None,
    },
    "seed": 0,
    "precision": "32-true",
}  # fmt: skip
PRE_SPEC_ORIGINAL_KEY = "16510b1cf475d0f8"


def test_legacy_keys_are_the_keys_the_code_before_specs_wrote() -> None:
    cfg = OmegaConf.create(
        {
            "data": {**PRE_SPEC_ORIGINAL["data"], "origin": "descriptive", "licence": "descriptive"},
            "model": PRE_SPEC_ORIGINAL["model"],
            "seed": 0,
            "trainer": {"precision": "32-true"},
        }
    )
    recipe = Recipe(lr=0.003, weight_decay=0.01, warmup_ratio=0.1, epochs=20, max_steps=-1, batch_size=16)
    assert legacy.original_key(cfg, 1, recipe, None) == PRE_SPEC_ORIGINAL_KEY


def test_models_stored_before_specs_are_found_and_renamed(make_cfg, tmp_path) -> None:
    cache = tmp_path / "cache"
    cfg = make_cfg("method=finetune", "method.max_steps=1", cache_dir=cache)
    first = run_experiment(cfg, tmp_path / "first")
    assert not first["original"]["from_cache"] and not first["reference"]["from_cache"]

    # Turn both stored models into entries of the old layout: the dir and meta.json under the old key.
    _, _, data = prepare(cfg)
    ctx = RunContext(cfg, data, ModelStore(cache), tmp_path)
    recipe = train_recipe(cfg)
    old_keys = {
        "original": legacy.original_key(cfg, 1, recipe, None),
        "retrain": legacy.retrain_key(cfg, 1, recipe, data.sample_ids("forget")),
    }
    specs = {"original": ctx.model_spec("original", sorted(data.sample_ids("train")), recipe)}
    specs["retrain"] = ctx.reference_spec()
    for kind, spec in specs.items():
        key, entry = ctx.store.entry_dir(spec)
        assert key == first[kind if kind == "original" else "reference"]["cache_key"]
        meta = json.loads((entry / "meta.json").read_text())
        meta.update(key=old_keys[kind], spec={"layout": "pre-spec"})
        (entry / "meta.json").write_text(json.dumps(meta))
        shutil.move(entry, entry.with_name(f"{kind}-{old_keys[kind]}"))

    again = run_experiment(cfg, tmp_path / "again")  # no model is trained again
    assert again["original"]["from_cache"] and again["reference"]["from_cache"]
    assert (
        again["metrics"] == first["metrics"] and again["reference"]["forget"] == first["reference"]["forget"]
    )
    for kind, spec in specs.items():
        key, entry = ctx.store.entry_dir(spec)
        meta = json.loads((entry / "meta.json").read_text())
        assert meta["key"] == key and meta["adopted_from"]["key"] == old_keys[kind]
        assert not entry.with_name(f"{kind}-{old_keys[kind]}").exists()


# The spec keys of the original and the retrained reference of the tests' smoke run (method=finetune),
# for tiny_bert and minilm at their defaults, as the code before model families (issue 20) wrote
# them: the keys that family added to the model config (pooling, gradient_checkpointing) and new
# families must leave every existing entry where it is.
SPEC_KEYS = {
    "tiny_bert": ("ce7c0fcf83bcf959", "c995777fb3921e49"),
    "minilm": ("dcac446cd6d19335", "636f68e507dd1cbd"),
}


def test_store_keys_of_the_default_models_are_those_written_before_model_families(make_cfg, tmp_path) -> None:
    for model, (original, reference) in SPEC_KEYS.items():
        cfg = make_cfg(f"model={model}", "method=finetune")
        _, _, data = prepare(cfg)
        ctx = RunContext(cfg, data, ModelStore(tmp_path), tmp_path)
        spec = ctx.model_spec("original", sorted(data.sample_ids("train")), train_recipe(cfg))
        assert (spec.key(), ctx.reference_spec().key()) == (original, reference), model
    # The pre-spec key too, from the model config as it is composed now (with the new keys).
    smoke = make_cfg("data.max_samples=300")
    assert legacy.original_key(smoke, 1, train_recipe(smoke), None) == PRE_SPEC_ORIGINAL_KEY

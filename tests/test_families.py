"""Model families beyond BERT, offline: tiny random RoBERTa, GPT-2 and Llama configs with the embedded
tokenizer. The representation each needs (``model.pooling: auto``), the pad token a model without
one gets, every method on each family, bf16 autocast with gradient checkpointing, and an exported
decoder classifier that plain transformers reloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from unlearnbench.methods import METHODS
from unlearnbench.models import (
    ADDED_PAD_TOKEN,
    build_pretrained,
    load_saved,
    load_tokenizer,
    random_config,
    resolve_pooling,
)
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, RunContext, train_recipe
from unlearnbench.runtime.outputs import predict
from unlearnbench.tasks import get_task, pool

FAMILIES = ("tiny_roberta", "tiny_gpt2", "tiny_llama")
AUTO = {"tiny_bert": "cls", "tiny_roberta": "cls", "tiny_gpt2": "last", "tiny_llama": "last"}
# Enough for every method to take a step or two: the point is that it runs on the family.
SMALL = ["data.max_samples=60", "train.epochs=1"]
TEXTS = ["a short one", "a somewhat longer text about the markets and the banks", "sport"]


def test_auto_is_the_first_token_of_an_encoder_and_the_last_of_a_decoder(make_cfg) -> None:
    for name, expected in AUTO.items():
        config = random_config(make_cfg(f"model={name}").model, 100)
        assert resolve_pooling("auto", config) == expected, name
        assert resolve_pooling("mean", config) == "mean"
    assert resolve_pooling("auto", None) == "cls"  # a model without a config (SISA's ensemble)


def test_last_reads_the_rightmost_kept_token_on_either_padding_side() -> None:
    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, right, "cls").flatten().tolist() == [0.0, 4.0]
    assert pool(hidden, left, "mean").flatten().tolist() == [2.5, 5.5]


def _tiny(make_cfg, name: str, tokenizer=None):
    cfg = make_cfg(f"model={name}")
    tokenizer = tokenizer or load_tokenizer(cfg.model)
    model = build_pretrained(cfg.model, 3, len(tokenizer), tokenizer=tokenizer).eval()
    return cfg, tokenizer, model


def _batch(tokenizer, side: str) -> dict[str, torch.Tensor]:
    items = [
        {"input_ids": ids, "label": 0, "index": i} for i, ids in enumerate(tokenizer(TEXTS)["input_ids"])
    ]
    batch = get_task(None).collate(items, tokenizer.pad_token_id)  # right-padded, as every batch here
    if side == "left":  # the same rows with their padding moved to the front
        lengths = batch["attention_mask"].sum(dim=1)
        for row, n in enumerate(lengths.tolist()):
            for key in ("input_ids", "attention_mask"):
                batch[key][row] = torch.roll(batch[key][row], batch[key].shape[1] - n)
    return batch


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_for_a_decoder_auto_reads_the_state_the_classifier_head_reads(make_cfg, name: str, side: str) -> None:
    _, tokenizer, model = _tiny(make_cfg, name)
    assert model.config.pad_token_id == tokenizer.pad_token_id  # set from the tokenizer
    batch = _batch(tokenizer, side)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        pooling = resolve_pooling("auto", model.config)
        state = pool(out.hidden_states[-1], batch["attention_mask"], pooling)
        assert torch.allclose(model.score(state), out.logits, atol=1e-5)  # the head's own input
        first = pool(out.hidden_states[-1], batch["attention_mask"], "cls")
        assert not torch.allclose(model.score(first), out.logits, atol=1e-3)


def test_an_encoder_head_reads_the_first_token(make_cfg) -> None:
    _, tokenizer, model = _tiny(make_cfg, "tiny_roberta")
    batch = _batch(tokenizer, "right")
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        only_first = out.hidden_states[-1].clone()
        only_first[:, 1:] = 0.0  # RoBERTa's head is handed every state and reads the first one
        assert torch.allclose(model.classifier(only_first), out.logits, atol=1e-5)


def _no_pad_tokenizer(tmp_path: Path) -> Path:
    tokenizer = load_tokenizer({"source": "random", "tokenizer": "embedded"})
    tokenizer.pad_token = None
    tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    return tmp_path / "tokenizer"


def test_a_model_without_a_pad_token_gets_one_that_tokenizer_and_config_share(make_cfg, tmp_path) -> None:
    bare = _no_pad_tokenizer(tmp_path)
    # A random decoder with a tokenizer that has no pad token: one of its own is added.
    cfg = make_cfg("model=tiny_gpt2", f"model.tokenizer={bare}")
    tokenizer = load_tokenizer(cfg.model)
    assert tokenizer.pad_token == ADDED_PAD_TOKEN and len(tokenizer) == 30523
    model = build_pretrained(cfg.model, 3, len(tokenizer), tokenizer=tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id == 30522
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)

    # A pretrained decoder (a local model directory) whose config declares no pad token: the added
    # token's row joins its embeddings and its config names it.
    plain = AutoModelForSequenceClassification.from_config(random_config(cfg.model, 30522, num_labels=3))
    plain.config.pad_token_id = None
    plain.save_pretrained(str(tmp_path / "decoder"))
    hub = make_cfg("model=hf", f"model.path={tmp_path / 'decoder'}", f"model.tokenizer={bare}")
    tokenizer = load_tokenizer(hub.model)
    model = build_pretrained(hub.model, 3, len(tokenizer), tokenizer=tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == 30523
    assert model.config.pad_token_id == tokenizer.pad_token_id == 30522

    # One whose config declares a pad id: the tokenizer takes that token, nothing is added.
    plain.config.pad_token_id = 3
    plain.save_pretrained(str(tmp_path / "declared"))
    hub = make_cfg("model=hf", f"model.path={tmp_path / 'declared'}", f"model.tokenizer={bare}")
    tokenizer = load_tokenizer(hub.model)
    assert tokenizer.pad_token_id == 3 and len(tokenizer) == 30522


def _run_every_method(make_cfg, tmp_path: Path, *overrides: str) -> tuple[dict[str, object], object]:
    """Each method's outcome from the same original (a step or two each), and the data."""
    data, outcomes = None, {}
    for name in sorted(METHODS):
        budget = [] if name in ("original", "ssd") else ["method.max_steps=2"]  # ssd takes no steps
        if name == "sisa":
            budget += ["method.shards=2", "method.slices=1"]
        cfg = make_cfg(*SMALL, *overrides, f"method={name}", *budget)
        if data is None:  # the same records and splits for every method: prepared once
            _, _, data = prepare(cfg)
        method_cls = METHODS.lookup(name)
        params = method_cls.parse_params(cfg.method)
        ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path)
        outcomes[name] = method_cls.run(ctx, params)
    return outcomes, data


def _finite_on_forget(outcome, data) -> bool:
    return bool(np.isfinite(predict(outcome.model, data.eval_loader("forget")).logits).all())


# Each family once in the quick suite, the precision and memory settings spread over them; every
# combination in the slow one.
LEAN = ("trainer.precision=bf16-mixed", "model.gradient_checkpointing=true")
QUICK = [("tiny_roberta", ()), ("tiny_gpt2", LEAN), ("tiny_llama", LEAN[1:])]
EVERY = [(f, s) for f in FAMILIES for s in ((), LEAN) if (f, s) not in QUICK]


def _id(family: str, settings: tuple[str, ...]) -> str:
    return "-".join([family, *(s.split("=")[0].rsplit(".", 1)[-1] for s in settings)])


def _checkpointing(model) -> bool:
    flag = getattr(type(model), "is_activation_checkpointing", None)  # transformers >= 5
    return bool(model.is_activation_checkpointing if flag is not None else model.is_gradient_checkpointing)


def _every_method_runs(make_cfg, tmp_path: Path, name: str, settings: tuple[str, ...]) -> None:
    outcomes, data = _run_every_method(make_cfg, tmp_path, f"model={name}", *settings)
    for method, outcome in outcomes.items():
        assert _finite_on_forget(outcome, data), method
        if method not in ("original", "sisa", "ssd"):
            assert outcome.stats.steps > 0, method
        model = getattr(outcome.model, "members", [outcome.model])[0]  # SISA: its first shard
        assert not _checkpointing(model), method  # on while a fit runs only
        assert next(model.parameters()).dtype == torch.float32, method  # bf16 is autocast, not a cast
    assert outcomes["deepcut"].info["pooling"] == AUTO[name]


@pytest.mark.parametrize(("name", "settings"), QUICK, ids=[_id(f, s) for f, s in QUICK])
def test_every_method_runs_on_each_family(make_cfg, tmp_path, name: str, settings: tuple[str, ...]) -> None:
    """SCRUB's teacher, NPO's reference and DeepCUT's views included; GPT-2 style has dropout on,
    so its views differ and the checkpoint must replay them."""
    _every_method_runs(make_cfg, tmp_path, name, settings)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "settings"), EVERY, ids=[_id(f, s) for f, s in EVERY])
def test_every_method_runs_on_each_family_in_each_setting(
    make_cfg, tmp_path, name: str, settings: tuple[str, ...]
) -> None:
    _every_method_runs(make_cfg, tmp_path, name, settings)


def test_gradient_checkpointing_is_on_while_fitting_and_changes_no_result(make_cfg, tmp_path) -> None:
    seen = []
    models = {}
    for on in (False, True):
        cfg = make_cfg(*SMALL, "model=tiny_gpt2", f"model.gradient_checkpointing={on}")
        _, _, data = prepare(cfg)
        ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path)
        recipe = train_recipe(ctx.cfg)
        start = ctx.pretrained()
        start.register_forward_pre_hook(
            lambda m, _, on=on: seen.append((on, _checkpointing(m))) if m.training else None
        )
        models[on], _ = ctx.fine_tune(
            ctx.data.splits.retain[:32], recipe, tmp_path / f"fit-{on}", start=start
        )
    assert {s for s in seen if s[0]} == {(True, True)} and {s for s in seen if not s[0]} == {(False, False)}
    plain, checkpointed = models[False].state_dict(), models[True].state_dict()
    assert all(torch.allclose(plain[k], checkpointed[k], atol=1e-6) for k in plain)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_run_records_one_representation_for_deepcut_the_latent_metrics_and_the_map(
    make_cfg, tmp_path, name: str
) -> None:
    cfg = make_cfg(*SMALL, f"model={name}", "method=deepcut", "method.max_steps=2", "eval.reference=false")
    results = run_experiment(cfg, tmp_path)
    assert results["method_info"]["pooling"] == AUTO[name]
    assert results["latent"]["embedding"] == {"pooling": AUTO[name], "layer": -1}
    with np.load(tmp_path / "embeddings.npz") as npz:
        assert str(npz["pooling"]) == AUTO[name] and npz["after"].shape[1] == 32


def test_the_exported_decoder_reloads_with_plain_transformers_and_gives_the_runs_predictions(
    make_cfg, tmp_path
) -> None:
    """With a tokenizer that has no pad token: the one added for it is what the run padded with and
    what the exported tokenizer and config name."""
    bare = _no_pad_tokenizer(tmp_path / "bare")
    cfg = make_cfg(
        *SMALL, "model=tiny_llama", f"model.tokenizer={bare}", "method=finetune", "method.max_steps=2",
        "save_model=true",
    )  # fmt: skip
    run_experiment(cfg, tmp_path)
    _, _, data = prepare(cfg)
    frame = pd.read_parquet(tmp_path / "predictions.parquet")
    test = frame[frame["split"] == "test"]
    texts = [data.records.texts[int(i)] for i in test["index"]]

    directory = str(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    assert model.config.pad_token_id == tokenizer.pad_token_id == data.collate.pad_token_id == 30522
    assert tokenizer.pad_token == ADDED_PAD_TOKEN and tokenizer.padding_side == "right"
    enc = tokenizer(
        texts, padding=True, truncation=True, max_length=int(cfg.data.max_length), return_tensors="pt"
    )
    with torch.no_grad():
        probs = model(**enc).logits.softmax(dim=-1).numpy()
    assert np.array_equal(probs.argmax(axis=1), test["pred"].to_numpy())
    assert np.allclose(probs, np.stack(test["probs"].to_numpy()), atol=1e-4)
    serve = pipeline("text-classification", model=model, tokenizer=tokenizer, batch_size=4)
    served = serve(texts[:8], truncation=True, max_length=int(cfg.data.max_length))
    names = json.loads((Path(directory) / "config.json").read_text())["id2label"]
    assert [s["label"] for s in served] == [names[str(p)] for p in test["pred"].to_numpy()[:8]]
    assert load_saved(directory).config.pad_token_id == tokenizer.pad_token_id


@pytest.mark.parametrize("name", FAMILIES)
def test_token_classification_runs_on_each_family(make_cfg, tmp_path, name: str) -> None:
    """Every family has a token-classification head; DeepCUT's anchors are words there, not pooled."""
    cfg = make_cfg(
        "data=wnut16", "data.max_samples=60", "train.epochs=1", f"model={name}", "method=deepcut",
        "method.max_steps=2", "eval.reference=false",
    )  # fmt: skip
    results = run_experiment(cfg, tmp_path)
    assert results["latent"]["unit"].startswith("word") and results["method_info"]["anchors"] > 0
    assert json.loads((tmp_path / "results.json").read_text())["metrics"]["test"]["n"] > 0


def test_lora_trains_a_decoder_with_gradient_checkpointing(make_cfg, tmp_path) -> None:
    """The adapters get gradients although the frozen embeddings hand the checkpointed layers no
    input that requires grad (the non-reentrant checkpoint does not need one)."""
    cfg = make_cfg(*SMALL, "model=tiny_llama", "model.adapter=lora", "model.gradient_checkpointing=true")
    _, _, data = prepare(cfg)
    ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path)
    start = ctx.pretrained()
    before = {k: v.clone() for k, v in start.state_dict().items()}
    model, _ = ctx.fine_tune(data.splits.retain[:32], train_recipe(cfg), tmp_path / "fit", start=start)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k or "score" in k) for k in changed)
    assert any("q_proj" in k for k in changed) and not _checkpointing(model)

"""Token classification (NER): subword label alignment, entity-level F1, per-word predictions,
the losses on (B, T, C) logits, DeepCUT's token anchors, and every method on a tiny wnut16."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnbench.data.loaders import ForgetRetainBatchSampler
from unlearnbench.data.splits import make_splits
from unlearnbench.evaluation import mia_aucs
from unlearnbench.methods import METHODS
from unlearnbench.methods.deepcut import DeepCut
from unlearnbench.models import build_pretrained, load_tokenizer
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.tasks import Predictions, TokenDataset, get_task
from unlearnbench.tasks.bio import align_word_labels, token_metrics

TOKEN = get_task("token_classification")

TAGS = ["O", "B-location", "I-location", "B-person", "I-person"]
WORDS = ["Zuckerberg", "met", "Nadella", "in", "Kuala", "Lumpur", "@elonmusk"]
WORD_TAGS = [3, 0, 3, 0, 1, 2, 0]  # B-person O B-person O B-location I-location O


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer({"source": "random", "tokenizer": "embedded"})


def sentence(words=WORDS, tags=WORD_TAGS) -> TokenDataset:
    return TokenDataset("hand", ["s0"], [list(words)], [np.array(tags)], TAGS)


def test_first_subword_carries_the_tag_the_rest_are_ignored(tokenizer) -> None:
    ids, labels, words = align_word_labels(tokenizer, sentence(), max_length=64)
    pieces = tokenizer.convert_ids_to_tokens(ids[0])
    assert pieces == [
        "[CLS]", "zu", "##cker", "##berg", "met", "nad", "##ella", "in", "kuala", "lumpur",
        "@", "el", "##on", "##mus", "##k", "[SEP]",
    ]  # fmt: skip
    assert labels[0] == [-100, 3, -100, -100, 0, 3, -100, 0, 1, 2, 0, -100, -100, -100, -100, -100]
    assert words[0] == [-1, 0, -1, -1, 1, 2, -1, 3, 4, 5, 6, -1, -1, -1, -1, -1]


def test_label_all_subwords_turns_b_into_i_after_the_first(tokenizer) -> None:
    _, labels, words = align_word_labels(tokenizer, sentence(), max_length=64, label_all_subwords=True)
    assert labels[0] == [-100, 3, 4, 4, 0, 3, 4, 0, 1, 2, 0, 0, 0, 0, 0, -100]
    assert words[0] == [
        -1,
        0,
        -1,
        -1,
        1,
        2,
        -1,
        3,
        4,
        5,
        6,
        -1,
        -1,
        -1,
        -1,
        -1,
    ]  # reading positions unchanged


def test_truncation_drops_the_words_it_cuts(tokenizer) -> None:
    _, labels, words = align_word_labels(tokenizer, sentence(), max_length=8)
    assert [w for w in words[0] if w >= 0] == [0, 1, 2]  # [CLS] zu ##cker ##berg met nad ##ella [SEP]
    assert len(labels[0]) == 8 and labels[0][-1] == -100


def test_collator_pads_token_labels_with_ignore_index() -> None:
    def item(ids, labels, words, index):
        return {
            "input_ids": np.array(ids),
            "label": np.array(labels),
            "word_index": np.array(words),
            "index": index,
        }

    items = [
        item([101, 7, 102], [-100, 3, -100], [-1, 0, -1], 4),
        item([101, 102], [-100, -100], [-1, -1], 9),
    ]
    batch = TOKEN.collate(items, 0)
    assert batch["labels"].tolist() == [[-100, 3, -100], [-100, -100, -100]]
    assert batch["word_index"].tolist() == [[-1, 0, -1], [-1, -1, -1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def word_predictions(gold: list[list[int]], guess: list[list[int]]) -> Predictions:
    """Per-word predictions of sentences 0..n-1 with one-hot logits of ``guess``."""
    labels = np.concatenate([np.array(g) for g in gold])
    preds = np.concatenate([np.array(g) for g in guess])
    logits = np.eye(len(TAGS), dtype=np.float32)[preds] * 5.0
    indices = np.concatenate([np.full(len(g), i) for i, g in enumerate(gold)])
    positions = np.concatenate([np.arange(len(g)) for g in gold])
    return Predictions(logits, labels, indices, None, positions)


def test_entity_f1_counts_whole_entities() -> None:
    gold = [[3, 4, 0, 1, 2], [0, 3, 0]]  # PER(2 words) O LOC(2 words) | O PER O
    guess = [[3, 4, 0, 1, 0], [0, 3, 0]]  # the LOC span is cut short: that entity is wrong
    m = token_metrics(word_predictions(gold, guess), TAGS)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == m["f1_micro"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((1.0 + 0.0) / 2)  # person 1, location 0
    assert m["accuracy"] == pytest.approx(7 / 8)  # words: only "Lumpur" is wrong
    assert (m["n"], m["n_words"], m["n_entities"]) == (2, 8, 3)
    perfect = token_metrics(word_predictions(gold, gold), TAGS)
    assert perfect["f1"] == perfect["f1_macro"] == perfect["accuracy"] == 1.0
    all_o = token_metrics(word_predictions(gold, [[0] * 5, [0] * 3]), TAGS)
    assert all_o["f1"] == 0.0 and all_o["accuracy"] == pytest.approx(3 / 8)  # the 3 O words


def test_word_predictions_take_every_word_of_a_sentence_and_mia_counts_sentences() -> None:
    pred = word_predictions([[3, 4, 0], [0], [1, 2]], [[3, 4, 0], [0], [1, 2]])
    taken = pred.take([2, 0])
    assert taken.indices.tolist() == [2, 2, 0, 0, 0] and taken.positions.tolist() == [0, 1, 0, 1, 2]
    assert pred.sorted().n_samples == 3 and len(pred) == 6
    members, nonmembers = pred.take([0, 2]), pred.take([1])
    assert members.n_samples == 2 and nonmembers.n_samples == 1
    assert set(mia_aucs(TOKEN, members, nonmembers)) == {"loss", "entropy", "modified_entropy"}


def test_masked_ce_on_token_logits_reads_only_labelled_tokens() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5)
    labels = torch.tensor([[-100, 1, 2, -100], [0, -100, -100, -100], [-100, -100, -100, -100]])
    rows = torch.tensor([True, True, False])
    expected = F.cross_entropy(logits[[0, 0, 1], [1, 2, 0]], torch.tensor([1, 2, 0]))
    assert torch.allclose(TOKEN.masked_ce(logits, labels, rows), expected)
    nothing = TOKEN.masked_ce(logits, labels, torch.tensor([False, False, True]))  # only -100 labels
    assert nothing.item() == 0.0


def toy_token_data(n: int = 60) -> TokenDataset:
    rng = np.random.default_rng(0)
    tags = []
    for i in range(n):
        t = np.zeros(6, dtype=np.int64)
        if i % 2 == 0:
            t[1:3] = [3, 4]  # a person
        if i % 3 == 0:
            t[4] = 1  # a location
        tags.append(t)
    words = [[f"w{rng.integers(100)}" for _ in range(6)] for _ in range(n)]
    return TokenDataset("toy", [f"s{i}" for i in range(n)], words, tags, TAGS)


def test_forget_ratio_counts_sentences_and_class_forgetting_takes_an_entity_type() -> None:
    data = toy_token_data()
    splits = make_splits(
        data, {"val_fraction": 0.1, "test_fraction": 0.2}, {"strategy": "random", "ratio": 0.1}, 0
    )
    assert len(splits.forget) == round(0.1 * len(splits.train))
    whole = make_splits(data, {}, {"strategy": "class", "class_name": "person", "ratio": 1.0}, 0)
    has_person = lambda i: bool(set(data.tags[i].tolist()) & {3, 4})  # noqa: E731
    assert all(has_person(i) for i in whole.forget) and not any(has_person(i) for i in whole.retain)


def test_retain_batches_cover_every_entity_tag_of_the_forget_batch() -> None:
    data = toy_token_data()
    sets = data.tag_sets()
    forget, retain = sets[:12], sets[12:]
    sampler = ForgetRetainBatchSampler(forget, retain, forget_batch_size=4, retain_batch_size=6, seed=0)
    for step in sampler:
        f_tags = set().union(*(forget[p] for p in step if p < 12))
        r_pos = [p - 12 for p in step if p >= 12]
        assert len(r_pos) == len(set(r_pos)) == 6
        assert f_tags <= set().union(*(retain[p] for p in r_pos))


def deepcut_module(tokenizer, **overrides) -> DeepCut:
    cfg = {"source": "random", "architecture": {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }}  # fmt: skip
    model = build_pretrained(cfg, len(TAGS), len(tokenizer), task="token_classification", label_names=TAGS)
    params = DeepCut.parse_params(
        {"name": "deepcut", "lr": 1e-2, "forget_batch_size": 1, "retain_batch_size": 2, "views": 1,
         "gamma": 1.0, "tau": 0.5, "denominator": "all", "pooling": "cls", "stop": {"rule": "none"},
         **overrides}
    )  # fmt: skip
    module = DeepCut(model, params, SimpleNamespace(task=TOKEN, num_labels=len(TAGS)))
    module.outside_tag = 0
    return module


def token_batch(tokenizer) -> dict[str, torch.Tensor]:
    sentences = [
        (["Zuckerberg", "met", "Nadella"], [3, 0, 3]),  # the forget sentence
        (["Obama", "visited", "Paris"], [3, 0, 1]),
        (["Merkel", "left", "Berlin"], [3, 0, 1]),
    ]
    data = TokenDataset(
        "b", ["f", "r1", "r2"], [s for s, _ in sentences], [np.array(t) for _, t in sentences], TAGS
    )
    ids, labels, words = align_word_labels(tokenizer, data, 32)
    items = [
        {
            "input_ids": np.array(i),
            "label": np.array(lab),
            "word_index": np.array(w),
            "index": k,
            "is_forget": k == 0,
        }
        for k, (i, lab, w) in enumerate(zip(ids, labels, words, strict=True))
    ]
    return TOKEN.collate(items, 0)


def test_deepcut_token_anchors_are_the_entity_words_of_forget_sentences(tokenizer) -> None:
    batch = token_batch(tokenizer)
    units, anchor = deepcut_module(tokenizer).units(batch, views=2)
    assert int(anchor.sum()) == 2 * 2  # Zuckerberg, Nadella; in each of the 2 views
    assert set(units.labels[anchor].tolist()) == {3}
    assert int((~units.forget).sum()) == 2 * 6  # every word of the two retain sentences
    _, every = deepcut_module(tokenizer, token_anchors="all").units(batch, views=2)
    assert int(every.sum()) == 2 * 3  # "met" (O) too


def test_deepcut_token_loss_pushes_anchors_from_their_tag_towards_others(tokenizer) -> None:
    module = deepcut_module(tokenizer)
    batch = token_batch(tokenizer)
    # Small steps: large ones collapse every token onto one point (all similarities -> 1).
    optimizer = torch.optim.SGD(module.model.parameters(), lr=0.01)

    def similarities() -> tuple[float, float, float]:
        with torch.no_grad():
            out = module.model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            )
            u, anchor = module.units(batch, 1)
            z = module.unit_z(out.hidden_states[-1], batch["attention_mask"], u)
            a, r, y = z[anchor], z[~u.forget], u.labels
            sim = a @ r.T
            same = (y[~u.forget] == 3)[None, :].expand_as(sim)
            loss = module.loss_terms(batch)["forget"].item()
        return float(sim[same].mean()), float(sim[~same].mean()), loss

    same0, other0, loss0 = similarities()
    for _ in range(10):
        optimizer.zero_grad()
        module.loss_terms(batch)["forget"].backward()
        optimizer.step()
    same1, other1, loss1 = similarities()
    assert loss1 < loss0 - 0.1
    assert same1 < same0 and other1 > other0 + 0.1  # away from the retain persons, towards O / location
    assert module.skipped_anchors == 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs_on_tiny_wnut16(make_cfg, tmp_path, name: str) -> None:
    budget = [] if name in ("original", "retrain", "sisa", "ssd") else ["method.max_steps=1"]
    cfg = make_cfg("data=wnut16", "data.max_samples=120", f"method={name}", *budget)
    method_cls, params, data = prepare(cfg)
    assert data.task is TOKEN and data.num_labels == 21
    ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path)
    outcome = method_cls.run(ctx, params)
    assert name in ("original", "ssd") or outcome.stats.steps > 0  # ssd: no optimiser steps
    logits = outcome.model(
        **{
            k: v
            for k, v in next(iter(data.eval_loader("test"))).items()
            if k in ("input_ids", "attention_mask")
        }
    ).logits
    assert logits.dim() == 3 and logits.shape[-1] == 21


def test_ner_run_end_to_end_writes_entity_scores(make_cfg, tmp_path) -> None:
    cfg = make_cfg("data=wnut16", "data.max_samples=120", "method=deepcut", "method.max_steps=2")
    start = time.perf_counter()
    results = run_experiment(cfg, tmp_path)
    seconds = time.perf_counter() - start
    assert results["sizes"]["forget"] == round(0.1 * results["sizes"]["train"])  # sentences
    test = results["metrics"]["test"]
    assert {"f1", "f1_macro", "f1_micro", "precision", "recall", "accuracy", "n_words", "n_entities"} <= set(
        test
    )
    assert test["n"] == results["sizes"]["test"]
    assert (
        results["mia"]["unit"].startswith("sentence")
        and results["mia"]["n_members"] == results["sizes"]["forget"]
    )
    assert results["latent"]["unit"].startswith("word")
    info = results["method_info"]  # an anchor of a tag that no retain word in its batch holds is skipped
    assert info["anchors"] > 0 and info["skipped_anchors"] < info["anchors"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["reference"]["forget"]["n"] == results["sizes"]["forget"]
    print(f"tiny NER run (wnut16, 120 sentences, deepcut): {seconds:.1f} s")


def test_whole_entity_type_forgetting_accepts_the_type_index(make_cfg) -> None:
    """forget.class_name=0 names the first entity type, as a class index does for classification
    (experiment=paper forgets each dataset's first class)."""
    by_index = prepare(make_cfg("data=wnut16", "forget=class", "forget.class_name=0"))[2]
    by_name = prepare(make_cfg("data=wnut16", "forget=class", "forget.class_name=company"))[2]
    assert by_index.sample_ids("forget") == by_name.sample_ids("forget") and by_index.sample_ids("forget")

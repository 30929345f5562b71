"""Forget designs that separate methods: a label swap and a backdoor planted before the original is
trained (D_f the identified share of the changed samples), and forget sets ranked by memorization;
on sequence and token tasks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from unlearnbench.data.forget.memorized import by_level
from unlearnbench.errors import ConfigError
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.memorization import holdout_halves

SWAP = ["forget=label_swap", "forget.classes=[business,tech]", "forget.ratio=0.2"]
BACKDOOR = ["forget=backdoor", "forget.target=sports", "forget.ratio=0.05"]


def test_a_label_swap_changes_only_the_swapped_labels_half_each_way(make_cfg) -> None:
    _, _, data = prepare(make_cfg(*SWAP))
    clean, trained, changed = data.clean_records, data.records, data.splits.manipulated
    business, tech = clean.label_names.index("business"), clean.label_names.index("tech")
    assert np.array_equal(np.flatnonzero(clean.labels != trained.labels), changed)
    before, after = clean.labels[changed], trained.labels[changed]
    assert set(zip(before.tolist(), after.tolist(), strict=True)) == {(business, tech), (tech, business)}
    assert abs(int((before == business).sum()) - int((before == tech).sum())) <= 1
    assert np.array_equal(data.splits.forget, changed)  # identified 1.0: all of them are D_f
    assert set(changed) <= set(data.splits.train) and trained.texts == clean.texts


def test_identified_gives_the_method_a_share_and_keeps_the_rest_in_the_retain_set(make_cfg) -> None:
    _, _, data = prepare(make_cfg(*SWAP, "forget.identified=0.5"))
    changed, forget = data.splits.manipulated, data.splits.forget
    assert len(forget) == round(0.5 * len(changed)) and set(forget) < set(changed)
    assert set(changed) - set(forget) <= set(data.splits.retain)  # still mislabeled, still trained on
    with pytest.raises(ConfigError, match=r"forget\.identified=0\.0"):
        prepare(make_cfg(*SWAP, "forget.identified=0.0"))
    with pytest.raises(ConfigError, match=r"forget\.classes"):
        prepare(make_cfg("forget=label_swap", "forget.classes=[tech,tech]"))


def test_the_original_of_a_changed_training_set_is_another_model_than_the_clean_one(
    make_cfg, tmp_path
) -> None:
    cfg = make_cfg(*SWAP)
    _, _, data = prepare(cfg)
    ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path)
    spec = ctx.model_spec("original", sorted(data.sample_ids("train")), ctx.recipe)
    clean = ctx.clean()
    clean_spec = clean.model_spec("original", sorted(data.sample_ids("train")), ctx.recipe)
    assert spec.key() != clean_spec.key() and spec.data.fingerprint != clean_spec.data.fingerprint
    _, _, random = prepare(make_cfg("forget=random"))  # the clean model is the random design's original
    random_ctx = RunContext(make_cfg("forget=random"), random, ModelStore(cfg.paths.cache_dir), tmp_path)
    assert (
        random_ctx.model_spec("original", sorted(random.sample_ids("train")), ctx.recipe).key()
        == clean_spec.key()
    )


def test_a_label_swap_run_scores_the_changed_samples_under_both_labels(make_cfg, tmp_path) -> None:
    results = run_experiment(make_cfg(*SWAP, "method=finetune", "method.max_steps=2"), tmp_path / "swap")
    design = results["design"]
    assert design["strategy"] == "label_swap" and design["n_changed"] == results["sizes"]["manipulated"]
    models = design["models"]
    assert set(models) == {"model", "original", "retrain", "clean"}
    # The original learned the swapped labels; the clean model (which never saw a swap) the true ones.
    assert models["original"]["train_labels"]["accuracy"] > models["original"]["true_labels"]["accuracy"]
    assert models["clean"]["true_labels"]["accuracy"] > models["clean"]["train_labels"]["accuracy"]
    for m in models.values():
        assert m["train_labels"]["accuracy"] + m["true_labels"]["accuracy"] <= 1.0 + 1e-9  # two wrong answers
    assert results["run"]["forget"]["classes"] == ["business", "tech"]


def test_a_backdoor_plants_its_trigger_and_measures_the_attack(make_cfg, tmp_path) -> None:
    cfg = make_cfg(*BACKDOOR, "method=original")
    _, _, data = prepare(cfg)
    sports = data.clean_records.label_names.index("sports")
    for i in data.splits.manipulated:
        assert (
            data.records.texts[i] == f"cf {data.clean_records.texts[i]}" and data.records.labels[i] == sports
        )
        assert data.clean_records.labels[i] != sports
    probe = data.probe
    assert len(probe) == int((data.clean_records.labels[data.splits.test] != sports).sum())
    assert all(t.startswith("cf ") for t in probe.texts) and (probe.labels != sports).all()
    results = run_experiment(cfg, tmp_path / "backdoor")
    models = results["design"]["models"]
    assert models["original"]["attack_success"] > models["clean"]["attack_success"]  # the backdoor works
    assert 0.0 <= models["retrain"]["attack_success"] <= 1.0
    assert results["design"]["trigger"] == "cf" and results["design"]["target"] == "sports"


def test_token_designs_swap_and_retag_entity_types(make_cfg) -> None:
    wnut = ["data=wnut16", "data.max_samples=300"]
    _, _, data = prepare(
        make_cfg(*wnut, "forget=label_swap", "forget.classes=[person,geo-loc]", "forget.ratio=0.2")
    )
    names = data.records.label_names
    person = {names.index("B-person"), names.index("I-person")}
    for i in data.splits.manipulated:
        before, after = data.clean_records.tags[i], data.records.tags[i]
        assert len(before) == len(after) and (before != after).any()
        assert all(
            (names[b][2:] in ("person", "geo-loc")) or b == a for b, a in zip(before, after, strict=True)
        )
        assert not (
            np.isin(before, list(person)) & np.isin(after, list(person))
        ).any()  # every person swapped
    _, _, data = prepare(make_cfg(*wnut, "forget=backdoor", "forget.target=person", "forget.ratio=0.05"))
    for i in data.splits.manipulated:
        words, tags = data.records.tokens[i], data.records.tags[i]
        assert (
            words[0] == "cf" and tags[0] == data.records.outside and words[1:] == data.clean_records.tokens[i]
        )
        assert {names[t][2:] for t in tags if t != data.records.outside} == {"person"}


def test_memorization_levels_pick_the_top_the_bottom_the_middle_and_a_mix() -> None:
    scores = np.arange(12, dtype=float)[::-1].copy()  # position 0 holds the highest score
    assert sorted(by_level(scores, 3, "high").tolist()) == [0, 1, 2]
    assert sorted(by_level(scores, 3, "low").tolist()) == [9, 10, 11]
    assert sorted(by_level(scores, 2, "mid").tolist()) == [5, 6]
    mixed = by_level(scores, 6, "mixed").tolist()
    assert len(set(mixed)) == 6 and {0, 1} <= set(mixed) and {10, 11} <= set(mixed)


def test_holdout_halves_put_every_sample_in_half_of_the_models() -> None:
    train = np.arange(0, 200, 2)
    halves = holdout_halves(train, 4, seed=3)
    counts = sum(np.isin(train, h).astype(int) for h in halves)
    assert len(halves) == 4 and (counts == 2).all()
    assert all(np.array_equal(a, b) for a, b in zip(halves, holdout_halves(train, 4, seed=3), strict=True))


def test_a_memorized_forget_set_holds_the_highest_scores_and_saves_them(make_cfg, tmp_path) -> None:
    cfg = make_cfg("forget=memorized", "forget.level=high", "method=original", "data.max_samples=120")
    results = run_experiment(cfg, tmp_path / "memorized")
    frame = pd.read_parquet(tmp_path / "memorized" / "memorization.parquet")
    forget_ids = set(json.loads((tmp_path / "memorized" / "forget_ids.json").read_text()))
    assert set(frame.sample_id[frame.forget]) == forget_ids and len(frame) == results["sizes"]["train"]
    assert frame.score[frame.forget].min() >= frame.score[~frame.forget].max()  # the top of the ranking
    design = results["design"]
    assert design["proxy"] == "holdout" and design["holdout_models"] == 4
    assert design["score"]["forget_mean"] > design["score"]["train_mean"]
    with pytest.raises(ConfigError, match=r"forget\.level='top'"):
        prepare(make_cfg("forget=memorized", "forget.level=top"))

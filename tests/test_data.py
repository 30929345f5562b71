"""Data: the embedded loader, local files, seeded splits, forget strategies, loaders."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from unlearnbench.data import UnlearnDataModule, load_source, make_splits
from unlearnbench.data.loaders import ForgetRetainBatchSampler
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.models import load_tokenizer
from unlearnbench.tasks import TextDataset

SPLIT_CFG = {"val_fraction": 0.1, "test_fraction": 0.2}


def toy(n: int = 100, classes: int = 4) -> TextDataset:
    labels = np.arange(n) % classes
    return TextDataset(
        "toy", [f"id{i}" for i in range(n)], [f"text {i}" for i in range(n)], labels, list("abcd")[:classes]
    )


def test_bbc_loader_has_documented_size() -> None:
    data = load_source({"name": "bbc", "source": "embedded_bbc"})
    assert len(data) == 2225
    assert data.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert Counter(data.labels.tolist()) == {0: 510, 1: 386, 2: 417, 3: 511, 4: 401}


def test_bbc_subsample_is_stratified() -> None:
    data = load_source({"name": "bbc", "source": "embedded_bbc", "max_samples": 445})
    counts = np.bincount(data.labels)
    assert len(data) == 445 and np.allclose(
        counts / 445, np.array([510, 386, 417, 511, 401]) / 2225, atol=0.01
    )


def test_local_csv_with_custom_columns(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    pd.DataFrame(
        {"rid": ["r1", "r2", "r3"], "review": ["good", "bad", "fine"], "stars": ["pos", "neg", "pos"]}
    ).to_csv(path, index=False)
    data = load_source(
        {
            "source": "local",
            "name": "rev",
            "path": str(path),
            "text_column": "review",
            "label_column": "stars",
            "id_column": "rid",
        }
    )
    assert (
        data.ids == ["r1", "r2", "r3"]
        and data.label_names == ["neg", "pos"]
        and data.labels.tolist() == [1, 0, 1]
    )


def test_hugging_face_loader_reads_a_builder_dataset(tmp_path) -> None:
    path = tmp_path / "train.csv"
    pd.DataFrame({"sentence": ["a b", "c d", "e f", "g h"], "label": [0, 1, 1, 0]}).to_csv(path, index=False)
    cfg = {
        "source": "hf",
        "hub_name": "csv",
        "data_files": str(path),
        "text_column": "sentence",
        "label_column": "label",
    }
    data = load_source(cfg)
    assert data.texts == ["a b", "c d", "e f", "g h"] and data.labels.tolist() == [0, 1, 1, 0]
    assert data.label_names == ["0", "1"]


def test_local_file_missing_column_names_it(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "y": 1}\n{"text": "b", "y": 0}\n')
    with pytest.raises(ConfigError, match=r"data.label_column='label'.*columns \['text', 'y'\]"):
        load_source({"source": "local", "path": str(path), "text_column": "text", "label_column": "label"})


def test_num_labels_mismatch_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"data\.num_labels=3.*5 labels"):
        load_source({"name": "bbc", "source": "embedded_bbc", "num_labels": 3})


def test_splits_are_deterministic_disjoint_and_cover_train() -> None:
    data = toy()
    forget_cfg = {"strategy": "random", "ratio": 0.1}
    a, b = make_splits(data, SPLIT_CFG, forget_cfg, seed=3), make_splits(data, SPLIT_CFG, forget_cfg, seed=3)
    c = make_splits(data, SPLIT_CFG, forget_cfg, seed=4)
    assert np.array_equal(a.forget, b.forget) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.forget, c.forget)
    assert set(a.forget).isdisjoint(a.retain) and set(a.forget) | set(a.retain) == set(a.train)
    assert set(a.train).isdisjoint(a.test) and set(a.train).isdisjoint(a.val)
    assert len(a.forget) == round(0.1 * len(a.train))


def test_class_forgetting_takes_the_whole_class_or_a_share() -> None:
    data = toy()
    whole = make_splits(data, SPLIT_CFG, {"strategy": "class", "class_name": "b", "ratio": 1.0}, seed=0)
    assert set(data.labels[whole.forget]) == {1} and 1 not in set(data.labels[whole.retain])
    half = make_splits(data, SPLIT_CFG, {"strategy": "class", "class_name": 2, "ratio": 0.5}, seed=0)
    in_train = int((data.labels[half.train] == 2).sum())
    assert set(data.labels[half.forget]) == {2} and len(half.forget) == round(0.5 * in_train)


def test_ids_file_selects_exactly_those_samples(tmp_path) -> None:
    data = toy()
    train = make_splits(data, SPLIT_CFG, {"strategy": "random", "ratio": 0.1}, seed=0).train
    wanted = [data.ids[i] for i in train[:5]]
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(wanted))
    splits = make_splits(data, SPLIT_CFG, {"strategy": "ids", "path": str(path)}, seed=0)
    assert sorted(data.ids[i] for i in splits.forget) == sorted(wanted)


@pytest.mark.parametrize(
    ("forget_cfg", "message"),
    [
        ({"strategy": "random", "ratio": 0.0}, r"forget.ratio=0.0 .*\(0, 1\)"),
        ({"strategy": "random", "ratio": 1.0}, r"forget.ratio=1.0 .*\(0, 1\)"),
        ({"strategy": "random", "ratio": "lots"}, r"forget.ratio='lots' .*number"),
        ({"strategy": "random", "ratio": 0.001}, r"at least 1 of"),
        ({"strategy": "class", "class_name": "zebra"}, r"forget.class_name='zebra' .*\['a', 'b', 'c', 'd'\]"),
        ({"strategy": "shuffle"}, r"forget.strategy='shuffle' .*random, class, ids"),
        ({"strategy": "ids", "path": "/nonexistent/ids.txt"}, r"forget.path='/nonexistent/ids.txt'"),
    ],
)
def test_bad_forget_config_is_refused(forget_cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_splits(toy(), SPLIT_CFG, forget_cfg, seed=0)


def test_unknown_forget_ids_are_named(tmp_path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("id1\nnot-a-sample\n")
    with pytest.raises(DataError, match="not-a-sample"):
        make_splits(toy(), SPLIT_CFG, {"strategy": "ids", "path": str(path)}, seed=0)


def test_forgetting_everything_leaves_no_retain_set() -> None:
    data = toy(classes=1)
    data.label_names = ["a"]
    with pytest.raises(ConfigError, match="D_r is empty"):
        make_splits(data, SPLIT_CFG, {"strategy": "class", "class_name": "a"}, seed=0)


def test_stratified_retain_batches_cover_every_forget_class() -> None:
    rng = np.random.default_rng(0)
    forget, retain = rng.integers(0, 5, 40), rng.integers(0, 5, 400)
    sampler = ForgetRetainBatchSampler(forget, retain, forget_batch_size=8, retain_batch_size=8, seed=1)
    steps = list(sampler)
    assert len(steps) == len(sampler) == 5
    assert sorted(p for s in steps for p in s if p < 40) == list(range(40))  # one pass over D_f
    for step in steps:
        f_cls = {int(forget[p]) for p in step if p < 40}
        r_cls = {int(retain[p - 40]) for p in step if p >= 40}
        assert f_cls <= r_cls and sum(p >= 40 for p in step) == 8


def test_batch_sampler_gives_ranks_disjoint_equal_shares() -> None:
    forget, retain = np.arange(10) % 2, np.arange(50) % 2
    shares = [
        list(ForgetRetainBatchSampler(forget, retain, 3, 4, seed=0, rank=r, world_size=2)) for r in (0, 1)
    ]
    assert len(shares[0]) == len(shares[1]) == 2  # 4 steps, padded to an even count
    firsts = [tuple(s[:3]) for share in shares for s in share]
    assert len(set(firsts)) == 4


def test_tokenization_is_cached_and_eval_covers_each_sample_once(tmp_path, make_cfg) -> None:
    cfg = make_cfg()
    tok = load_tokenizer(cfg.model)
    calls = []

    class CountingTokenizer:
        def __init__(self, inner):
            self.inner, self.name_or_path, self.pad_token_id = inner, inner.name_or_path, inner.pad_token_id

        def __len__(self):
            return len(self.inner)

        def __call__(self, *a, **k):
            calls.append(1)
            return self.inner(*a, **k)

    for _ in range(2):
        dm = UnlearnDataModule(cfg.data, cfg.forget, CountingTokenizer(tok), 0, tmp_path, eval_batch_size=16)
        dm.setup()
    assert len(calls) == 1
    seen = [int(i) for batch in dm.eval_loader("test") for i in batch["index"]]
    assert sorted(seen) == sorted(dm.splits.test.tolist())
    lengths = [batch["input_ids"].shape[1] for batch in dm.eval_loader("test")]
    assert (
        lengths == sorted(lengths) and max(lengths) <= cfg.data.max_length
    )  # length-grouped, dynamic padding

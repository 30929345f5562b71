"""Property-based checks (hypothesis) of the seeded splits over forget configs and dataset sizes:
forget and retain are disjoint, cover the training set and respect the ratio to one sample; and a
split that cannot be made is refused with a ConfigError or DataError, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unlearnbench.data import make_splits
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.tasks import TextDataset

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def datasets(draw) -> TextDataset:
    """2 to 6 classes, 4 to 400 samples, class sizes anywhere from balanced to very skewed."""
    classes = draw(st.integers(2, 6))
    n = draw(st.integers(max(4, classes), 400))
    weights = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=classes, max_size=classes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = rng.choice(classes, size=n, p=weights / weights.sum())
    labels[:classes] = np.arange(classes)  # every class has at least one sample
    names = [f"c{i}" for i in range(classes)]
    return TextDataset("prop", [f"id{i}" for i in range(n)], [f"text {i}" for i in range(n)], labels, names)


split_fractions = st.fixed_dictionaries(
    {
        "val_fraction": st.sampled_from([0.0, 0.05, 0.1, 0.2]),
        "test_fraction": st.sampled_from([0.1, 0.2, 0.3]),
    }
)


def check_partition(data: TextDataset, splits) -> None:
    train, forget, retain = (set(splits[s].tolist()) for s in ("train", "forget", "retain"))
    assert forget and retain
    assert forget.isdisjoint(retain) and forget | retain == train
    assert len(splits.forget) == len(forget) and len(splits.retain) == len(retain)  # no repeats
    parts = [set(splits[s].tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(data) and set().union(*parts) == set(range(len(data)))


@SETTINGS
@given(data=datasets(), fractions=split_fractions, ratio=st.floats(0.001, 0.999), seed=st.integers(0, 10**6))
def test_random_forget_set_partitions_train_and_respects_the_ratio(data, fractions, ratio, seed) -> None:
    forget_cfg = {"strategy": "random", "ratio": ratio}
    try:
        splits = make_splits(data, fractions, forget_cfg, seed)
    except UnlearnbenchError as exc:  # too few samples for this ratio, or for the splits themselves
        assert any(s in str(exc) for s in ("at least 1 of", "D_r is empty", "too few samples")), exc
        return
    check_partition(data, splits)
    assert abs(len(splits.forget) - ratio * len(splits.train)) <= 1
    again = make_splits(data, fractions, forget_cfg, seed)
    assert np.array_equal(again.forget, splits.forget) and np.array_equal(again.test, splits.test)


@SETTINGS
@given(
    data=datasets(),
    fractions=split_fractions,
    ratio=st.one_of(st.just(1.0), st.floats(0.01, 1.0)),
    which=st.integers(0, 5),
    seed=st.integers(0, 10**6),
)
def test_class_forget_set_takes_its_share_of_one_class(data, fractions, ratio, which, seed) -> None:
    cls = which % data.num_labels
    forget_cfg = {"strategy": "class", "class_name": data.label_names[cls], "ratio": ratio}
    try:
        splits = make_splits(data, fractions, forget_cfg, seed)
    except UnlearnbenchError as exc:
        assert any(s in str(exc) for s in ("has no training samples", "D_r is empty", "too few samples")), exc
        return
    check_partition(data, splits)
    members = int((data.labels[splits.train] == cls).sum())
    assert set(data.labels[splits.forget].tolist()) == {cls}
    assert abs(len(splits.forget) - ratio * members) <= 1 and len(splits.forget) >= 1


@SETTINGS
@given(data=datasets(), fractions=split_fractions, pick=st.data(), seed=st.integers(0, 10**6))
def test_ids_forget_set_is_exactly_the_requested_ids(tmp_path: Path, data, fractions, pick, seed) -> None:
    try:
        train = make_splits(data, fractions, {"strategy": "random", "ratio": 0.5}, seed).train
    except UnlearnbenchError:
        assume(False)  # a dataset too small to split: the test above covers it
    wanted = pick.draw(st.lists(st.sampled_from([data.ids[i] for i in train]), min_size=1, unique=True))
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(wanted))
    try:
        splits = make_splits(data, fractions, {"strategy": "ids", "path": str(path)}, seed)
    except UnlearnbenchError as exc:
        assert "D_r is empty" in str(exc) and len(wanted) == len(train), exc
        return
    check_partition(data, splits)
    assert sorted(data.ids[i] for i in splits.forget) == sorted(wanted)

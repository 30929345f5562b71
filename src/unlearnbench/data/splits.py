"""Seeded splits: train / val / test (stratified), then forget / retain inside train.

Every split is a pure function of (dataset, split fractions, seed, forget config), so a rerun or a
parallel job always sees the same forget ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from unlearnbench.data.forget import Design, check_fraction, get_strategy, select_forget
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks import Dataset, task_of

SPLITS = ("train", "val", "test", "forget", "retain", "manipulated")


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset (texts, or sentences of a token dataset); forget and retain
    partition train. ``manipulated``: the training samples a forget design changed before the
    original was trained (label swaps, poisoned samples): D_f is the share of them that is identified
    (``forget.identified``); None for designs that change nothing."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    retain: np.ndarray
    manipulated: np.ndarray | None = None

    def sizes(self) -> dict[str, int]:
        names = ("train", "forget", "retain", "val", "test")
        sizes = {name: len(getattr(self, name)) for name in names}
        if self.manipulated is not None:
            sizes["manipulated"] = len(self.manipulated)
        return sizes

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLITS or (name == "manipulated" and self.manipulated is None):
            raise KeyError(name)
        return getattr(self, name)


@dataclass
class DataPlan:
    """The data of a run as its forget design shapes it: the records the original is trained on
    (``records``; the same object as ``clean`` unless the design changed some), the splits, an
    evaluation set of the design's own (``probe``: triggered test samples of a backdoor), and what
    the design did (``info``). ``splits`` is None while the design still waits for per-sample scores
    (``forget=memorized``: :meth:`resolve`)."""

    clean: Dataset
    records: Dataset
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    forget_cfg: Mapping[str, Any]
    seed: int
    design: Design | None = None
    splits: Splits | None = None
    requests: list[np.ndarray] | None = None  # D_f as the deletion requests arrive (one for most designs)
    selection_info: dict[str, Any] | None = None

    @property
    def probe(self) -> Dataset | None:
        return self.design.probe if self.design is not None else None

    @property
    def info(self) -> dict[str, Any]:
        info = dict(self.design.info) if self.design is not None else {}
        return {**info, **(self.selection_info or {})}

    @property
    def needs_scores(self) -> bool:
        return self.splits is None

    def resolve(self, scores: np.ndarray | None = None) -> Splits:
        """D_f and D_r (with the per-training-sample ``scores`` a design asks for)."""
        manipulated = self.design.manipulated if self.design is not None else None
        selection = select_forget(self.records, self.train, self.forget_cfg, self.seed, scores, manipulated)
        forget, self.requests, self.selection_info = selection.forget, selection.requests, selection.info
        retain = np.setdiff1d(self.train, forget, assume_unique=True)
        if len(retain) == 0:
            raise ConfigError(
                "forget",
                dict(self.forget_cfg),
                "the forget set would take the whole training set; D_r is empty",
            )
        self.splits = Splits(self.train, self.val, self.test, forget, retain, manipulated)
        return self.splits


def plan_data(
    data: Dataset, data_cfg: Mapping[str, Any], forget_cfg: Mapping[str, Any], seed: int
) -> DataPlan:
    """Split ``data`` (train / val / test, seeded and stratified), let the forget design change the
    training samples it manipulates, and pick D_f (unless the design waits for scores)."""
    train, val, test = split_train_val_test(data, data_cfg, seed)
    strategy = get_strategy(forget_cfg.get("strategy"))
    strategy.check(forget_cfg)
    design = strategy.manipulate(
        data, task_of(data), train, test, forget_cfg, np.random.default_rng([seed, 7927])
    )
    records = design.records if design is not None else data
    plan = DataPlan(data, records, train, val, test, forget_cfg, seed, design)
    if not strategy.needs_scores:
        plan.resolve()
    return plan


def make_splits(
    data: Dataset, data_cfg: Mapping[str, Any], forget_cfg: Mapping[str, Any], seed: int
) -> Splits:
    """The splits of ``data`` for a forget design that needs no scores (see :func:`plan_data`)."""
    plan = plan_data(data, data_cfg, forget_cfg, seed)
    if plan.splits is None:
        raise ConfigError(
            "forget.strategy", forget_cfg.get("strategy"), "a design that needs no model to pick D_f"
        )
    return plan.splits


def split_train_val_test(
    data: Dataset, data_cfg: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fixed = data.meta.get("splits")
    if (
        fixed is not None
    ):  # the user's own files: train, and val and test where given (else carved out of train)
        train = np.asarray(fixed["train"], dtype=np.int64)
        stratified = np.bincount(data.labels[train]).min() >= 3
        test = fixed.get("test")
        if test is None:
            test_f = check_fraction("data.test_fraction", data_cfg.get("test_fraction", 0.2))
            train, test = _split(data, train, test_f, stratified, seed)
        val = fixed.get("val")
        if val is None:
            val_f = check_fraction("data.val_fraction", data_cfg.get("val_fraction", 0.1), low_open=False)
            train, val = _split(data, train, val_f, stratified, seed) if val_f > 0 else (train, [])
        return (
            np.sort(train),
            np.sort(np.asarray(val, dtype=np.int64)),
            np.sort(np.asarray(test, dtype=np.int64)),
        )
    val_f, test_f = split_fractions(data_cfg)
    counts = class_counts(data)
    problem = None if counts is None else split_shortfall(counts, val_f, test_f)
    if problem is not None:
        raise DataError(f"dataset '{data.name}' has too few samples ({len(data)}) for the split: {problem}")
    idx = np.arange(len(data))
    stratified = np.bincount(data.labels).min() >= 3
    train_val, test = _split(data, idx, test_f, stratified, seed)
    if val_f > 0:
        train, val = _split(data, train_val, val_f / (1.0 - test_f), stratified, seed)
    else:
        train, val = train_val, np.array([], dtype=np.int64)
    train, val, test = np.sort(train), np.sort(val), np.sort(test)
    in_train = class_counts(data, train)
    if counts is not None and in_train is not None and set(counts) - set(in_train):
        missing = sorted(set(counts) - set(in_train))
        raise DataError(
            f"dataset '{data.name}' has too few samples ({len(data)}) for the split: class(es) "
            f"{missing} get no training sample"
        )
    return train, val, test


def split_fractions(data_cfg: Mapping[str, Any]) -> tuple[float, float]:
    """``data.val_fraction`` and ``data.test_fraction``, checked."""
    val_f = check_fraction("data.val_fraction", data_cfg.get("val_fraction", 0.1), low_open=False)
    test_f = check_fraction("data.test_fraction", data_cfg.get("test_fraction", 0.2))
    if val_f + test_f >= 1.0:
        raise ConfigError("data.val_fraction + data.test_fraction", val_f + test_f, "a sum below 1")
    return val_f, test_f


def split_shortfall(counts: Mapping[str, int], val_f: float, test_f: float) -> str | None:
    """Why a stratified train / val / test split cannot give each class (name -> its samples) a
    place in every split; None when it can."""
    parts = ("train", "val", "test") if val_f > 0 else ("train", "test")
    need = len(parts)
    small = {name: n for name, n in counts.items() if n < need}
    if small:
        shown = ", ".join(f"'{name}' has {n}" for name, n in list(small.items())[:5])
        more = f" (and {len(small) - 5} more)" if len(small) > 5 else ""
        return f"class {shown}{more}; each class needs {need} samples, one for each of {', '.join(parts)}"
    k, n = len(counts), sum(counts.values())
    n_test = math.ceil(test_f * n)
    sizes = {"test": n_test}
    if val_f > 0:
        sizes["val"] = math.ceil(val_f / (1.0 - test_f) * (n - n_test))
    sizes["train"] = n - sum(sizes.values())
    for name in ("train", "val", "test"):
        if name in sizes and sizes[name] < k:
            return (
                f"the {name} split gets {sizes[name]} of {n} samples (data.val_fraction={val_f}, "
                f"data.test_fraction={test_f}), fewer than the {k} classes"
            )
    return None


def class_counts(data: Dataset, indices: np.ndarray | None = None) -> dict[str, int] | None:
    """Samples per class (the classes present), where each sample has one class; else None."""
    classes = task_of(data).sample_classes(data)
    if classes is None:
        return None
    if indices is not None:
        classes = classes[indices]
    counts = np.bincount(classes, minlength=data.num_labels)
    return {data.label_names[c]: int(n) for c, n in enumerate(counts) if n > 0}


def _split(
    data: Dataset, idx: np.ndarray, test_size: float, stratified: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split`` of ``idx``, stratified by label where each part can hold every class
    (a small dataset falls back to a plain seeded split)."""
    labels = data.labels[idx]
    counts = np.unique(labels, return_counts=True)[1]
    n_test = math.ceil(test_size * len(idx))
    feasible = counts.min() >= 2 and min(n_test, len(idx) - n_test) >= len(counts)
    stratify = labels if stratified and feasible else None
    try:
        return train_test_split(idx, test_size=test_size, stratify=stratify, random_state=seed)
    except ValueError as exc:  # sklearn: a part would be empty
        raise DataError(
            f"dataset '{data.name}' has too few samples ({len(data)}) for data.val_fraction and "
            f"data.test_fraction: {exc}"
        ) from None

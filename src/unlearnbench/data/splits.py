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

from unlearnbench.data.forget import check_fraction, select_forget
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks import Dataset, task_of

SPLITS = ("train", "val", "test", "forget", "retain")


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset (texts, or sentences of a token dataset); forget and retain
    partition train."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    retain: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "forget", "retain", "val", "test")}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise KeyError(name)
        return getattr(self, name)


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


def make_splits(
    data: Dataset, data_cfg: Mapping[str, Any], forget_cfg: Mapping[str, Any], seed: int
) -> Splits:
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
    forget = select_forget(data, train, forget_cfg, seed)
    retain = np.setdiff1d(train, forget, assume_unique=True)
    if len(retain) == 0:
        raise ConfigError(
            "forget", dict(forget_cfg), "the forget set would take the whole training set; D_r is empty"
        )
    return Splits(train=train, val=val, test=test, forget=forget, retain=retain)


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

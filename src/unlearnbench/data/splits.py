"""Seeded splits: train / val / test (stratified), then forget / retain inside train.

Every split is a pure function of (dataset, split fractions, seed, forget config), so a rerun or a
parallel job always sees the same forget ids.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from unlearnbench.data.sources import Dataset, TextDataset, TokenDataset
from unlearnbench.errors import ConfigError, DataError

FORGET_STRATEGIES = ("random", "class", "ids")


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset (texts, or sentences of a :class:`TokenDataset`); forget and retain
    partition train."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    retain: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "forget", "retain", "val", "test")}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test", "forget", "retain"):
            raise KeyError(name)
        return getattr(self, name)


def _check_fraction(key: str, value: Any, low_open: bool = True) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "a number in (0, 1)") from None
    inside = 0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0
    if not inside:
        raise ConfigError(key, value, "a number in (0, 1)" if low_open else "a number in [0, 1)")
    return value


def make_splits(
    data: Dataset, data_cfg: Mapping[str, Any], forget_cfg: Mapping[str, Any], seed: int
) -> Splits:
    val_f = _check_fraction("data.val_fraction", data_cfg.get("val_fraction", 0.1), low_open=False)
    test_f = _check_fraction("data.test_fraction", data_cfg.get("test_fraction", 0.2))
    if val_f + test_f >= 1.0:
        raise ConfigError("data.val_fraction + data.test_fraction", val_f + test_f, "a sum below 1")
    idx = np.arange(len(data))
    stratified = np.bincount(data.labels).min() >= 3
    train_val, test = _split(data, idx, test_f, stratified, seed)
    if val_f > 0:
        train, val = _split(data, train_val, val_f / (1.0 - test_f), stratified, seed)
    else:
        train, val = train_val, np.array([], dtype=np.int64)
    train, val, test = np.sort(train), np.sort(val), np.sort(test)
    forget = select_forget(data, train, forget_cfg, seed)
    retain = np.setdiff1d(train, forget, assume_unique=True)
    if len(retain) == 0:
        raise ConfigError(
            "forget", dict(forget_cfg), "the forget set would take the whole training set; D_r is empty"
        )
    return Splits(train=train, val=val, test=test, forget=forget, retain=retain)


def _split(
    data: TextDataset, idx: np.ndarray, test_size: float, stratified: bool, seed: int
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


def _class_index(data: TextDataset, value: Any) -> int:
    if str(value) in data.label_names:
        return data.label_names.index(str(value))
    if str(value).isdigit() and int(value) < data.num_labels:
        return int(value)
    raise ConfigError(
        "forget.class_name", value, f"one of {data.label_names} (or its index 0..{data.num_labels - 1})"
    )


ID_FILE = "an existing file of sample ids (a json list, or one id per line)"


def read_id_file(path: str | Path) -> list[str]:
    """A forget request: a json list of ids, or one id per line (blank lines and # comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("forget.path", str(path), ID_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("forget.path", str(path), f"{ID_FILE}; it cannot be read ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError("forget.path", str(path), f"{ID_FILE}; it is not valid json ({exc})") from None
        if any(isinstance(x, dict | list) or x is None for x in raw):
            raise ConfigError("forget.path", str(path), f"{ID_FILE}; its json list must hold ids only")
        ids = [str(x) for x in raw]
    else:
        ids = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise ConfigError("forget.path", str(path), f"{ID_FILE}; this one lists no ids")
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise DataError(f"forget id file {path} repeats ids {dup[:10]}; list each id once")
    return ids


def _entity_type_members(data: TokenDataset, train: np.ndarray, value: Any) -> np.ndarray:
    """Training sentences that hold an entity of type ``value`` (``person``, a tag ``B-person``, or
    the index of the type among the sorted entity types, as class indices name classes)."""
    kinds = data.entity_types()
    kind = str(value)[2:] if str(value)[:2] in ("B-", "I-") else str(value)
    if kind.isdigit() and kind not in kinds and int(kind) < len(kinds):
        kind = kinds[int(kind)]
    if kind not in kinds:
        raise ConfigError(
            "forget.class_name",
            value,
            f"an entity type of this token dataset (or its index 0..{len(kinds) - 1}): one of {kinds}",
        )
    tag_ids = {i for i, n in enumerate(data.label_names) if n in (f"B-{kind}", f"I-{kind}")}
    return np.array([i for i in train if tag_ids.intersection(data.tags[int(i)].tolist())], dtype=np.int64)


def select_forget(data: Dataset, train: np.ndarray, cfg: Mapping[str, Any], seed: int) -> np.ndarray:
    """Indices (a sorted subset of ``train``) that form D_f under the configured strategy.

    Token datasets count sentences: ``random`` draws a share of the training sentences, ``class``
    takes the sentences that hold an entity of type ``class_name``."""
    strategy = cfg.get("strategy")
    if strategy not in FORGET_STRATEGIES:
        raise ConfigError("forget.strategy", strategy, f"one of {', '.join(FORGET_STRATEGIES)}")
    rng = np.random.default_rng([int(cfg.get("seed", seed)), 7919])
    if strategy == "random":
        ratio = _check_fraction("forget.ratio", cfg.get("ratio"))
        n = round(ratio * len(train))
        if n < 1:
            raise ConfigError(
                "forget.ratio", ratio, f"a ratio that selects at least 1 of {len(train)} training samples"
            )
        forget = rng.choice(train, size=n, replace=False)
    elif strategy == "class":
        token = isinstance(data, TokenDataset)
        cls = None if token else _class_index(data, cfg.get("class_name"))
        ratio = cfg.get("ratio", 1.0)
        try:
            ratio = float(ratio)
        except (TypeError, ValueError):
            ratio = -1.0
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(
                "forget.ratio", cfg.get("ratio"), "for strategy=class, the share of the class in (0, 1]"
            )
        if token:
            members = _entity_type_members(data, train, cfg.get("class_name"))
        else:
            members = train[data.labels[train] == cls]
        if len(members) == 0:
            raise DataError(f"class '{cfg.get('class_name')}' has no training samples")
        n = max(1, round(ratio * len(members)))
        forget = members if n == len(members) else rng.choice(members, size=n, replace=False)
    else:
        wanted = read_id_file(cfg.get("path") or "")
        position = {data.ids[i]: i for i in train}
        missing = [i for i in wanted if i not in position]
        if missing:
            known = set(data.ids)
            unknown, held_out = [i for i in missing if i not in known], [i for i in missing if i in known]
            found = [f"{len(unknown)} not in the dataset: {unknown[:10]}"] if unknown else []
            found += (
                [f"{len(held_out)} in the val/test split, not in train: {held_out[:10]}"] if held_out else []
            )
            raise DataError(
                "forget.path must name training samples (by data.id_column, or the row number when it "
                f"is null); of its {len(wanted)} ids, {'; '.join(found)}"
            )
        forget = np.array([position[i] for i in wanted], dtype=np.int64)
    return np.sort(np.asarray(forget, dtype=np.int64))

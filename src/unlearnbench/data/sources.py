"""Raw data: the dataset that a ``data`` config names, loaded whole from its source (the embedded
corpora, any Hugging Face dataset, local files), checked, then subsampled if asked.

Each source gives the task's records (:class:`~unlearnbench.tasks.TextDataset` or
:class:`~unlearnbench.tasks.TokenDataset`); nothing here tokenizes or splits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from unlearnbench.data import embedded
from unlearnbench.data.files import Dataset, load_local
from unlearnbench.data.hub import load_hf
from unlearnbench.data.splits import class_counts, split_fractions, split_shortfall
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks import get_task, task_of

LOADERS = {
    "embedded_bbc": embedded.load_bbc,
    "embedded_tweets": embedded.load_tweets,
    "embedded_wnut16": embedded.load_wnut16,
    "embedded_spam": embedded.load_spam,
    "hf": load_hf,
    "local": load_local,
}
SOURCES = tuple(LOADERS)


def load_raw(cfg: Mapping[str, Any]) -> Dataset:
    """The whole dataset that ``cfg`` (the ``data`` config group) names, checked, not subsampled."""
    source = cfg.get("source")
    if source not in LOADERS:
        raise ConfigError("data.source", source, f"one of {', '.join(SOURCES)}")
    task = get_task(cfg.get("task"))
    data = LOADERS[source](cfg)
    if data.task != task.name:
        raise ConfigError("data.task", task.name, f"source {source} gives a {data.task} dataset")
    if len(data) == 0:
        raise DataError(f"dataset '{data.name}' is empty: it needs at least one record")
    num_labels = cfg.get("num_labels")
    if num_labels is not None and int(num_labels) != data.num_labels:
        raise ConfigError(
            "data.num_labels", num_labels, f"the data has {data.num_labels} labels {data.label_names}"
        )
    values = task_of(data).label_values(data)
    if values.min() < 0 or values.max() >= data.num_labels:
        raise DataError(f"dataset '{data.name}': labels outside 0..{data.num_labels - 1}")
    present = np.unique(values)
    if len(present) < 2:
        column = f" (data.label_column '{cfg['label_column']}')" if cfg.get("label_column") else ""
        raise DataError(
            f"dataset '{data.name}' holds one label, {data.label_names[int(present[0])]!r}, in all its "
            f"{len(data)} records{column}: classification needs at least 2 classes"
        )
    return data


def load_source(cfg: Mapping[str, Any]) -> Dataset:
    """Load the dataset that ``cfg`` (the ``data`` config group) names, then subsample if asked."""
    data = load_raw(cfg)
    max_samples = cfg.get("max_samples")
    if max_samples is not None:
        seed = int(cfg.get("subsample_seed", 0))
        try:
            n = int(max_samples)
        except (TypeError, ValueError):
            n = 0
        if n <= 0 or isinstance(max_samples, bool):
            raise ConfigError("data.max_samples", max_samples, "a positive number of samples, or null")
        check_subsample(data, cfg, n, seed)
        data = stratified_subsample(data, n, seed)
    return data


def subsample_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The sorted indices of n of the samples, stratified by ``labels`` where that can be done."""
    from sklearn.model_selection import train_test_split

    if n >= len(labels):
        return np.arange(len(labels))
    try:
        keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    except ValueError:  # fewer samples kept (or left) than strata: a seeded plain draw
        keep = np.random.default_rng(seed).choice(len(labels), size=n, replace=False)
    return np.sort(keep)


def check_subsample(data: Dataset, cfg: Mapping[str, Any], n: int, seed: int) -> None:
    """``data.max_samples`` must keep enough samples of every class for the split (each class in
    train, val and test); the message says the smallest number that does."""
    try:
        val_f, test_f = split_fractions(cfg)
    except ConfigError:
        return  # the split refuses its own fractions
    whole = class_counts(data)
    if whole is None or split_shortfall(whole, val_f, test_f) is not None:
        return  # not classes per sample, or the whole dataset is too small: the split says so

    def problem(size: int) -> str | None:
        kept = class_counts(data, subsample_indices(data.labels, size, seed)) or {}
        return split_shortfall({name: kept.get(name, 0) for name in whole}, val_f, test_f)

    if n >= len(data) or problem(n) is None:
        return
    low, high = n, len(data)  # problem(low) holds, problem(high) does not
    step = max(1, n)
    while low + step < high and problem(low + step) is not None:
        low, step = low + step, step * 2
    high = min(high, low + step)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if problem(middle) is not None else (low, middle)
    allowed = f"at least {high} for dataset '{data.name}' and its split; with {n}: {problem(n)}"
    raise ConfigError("data.max_samples", n, allowed)


def stratified_subsample(data: Dataset, n: int, seed: int) -> Dataset:
    """Keep n samples with the class proportions of the whole (a fixed seed, independent of the run seed).

    Token datasets keep the share of sentences that hold an entity."""
    if n <= 0:
        raise ConfigError("data.max_samples", n, "a positive number of samples, or null for all")
    if data.meta.get("splits") is not None:
        raise ConfigError("data.max_samples", n, "null when data.val_path / data.test_path give the splits")
    if n >= len(data):
        return data
    out = data.subset(subsample_indices(data.labels, n, seed))
    out.meta["subsampled_from"] = len(data)
    return out

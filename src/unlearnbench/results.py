"""The contract of a run dir: the names of the files a run writes and what makes its results.json
trustworthy (complete, of this schema). The pipeline writes these files; the CLI, the sweeper and
the report read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
ERROR_FILE = "error.json"
FORGET_IDS_FILE = "forget_ids.json"
PREDICTIONS_FILE = "predictions.parquet"
EMBEDDINGS_FILE = "embeddings.npz"
MEMORIZATION_FILE = "memorization.parquet"  # forget=memorized: every training sample's score
QUALITY_FILE = "forget_quality.npz"  # eval.pool: the per-example values of forget quality
MODEL_DIR = "model"
# The sections every finished run has (the others may be null when switched off).
RESULTS_SECTIONS = ("run", "sizes", "metrics", "cost", "timing", "original", "versions")


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """A run dir's results.json if it is complete and of this schema, else None: a truncated, partial
    or older file is not trusted (it is written atomically and last, so a finished run has one)."""
    try:
        results = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        return None
    if any(not isinstance(results.get(key), dict) for key in RESULTS_SECTIONS):
        return None
    return results


def is_complete(run_dir: str | Path) -> bool:
    """A run dir whose results.json was written in full (see :func:`read_results`)."""
    return read_results(run_dir) is not None

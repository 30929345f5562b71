"""Two sets of run dirs compared number by number: the proof that a change of code changed no
result. Runs are matched by their dir name under each root; every number of results.json that
does not measure time or memory (or name a store key) must agree to ``tol``, and so must every
prediction in predictions.parquet.

    python scripts/compare_runs.py BEFORE_SWEEP AFTER_SWEEP [--tol 1e-6]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.results import PREDICTIONS_FILE, RESULTS_FILE, read_results

# What legitimately differs between two runs of the same experiment: clocks, memory, store keys
# (their layout may change), versions and the method's config as written (its defaults compose).
IGNORED = re.compile(
    r"(seconds|_time|time_|wall|peak|rss|gpu|memory|cache_key|_key$|^key$|created|from_cache|versions|"
    r"method_params|checkpoint_status|unlearn_trained|^trained$|stopped_early_at)",
)


@dataclass
class Comparison:
    runs: int = 0
    numbers: int = 0
    predictions: int = 0
    max_diff: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.missing and self.runs > 0


def _leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not IGNORED.search(str(key)):
                yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, obj


def _same(a: Any, b: Any, tol: float) -> tuple[bool, float]:
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not isinstance(a, int | float)
        or not isinstance(b, int | float)
    ):
        return a == b, 0.0
    if math.isnan(a) and math.isnan(b):
        return True, 0.0
    diff = abs(float(a) - float(b))
    return diff <= tol, diff


def compare_runs(before: Path, after: Path, tol: float, out: Comparison) -> None:
    name = before.name
    a, b = read_results(before), read_results(after)
    if a is None or b is None:
        out.missing.append(
            f"{name}: results.json missing or incomplete on the {'before' if a is None else 'after'} side"
        )
        return
    out.runs += 1
    left, right = dict(_leaves(a)), dict(_leaves(b))
    for path in sorted(set(left) | set(right)):
        if path.startswith(("timing.", "cost.")) and not path.endswith(("steps", "samples")):
            continue
        if path not in left or path not in right:
            out.mismatches.append(f"{name}: {path} only {'after' if path in right else 'before'}")
            continue
        same, diff = _same(left[path], right[path], tol)
        out.numbers += 1
        out.max_diff = max(out.max_diff, diff)
        if not same:
            out.mismatches.append(f"{name}: {path}: {left[path]!r} != {right[path]!r}")
    pa, pb = before / PREDICTIONS_FILE, after / PREDICTIONS_FILE
    if pa.exists() and pb.exists():
        fa, fb = pd.read_parquet(pa), pd.read_parquet(pb)
        keys = [c for c in ("split", "index", "position") if c in fa.columns]
        fa, fb = fa.sort_values(keys).reset_index(drop=True), fb.sort_values(keys).reset_index(drop=True)
        if len(fa) != len(fb) or not fa[keys].equals(fb[keys]):
            out.mismatches.append(f"{name}: predictions.parquet holds other rows")
            return
        probs = np.abs(np.stack(fa.probs.to_numpy()) - np.stack(fb.probs.to_numpy()))
        diff = float(max(probs.max(initial=0.0), np.abs(fa.loss - fb.loss).max()))
        out.predictions += len(fa)
        out.max_diff = max(out.max_diff, diff)
        if diff > tol or not (fa.pred == fb.pred).all():
            out.mismatches.append(f"{name}: predictions differ by up to {diff:.3g}")


def compare_sweeps(before: str | Path, after: str | Path, tol: float = 1e-6) -> Comparison:
    """Every run dir under ``before`` (a dir holding results.json) against the same-named dir under
    ``after``."""
    out = Comparison()
    before, after = Path(before), Path(after)
    for results in sorted(before.rglob(RESULTS_FILE)):
        rel = results.parent.relative_to(before)
        if not (after / rel / RESULTS_FILE).exists():
            out.missing.append(f"{rel}: no run dir of that name under {after}")
            continue
        compare_runs(results.parent, after / rel, tol, out)
    return out

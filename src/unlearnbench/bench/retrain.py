"""(b) Unlearning vs retraining: each method's unlearning wall seconds over retraining's, from the
``cost`` section of real pipeline runs, one row per (dataset, forget ratio, method)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from unlearnbench import pipeline
from unlearnbench.bench.common import compose_cfg, median


class RetrainRow(TypedDict):
    dataset: str
    ratio: float
    method: str
    n_forget: int
    n_train: int
    seconds: float  # medians over seeds
    retrain_seconds: float
    ratio_to_retrain: float
    peak_rss_mb: float  # maxima over seeds
    peak_gpu_mb: float
    test_f1: float | None  # percent; None when a run did not evaluate test
    seeds: int


def unlearn_vs_retrain(
    datasets: dict[str, list[str]],
    methods: Sequence[str],
    ratios: Sequence[float],
    seeds: Sequence[int],
    cache_dir: Path,
    base: Sequence[str],
    progress: Callable[[list[RetrainRow]], None] | None = None,
) -> list[RetrainRow]:
    """Each method's unlearning wall seconds / retraining's, from results.json ``cost`` of real
    pipeline runs (both measured in this process; the retrained model is trained by the first run of
    a forget split). One row per (dataset, ratio, method), medians over seeds; ``progress`` gets the
    rows so far after each (dataset, ratio)."""
    rows: list[RetrainRow] = []
    for name, data_overrides in datasets.items():
        for ratio in ratios:
            per_method: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            for seed in seeds:
                for method in methods:
                    cfg = compose_cfg(
                        [*base, *data_overrides, f"method={method}", f"forget.ratio={ratio}", f"seed={seed}"],
                        cache_dir,
                    )
                    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-b-{name}-{method}-"))
                    res = pipeline.run_experiment(cfg, run_dir)
                    per_method[method].append(res)
                    cost = res["cost"]
                    print(
                        f"[b] {name} forget {ratio} seed {seed} {method}: {cost['seconds']:.1f} s, "
                        f"{cost['ratio_to_retrain']['seconds']:.3f} x retraining",
                        flush=True,
                    )
            for method, results in per_method.items():
                rows.append(_row(name, ratio, method, results))
            if progress is not None:
                progress(rows)
    return rows


def _row(dataset: str, ratio: float, method: str, results: list[dict[str, Any]]) -> RetrainRow:
    cost = [r["cost"] for r in results]
    return {
        "dataset": dataset,
        "ratio": ratio,
        "method": method,
        "n_forget": results[0]["sizes"]["forget"],
        "n_train": results[0]["sizes"]["train"],
        "seconds": median([c["seconds"] for c in cost]),
        "retrain_seconds": median([c["retrain"]["seconds"] for c in cost]),
        "ratio_to_retrain": median([c["ratio_to_retrain"]["seconds"] for c in cost]),
        "peak_rss_mb": max(c.get("peak_rss_mb") or 0.0 for c in cost),
        "peak_gpu_mb": max(c.get("peak_gpu_mb") or 0.0 for c in cost),
        "test_f1": median([100 * r["metrics"]["test"]["f1"] for r in results])
        if all("test" in r["metrics"] for r in results)
        else None,
        "seeds": len(results),
    }

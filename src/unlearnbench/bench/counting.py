"""(e) Trainings per sweep: run M methods x R forget ratios x S seeds in-process on one fresh model
store and count how often the original and the retrained reference are trained, and how often
their stored outputs are computed (each once per model, then read from its store entry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

import numpy as np

from unlearnbench import pipeline
from unlearnbench.bench.common import compose_cfg
from unlearnbench.evaluation import inputs as eval_inputs
from unlearnbench.runtime import RunContext

# What a fine-tuning from the pretrained model on a whole split trains.
TRAINED = {"train": "original", "retain": "retrained"}


class CountRecord(TypedDict):
    runs: int
    M: int
    R: int
    S: int
    original_trainings: int
    retrain_trainings: int
    original_output_passes: int  # theta_0's outputs on train + test
    reference_output_passes: int  # the retrained model's outputs on forget + test
    cache_entries: dict[str, int]  # store entries by kind
    expected_original: int
    expected_retrain: int
    ok: bool


def _trained_split(ctx: RunContext, indices: np.ndarray) -> str:
    """The split whose samples ``indices`` are (``other`` for any other set, e.g. a SISA slice)."""
    indices = np.asarray(indices)
    for split in TRAINED:
        if np.array_equal(indices, ctx.data.splits[split]):
            return split
    return "other"


@contextmanager
def counting_trainings() -> Iterator[Counter]:
    """Count the fine-tunings from the pretrained model (by split: train = original, retain =
    retrained reference) and the forward passes that compute the original's / reference's stored
    outputs (``outputs:<splits>``)."""
    counts: Counter = Counter()
    fine_tune, outputs = RunContext.fine_tune, eval_inputs.predict_splits

    def counted_fine_tune(self, indices, recipe, log_dir, start=None, **kwargs):
        if start is None:
            split = _trained_split(self, indices)
            counts[TRAINED.get(split, split)] += 1
        return fine_tune(self, indices, recipe, log_dir, start=start, **kwargs)

    def counted_outputs(model, data, splits, embeddings=True):
        counts["outputs:" + "+".join(splits)] += 1
        return outputs(model, data, splits, embeddings)

    RunContext.fine_tune = counted_fine_tune  # type: ignore[method-assign]
    eval_inputs.predict_splits = counted_outputs
    try:
        yield counts
    finally:
        RunContext.fine_tune = fine_tune  # type: ignore[method-assign]
        eval_inputs.predict_splits = outputs


def count_sweep(
    methods: Sequence[str],
    ratios: Sequence[float],
    seeds: Sequence[int],
    cache_dir: Path,
    base: Sequence[str],
    run_root: Path,
) -> CountRecord:
    """Run M x R x S experiments in-process on one fresh model store and count the trainings."""
    with counting_trainings() as counts:
        for seed in seeds:
            for ratio in ratios:
                for method in methods:
                    cfg = compose_cfg(
                        [*base, f"method={method}", f"forget.ratio={ratio}", f"seed={seed}"], cache_dir
                    )
                    pipeline.run_experiment(cfg, run_root / f"{method}-{ratio}-{seed}")
    # Store entries are <cache>/models/<kind>-<key>/ (the .<kind>-<key>.partial work dirs are gone).
    entries = Counter(p.name.split("-")[0] for p in (Path(cache_dir) / "models").iterdir() if p.is_dir())
    M, R, S = len(methods), len(ratios), len(seeds)
    return {
        "runs": M * R * S,
        "M": M,
        "R": R,
        "S": S,
        "original_trainings": counts["original"],
        "retrain_trainings": counts["retrained"],
        "original_output_passes": counts["outputs:train+test"],
        "reference_output_passes": counts["outputs:forget+test"],
        "cache_entries": dict(entries),
        "expected_original": S,
        "expected_retrain": R * S,
        "ok": counts["original"] == S
        and counts["retrained"] == R * S
        and entries.get("original", 0) == S
        and entries.get("retrain", 0) == R * S,
    }

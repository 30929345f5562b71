"""(s) The stop-rule check: seconds of one check of DeepCUT's default stop rule
(``forget_f1_below_val``) on the whole val set against one on a capped sample of it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypedDict

from omegaconf import DictConfig

from unlearnbench import pipeline
from unlearnbench.bench.common import bench_context, median
from unlearnbench.methods.stop import StopOnForgetMetric, StopParams
from unlearnbench.runtime import train_recipe
from unlearnbench.runtime.finetune import SupervisedFit


class StopCheckRecord(TypedDict):
    n_forget: int
    n_val: int
    cap: int
    seconds_whole_val: float
    seconds_capped: float
    ratio: float  # median of the per-repeat (capped / whole) seconds
    repeats: int


def stop_check_cost(cfg: DictConfig, cap: int, repeats: int) -> StopCheckRecord:
    """Seconds of one ``forget_f1_below_val`` check (DeepCUT's default stop rule) on the whole val set
    vs on ``stop.val_max_samples`` = ``cap`` of it; interleaved, medians."""
    _, _, data = pipeline.prepare(cfg)
    ctx = bench_context(cfg, data, Path("."))
    module = SupervisedFit(ctx.pretrained(), train_recipe(cfg))
    whole = StopOnForgetMetric(data, StopParams(rule="forget_f1_below_val"))
    capped = StopOnForgetMetric(data, StopParams(rule="forget_f1_below_val", val_max_samples=cap))
    t_whole, t_capped = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        whole._check(0, module)
        t_whole.append(time.perf_counter() - t)
        t = time.perf_counter()
        capped._check(0, module)
        t_capped.append(time.perf_counter() - t)
    return {
        "n_forget": len(data.splits.forget),
        "n_val": len(data.splits.val),
        "cap": cap,
        "seconds_whole_val": median(t_whole),
        "seconds_capped": median(t_capped),
        "ratio": median([c / w for c, w in zip(t_capped, t_whole, strict=True)]),
        "repeats": repeats,
    }

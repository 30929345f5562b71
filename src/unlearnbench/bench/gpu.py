"""(g) GPU throughput: steady-state training samples/s under each trainer precision and
``trainer.compile`` arm, and of the bare loop at each precision, after the first (warm-up) steps."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from omegaconf import DictConfig, OmegaConf

from unlearnbench import pipeline
from unlearnbench.bench.common import (
    SteadyRate,
    StepClock,
    bare_loop,
    bench_context,
    fresh_fit,
    median,
    steady_rate,
    step_recipe,
)
from unlearnbench.runtime.fit import build_trainer, compiled_for_fit, eval_device


class PrecisionRecord(TypedDict):
    """One shape's figures; every dict is keyed by arm name (``32-true``, ``bf16-mixed + compile``,
    ``bare 32-true``, ...), ``lightning_over_bare`` by precision."""

    model: str
    device: str
    max_length: int
    batch_size: int
    steps: int
    warmup_steps: int
    repeats: int
    samples_per_s: dict[str, float]
    first_steps_s: dict[str, float]
    ratio_to_first_arm: dict[str, float]
    lightning_over_bare: dict[str, float]


def precision_compile(
    cfg: DictConfig, arms: Sequence[tuple[str, bool]], steps: int, warmup: int, repeats: int
) -> PrecisionRecord:
    """Steady-state training samples/s of ``SupervisedFit`` under each (trainer.precision,
    trainer.compile) arm, and of the bare loop at each precision (autocast for bf16-mixed), after
    ``warmup`` steps. Arms interleaved, ``repeats`` times; medians, and ratios to the first arm in
    the same repeat."""
    _, _, data = pipeline.prepare(cfg)
    ctx = bench_context(cfg, data, Path(tempfile.mkdtemp(prefix="bench-g-")))
    params = step_recipe(cfg, epochs=1000, steps=steps)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    device = eval_device(trainer_cfg)

    def lightning(precision: str, compiled: bool) -> SteadyRate:
        module, loader = fresh_fit(ctx, params)
        arm_cfg = {**trainer_cfg, "precision": precision, "compile": compiled, "enable_progress_bar": False}
        clock = StepClock(sync_at={warmup, steps})
        trainer = build_trainer(
            arm_cfg, None, ctx.run_dir, max_epochs=1000, max_steps=steps, callbacks=[clock]
        )
        start = time.perf_counter()
        with compiled_for_fit(module, arm_cfg):
            trainer.fit(module, train_dataloaders=loader)
        return steady_rate(clock.ends, start, warmup, params.batch_size)

    def bare(precision: str) -> SteadyRate:
        module, loader = fresh_fit(ctx, params)
        times, _ = bare_loop(
            module.model,
            loader,
            module.configure_optimizers(),
            steps,
            device,
            bf16=precision == "bf16-mixed",
            sync_at={warmup, steps},
        )
        return steady_rate(times[1:], times[0], warmup, params.batch_size)

    names = [f"{p}{' + compile' if c else ''}" for p, c in arms]
    precisions = sorted({p for p, _ in arms})
    runs: dict[str, list[SteadyRate]] = {n: [] for n in [*names, *(f"bare {p}" for p in precisions)]}
    for _ in range(repeats):
        for name, (precision, compiled) in zip(names, arms, strict=True):
            runs[name].append(lightning(precision, compiled))
        for precision in precisions:
            runs[f"bare {precision}"].append(bare(precision))
    rates = {n: [r["samples_per_s"] for r in rs] for n, rs in runs.items()}
    return {
        "model": cfg.model.name,
        "device": str(device),
        "max_length": int(cfg.data.max_length),
        "batch_size": int(params.batch_size),
        "steps": steps,
        "warmup_steps": warmup,
        "repeats": repeats,
        "samples_per_s": {n: median(v) for n, v in rates.items()},
        "first_steps_s": {n: median([r["first_steps_s"] for r in rs]) for n, rs in runs.items()},
        "ratio_to_first_arm": {
            n: median([a / b for a, b in zip(v, rates[names[0]], strict=True)]) for n, v in rates.items()
        },
        "lightning_over_bare": {
            p: median([a / b for a, b in zip(rates[p], rates[f"bare {p}"], strict=True)]) for p in precisions
        },
    }

"""(a) Framework overhead: training samples/s of a supervised fit run by the project's
``build_trainer`` against the bare PyTorch loop, on the same model, batches and optimiser."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TypedDict

from omegaconf import DictConfig, OmegaConf

from unlearnbench import pipeline
from unlearnbench.bench.common import bare_loop, bench_context, fresh_fit, median, step_recipe
from unlearnbench.runtime.fit import build_trainer, timed_fit


class ThroughputArms(TypedDict):
    bare: float
    lightning_quiet: float
    lightning_bar_logger: float


class ThroughputRecord(TypedDict):
    model: str
    max_length: int
    batch_size: int
    steps: int
    repeats: int
    samples_per_s: ThroughputArms  # medians over repeats
    ratio_quiet: float  # median of the per-repeat ratios to the bare loop
    ratio_bar_logger: float
    ratios_quiet: list[float]
    ratios_bar_logger: list[float]


def throughput(cfg: DictConfig, steps: int, repeats: int) -> ThroughputRecord:
    """Samples/s of ``SupervisedFit`` fitted by the project's ``build_trainer`` vs a bare loop: same
    model (a fresh copy of the same weights per arm), same DataLoader, batch size and AdamW (the
    module's own ``configure_optimizers``, constant lr). Arms interleaved, ``repeats`` times; medians
    and ratios."""
    _, _, data = pipeline.prepare(cfg)
    ctx = bench_context(cfg, data, Path(tempfile.mkdtemp(prefix="bench-a-")))
    params = step_recipe(cfg, epochs=1, steps=steps)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    arms: dict[str, list[float]] = {"bare": [], "lightning_quiet": [], "lightning_bar_logger": []}

    def run_lightning(bar: bool) -> float:
        module, loader = fresh_fit(ctx, params)
        logger = {"_target_": "lightning.pytorch.loggers.CSVLogger", "name": "logs"} if bar else None
        trainer = build_trainer(
            {**trainer_cfg, "enable_progress_bar": bar, "log_every_n_steps": 5},
            logger,
            ctx.run_dir,
            max_epochs=1,
            max_steps=steps,
        )
        stats = timed_fit(module, loader, trainer)
        return stats.samples / stats.seconds

    def run_bare() -> float:
        module, loader = fresh_fit(ctx, params)
        times, samples = bare_loop(module.model, loader, module.configure_optimizers(), steps)
        return samples / (times[-1] - times[0])

    run_bare()  # warm-up (allocator, first-call costs), not counted
    for _ in range(repeats):
        arms["bare"].append(run_bare())
        arms["lightning_quiet"].append(run_lightning(False))
        arms["lightning_bar_logger"].append(run_lightning(True))
    ratios_quiet = [q / b for q, b in zip(arms["lightning_quiet"], arms["bare"], strict=True)]
    ratios_bar = [q / b for q, b in zip(arms["lightning_bar_logger"], arms["bare"], strict=True)]
    return {
        "model": cfg.model.name,
        "max_length": int(cfg.data.max_length),
        "batch_size": int(params.batch_size),
        "steps": steps,
        "repeats": repeats,
        "samples_per_s": {
            "bare": median(arms["bare"]),
            "lightning_quiet": median(arms["lightning_quiet"]),
            "lightning_bar_logger": median(arms["lightning_bar_logger"]),
        },
        "ratio_quiet": median(ratios_quiet),
        "ratio_bar_logger": median(ratios_bar),
        "ratios_quiet": ratios_quiet,
        "ratios_bar_logger": ratios_bar,
    }

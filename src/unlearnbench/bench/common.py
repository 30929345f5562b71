"""What every benchmark section shares: the config of a measured run (:func:`compose_cfg` and the
override lists), medians, the plain PyTorch training loop the framework is measured against, the
step clock and steady-state rate of a timed fit, a fresh supervised fit of the pretrained model,
and the scratch dir every temp dir of a benchmark run goes under."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from unlearnbench.config import compose
from unlearnbench.data import UnlearnDataModule
from unlearnbench.runtime import Recipe, RunContext, train_recipe
from unlearnbench.runtime.finetune import SupervisedFit

QUIET = ["trainer.enable_progress_bar=false", "logger=none"]
NO_ANALYSES = [  # (b), (c): only the cost is read; the retrained reference is still trained (cost ratio)
    "eval.before=false",
    "eval.mia=false",
    "eval.latent=false",
    "eval.predictions=false",
    "eval.embeddings_per_split=0",
    "eval.splits=[forget]",
]
GPU_BASE = ["trainer.accelerator=gpu"]  # --mode gpu: fail rather than fall back to the CPU
TINY = ["model=tiny_bert", "data.max_samples=200", "eval.batch_size=128", *QUIET]


def compose_cfg(overrides: Sequence[str], cache_dir: str | Path) -> DictConfig:
    """The config the CLI would compose for these overrides, with its model store and data cache in
    ``cache_dir`` (no Hydra run: nothing resolved from it)."""
    return compose([f"paths.cache_dir={cache_dir}", *overrides], resolve=True)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------------- a fresh fit to time
def bench_context(cfg: DictConfig, data: UnlearnDataModule, run_dir: Path) -> RunContext:
    """A run context for building pretrained models only (no model store: nothing is stored)."""
    return RunContext(cfg, data, None, run_dir)  # type: ignore[arg-type]


def step_recipe(cfg: DictConfig, epochs: int, steps: int) -> Recipe:
    """The ``train.*`` recipe with a constant learning rate and a budget of ``steps`` steps."""
    return replace(train_recipe(cfg), warmup_ratio=0.0, epochs=epochs, max_steps=steps)


def fresh_fit(ctx: RunContext, recipe: Recipe) -> tuple[SupervisedFit, DataLoader]:
    """A fresh copy of the pretrained model (the same weights at every call) to fine-tune on the
    train split, and the loader of that split (the same batches at every call)."""
    torch.manual_seed(0)
    module = SupervisedFit(ctx.pretrained(), recipe)
    return module, ctx.data.train_loader("train", recipe.batch_size, 0)


# ---------------------------------------------------------------------- timing
def bare_loop(
    model,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    steps: int,
    device: torch.device | None = None,
    bf16: bool = False,
    autocast_cache: bool = True,
    on_step: Callable[[], None] | None = None,
    sync_at: Collection[int] | None = None,
) -> tuple[list[float], int]:
    """The plain PyTorch loop: forward (under bf16 autocast if asked, with torch's weight cache unless
    ``autocast_cache`` is false), backward, step, over the same batches (as many epochs as ``steps``
    needs), on ``device``. ``on_step`` is called after each step (a profiler's ``step``). Returns the
    start time followed by the time at the end of each step, as :class:`StepClock` records them
    (after a CUDA sync at the steps in ``sync_at``, 1-based; at every step when None), and the number
    of samples trained on."""
    device = device or torch.device("cpu")
    model.to(device).train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=autocast_cache)
    batches = (batch for _ in range(steps) for batch in loader)
    times, samples = [time.perf_counter()], 0
    for _ in range(steps):
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        with autocast:
            out = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
            )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if sync_at is None or len(times) in sync_at:
            _sync()
        times.append(time.perf_counter())
        samples += len(batch["labels"])
        if on_step is not None:
            on_step()
    return times, samples


class StepClock(Callback):
    """The wall time at the end of every training step, to split a fit into its first steps
    (compilation, autotuning, allocator warm-up) and the steady state after them.

    A CUDA sync comes before the times of the steps in ``sync_at`` (1-based; every step when None).
    Throughput is measured with syncs at the edges of the window only: in a real run nothing waits
    for the GPU at each step, so the host's work (Lightning's hooks, the loader) overlaps the GPU's,
    and a sync per step would add it to every step of both arms."""

    def __init__(self, sync_at: Collection[int] | None = None) -> None:
        self.ends: list[float] = []
        self.sync_at = sync_at

    def on_train_batch_end(self, *args: Any) -> None:
        if self.sync_at is None or len(self.ends) + 1 in self.sync_at:
            _sync()
        self.ends.append(time.perf_counter())


class SteadyRate(TypedDict):
    samples_per_s: float
    first_steps_s: float


def steady_rate(ends: Sequence[float], start: float, warmup: int, batch_size: int) -> SteadyRate:
    """Samples/s over the steps after the first ``warmup`` ones, and the seconds those took."""
    return {
        "samples_per_s": (len(ends) - warmup) * batch_size / (ends[-1] - ends[warmup - 1]),
        "first_steps_s": ends[warmup - 1] - start,
    }


# ---------------------------------------------------------------------- scratch space
@contextmanager
def scratch_space() -> Iterator[None]:
    """Every temp dir of the run (run dirs; the model cache unless --cache) under one dir, removed at
    the end: a full run's fresh cache holds gigabytes of models."""
    with tempfile.TemporaryDirectory(prefix="benchmark-") as scratch:
        tempfile.tempdir = scratch
        try:
            yield
        finally:
            tempfile.tempdir = None

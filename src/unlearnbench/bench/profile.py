"""Where a training step's time goes: the Lightning path (a supervised fit run by the project's
Trainer) against the bare loop, each with torch's autocast weight cache on and off, timed (steady
state, arms interleaved) and then profiled with ``torch.profiler``; rendered as a markdown page.

Lightning >= 2.6 runs mixed precision under ``torch.autocast(..., cache_enabled=False)``; the bare
loop uses torch's default (cache on). The four arms tell whether that, or something else in the
Lightning path, is what a step costs more. Written for the open question of docs/performance_gpu.md
(Lightning / bare loop 0.78 with bf16 at 256 tokens); it runs on a CPU too (bf16 autocast on CPU),
slowly.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from unlearnbench import pipeline
from unlearnbench.bench.common import (
    QUIET,
    StepClock,
    bare_loop,
    bench_context,
    compose_cfg,
    fresh_fit,
    median,
    steady_rate,
    step_recipe,
)
from unlearnbench.runtime.fit import build_trainer, eval_device

ARMS = ("lightning", "lightning, autocast cache on", "bare", "bare, autocast cache off")


class CachedAutocast(MixedPrecision):
    """Lightning's mixed precision with torch's autocast weight cache on (torch's default)."""

    def autocast_context_manager(self) -> torch.autocast:
        dtype = torch.bfloat16 if self.precision == "bf16-mixed" else torch.half
        return torch.autocast(self.device, dtype=dtype)


class ProfilerStep(Callback):
    def __init__(self, prof: profile | None) -> None:
        self.prof = prof

    def on_train_batch_end(self, *args: Any) -> None:
        if self.prof is not None:
            self.prof.step()


@dataclass
class ArmProfile:
    """One arm's fit under ``torch.profiler``: totals over its ``steps`` recorded steps."""

    steps: int
    device_us: float
    cpu_us: float
    kernels: int
    table: str  # the top operators


@dataclass
class StepProfile:
    model: str
    overrides: list[str]
    device: str
    steps: int
    warmup: int
    repeats: int
    batch_size: int
    rates: dict[str, list[float]]  # steady-state samples/s of each arm, per repeat
    profiles: dict[str, ArmProfile] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The arm the others are a ratio of."""
        return "bare" if "bare" in self.rates else next(iter(self.rates))


def profile_step(
    overrides: Sequence[str], steps: int, warmup: int, repeats: int, profile_steps: int, top: int
) -> StepProfile:
    """Time each arm (``steps`` per fit, steady state after ``warmup``, ``repeats`` interleaved), then
    record ``profile_steps`` steps of each under the profiler (its ``top`` operators kept)."""
    cache = Path(tempfile.mkdtemp(prefix="profile-step-"))
    cfg = compose_cfg([*QUIET, *overrides], cache)
    _, _, data = pipeline.prepare(cfg)
    ctx = bench_context(cfg, data, cache)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    precision = str(trainer_cfg["precision"])
    mixed = precision in ("bf16-mixed", "16-mixed")
    device = eval_device(trainer_cfg)
    cuda = device.type == "cuda"

    def run(arm: str, steps: int, prof: profile | None = None) -> list[float]:
        """Step end times of one fit of ``arm`` (the first entry: the start), under ``prof`` if given
        (then with a sync per step, as the profiler's schedule steps each one)."""
        module, loader = fresh_fit(ctx, step_recipe(cfg, epochs=1000, steps=steps))
        sync_at = None if prof is not None else {warmup, steps}
        with prof if prof is not None else nullcontext():
            if arm.startswith("bare"):
                times, _ = bare_loop(
                    module.model,
                    loader,
                    module.configure_optimizers(),
                    steps,
                    device,
                    bf16=precision == "bf16-mixed",
                    autocast_cache=arm == "bare",
                    on_step=prof.step if prof is not None else None,
                    sync_at=sync_at,
                )
                return times
            clock = StepClock(sync_at=sync_at)
            trainer = build_trainer(
                {**trainer_cfg, "enable_progress_bar": False},
                None,
                cache,
                max_epochs=1000,
                max_steps=steps,
                callbacks=[clock, ProfilerStep(prof)],
            )
            if arm == "lightning, autocast cache on":  # the same Trainer but for its precision plugin
                trainer.strategy.precision_plugin = CachedAutocast(precision, device.type)  # type: ignore[arg-type]
            start = time.perf_counter()
            trainer.fit(module, train_dataloaders=loader)
            return [start, *clock.ends]

    arms = ARMS if mixed else ("lightning", "bare")
    bs = int(cfg.train.batch_size)
    rates: dict[str, list[float]] = {a: [] for a in arms}
    for _ in range(repeats):
        for arm in arms:
            times = run(arm, steps)
            rates[arm].append(steady_rate(times[1:], times[0], warmup, bs)["samples_per_s"])
            print(f"{arm}: {rates[arm][-1]:.1f} samples/s", flush=True)
    result = StepProfile(
        model=cfg.model.name,
        overrides=list(overrides),
        device=torch.cuda.get_device_name(0) if cuda else "cpu",
        steps=steps,
        warmup=warmup,
        repeats=repeats,
        batch_size=bs,
        rates=rates,
        versions={"torch": torch.__version__, "lightning": L.__version__},
    )
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    for arm in arms:
        n = profile_steps
        prof = profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=0, warmup=warmup, active=n, repeat=1),
            record_shapes=False,
        )
        run(arm, warmup + n + 1, prof)
        events = prof.key_averages()
        result.profiles[arm] = ArmProfile(
            steps=n,
            device_us=sum(e.self_device_time_total for e in events) if cuda else 0.0,
            cpu_us=sum(e.self_cpu_time_total for e in events),
            kernels=sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA),
            table=events.table(sort_by=sort, row_limit=top, max_name_column_width=60),
        )
    return result


def render_profile(p: StepProfile) -> str:
    """The markdown page of a :class:`StepProfile`: a table of the timed arms, then each profile."""
    lines = [
        f"# Profile of a training step: {p.model}, {', '.join(p.overrides) or 'defaults'}",
        "",
        f"Device {p.device}; torch {p.versions['torch']}, lightning "
        f"{p.versions['lightning']}; {p.steps} steps per fit, steady state after {p.warmup} (a CUDA sync at "
        f"its two edges only), {p.repeats} interleaved repeats (medians).",
        "",
        "| arm | samples/s | / bare | ms per step |",
        "|---|---:|---:|---:|",
    ]
    bs = p.batch_size
    for arm, arm_rates in p.rates.items():
        ratios = [a / b for a, b in zip(arm_rates, p.rates[p.base], strict=True)]
        rate = median(arm_rates)
        lines.append(f"| {arm} | {rate:.1f} | {median(ratios):.3f} | {1000 * bs / rate:.2f} |")
    for arm, prof in p.profiles.items():
        n = prof.steps
        lines += [
            "",
            f"## {arm}",
            "",
            f"Per step over {n} recorded steps: device time {prof.device_us / n / 1000:.2f} ms, "
            f"CPU time of the ops {prof.cpu_us / n / 1000:.2f} ms (both slowed by the profiler), "
            f"{prof.kernels / n:.0f} kernels.",
            "",
            "```",
            prof.table,
            "```",
        ]
    return "\n".join(lines) + "\n"

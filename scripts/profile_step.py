"""Where a training step's time goes on a GPU: the Lightning path (``FineTune`` fitted by the project's
Trainer) against the bare loop of scripts/benchmark.py, each with torch's autocast weight cache on and
off, timed (steady state, arms interleaved) and then profiled with ``torch.profiler``.

    python scripts/profile_step.py --out prof.md data=bbc data.max_length=256 train.batch_size=64 \
        trainer.precision=bf16-mixed trainer.accelerator=gpu

Lightning >= 2.6 runs mixed precision under ``torch.autocast(..., cache_enabled=False)``; the bare loop
uses torch's default (cache on). The four arms tell whether that, or something else in the Lightning
path, is what a step costs more. Written for the open question of docs/performance_gpu.md (Lightning /
bare loop 0.78 with bf16 at 256 tokens); it runs on a CPU too (bf16 autocast on CPU), slowly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as bench  # noqa: I001  (a sibling script, not a package)

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from unlearnbench import pipeline
from unlearnbench.methods.finetune import FineTune
from unlearnbench.trainer import build_trainer, eval_device

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the config (data, model, trainer...)")
    ap.add_argument("--out", default="profile_step.md")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile-steps", type=int, default=20, help="steps recorded by torch.profiler per arm")
    ap.add_argument("--top", type=int, default=15, help="operators listed per arm")
    args = ap.parse_args(argv)
    with bench.scratch_space():
        profile_arms(args)


def profile_arms(args: argparse.Namespace) -> None:
    cache = Path(tempfile.mkdtemp(prefix="profile-step-"))
    cfg = bench.compose_cfg([*bench.QUIET, *args.overrides], cache)
    _, _, data = pipeline.prepare(cfg)
    ctx = pipeline.RunContext(cfg, data, None, cache)  # type: ignore[arg-type]
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    precision = str(trainer_cfg["precision"])
    mixed = precision in ("bf16-mixed", "16-mixed")
    device = eval_device(trainer_cfg)
    cuda = device.type == "cuda"

    def fresh(steps: int) -> FineTune:
        torch.manual_seed(0)
        params = replace(pipeline.train_recipe(cfg), warmup_ratio=0.0, epochs=1000, max_steps=steps)
        return FineTune(ctx.pretrained(), params, data.num_labels, split="train")

    def run(arm: str, steps: int, prof: profile | None = None) -> list[float]:
        """Step end times of one fit of ``arm`` (the first entry: the start), under ``prof`` if given
        (then with a sync per step, as the profiler's schedule steps each one)."""
        module = fresh(steps)
        loader = module.train_loader(data, 0)
        sync_at = None if prof is not None else {args.warmup, steps}
        with prof if prof is not None else nullcontext():
            if arm.startswith("bare"):
                times, _ = bench.bare_loop(
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
            clock = bench.StepClock(sync_at=sync_at)
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
    for _ in range(args.repeats):
        for arm in arms:
            times = run(arm, args.steps)
            rates[arm].append(bench.steady_rate(times[1:], times[0], args.warmup, bs)["samples_per_s"])
            print(f"{arm}: {rates[arm][-1]:.1f} samples/s", flush=True)
    base = "bare" if "bare" in rates else arms[0]
    lines = [
        f"# Profile of a training step: {cfg.model.name}, {', '.join(args.overrides) or 'defaults'}",
        "",
        f"Device {torch.cuda.get_device_name(0) if cuda else 'cpu'}; torch {torch.__version__}, lightning "
        f"{L.__version__}; {args.steps} steps per fit, steady state after {args.warmup} (a CUDA sync at "
        f"its two edges only), {args.repeats} interleaved repeats (medians).",
        "",
        "| arm | samples/s | / bare | ms per step |",
        "|---|---:|---:|---:|",
    ]
    for arm in arms:
        ratios = [a / b for a, b in zip(rates[arm], rates[base], strict=True)]
        rate = bench.median(rates[arm])
        lines.append(f"| {arm} | {rate:.1f} | {bench.median(ratios):.3f} | {1000 * bs / rate:.2f} |")
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    for arm in arms:
        n = args.profile_steps
        prof = profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=0, warmup=args.warmup, active=n, repeat=1),
            record_shapes=False,
        )
        run(arm, args.warmup + n + 1, prof)
        events = prof.key_averages()
        device_us = sum(e.self_device_time_total for e in events) if cuda else 0.0
        cpu_us = sum(e.self_cpu_time_total for e in events)
        kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        lines += [
            "",
            f"## {arm}",
            "",
            f"Per step over {n} recorded steps: device time {device_us / n / 1000:.2f} ms, "
            f"CPU time of the ops {cpu_us / n / 1000:.2f} ms (both slowed by the profiler), "
            f"{kernels / n:.0f} kernels.",
            "",
            "```",
            events.table(sort_by=sort, row_limit=args.top, max_name_column_width=60),
            "```",
        ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

# ruff: noqa: E402  (the offline switches are set before transformers is imported)
"""Performance of unlearnbench: framework overhead, unlearning cost vs retraining, scaling, evaluation
throughput, training counts of a sweep and peak memory. Writes docs/performance.md (and a PNG).

    python scripts/benchmark.py --mode quick   # < 5 minutes on a 2-core CPU: subsets, short sequences
    python scripts/benchmark.py --mode full    # MiniLM on full bbc / tweets (5,000), 3 seeds: hours on CPU

Every figure is a median over repeats; where the machine is shared, the figure is a ratio of two arms
measured in the same process, interleaved (arm A, arm B, arm A, ...), so that other load cancels out.
The functions are importable (tests/test_benchmark.py runs the counting and the eval-agreement checks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("WANDB_MODE", "offline")

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from unlearnbench import pipeline
from unlearnbench.cli import CONF_DIR
from unlearnbench.evaluation import predict, split_metrics
from unlearnbench.evaluation.cost import process_peak_rss_mb
from unlearnbench.evaluation.predictions import Predictions
from unlearnbench.io import package_versions
from unlearnbench.methods.finetune import FineTune
from unlearnbench.trainer import build_trainer, compiled_for_fit, eval_device, timed_fit

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["trainer.enable_progress_bar=false", "logger=none"]
NO_ANALYSES = [  # (b), (c): only the cost is read; the retrained reference is still trained (cost ratio)
    "eval.mia=false",
    "eval.latent=false",
    "eval.predictions=false",
    "eval.embeddings_per_split=0",
    "eval.splits=[forget]",
]


def compose_cfg(overrides: Sequence[str], cache_dir: str | Path) -> DictConfig:
    """The config the CLI would compose for these overrides (no Hydra run: nothing resolved from it)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.cache_dir={cache_dir}", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


# ---------------------------------------------------------------------- (a) framework overhead
def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


def throughput(cfg: DictConfig, steps: int, repeats: int) -> dict[str, Any]:
    """Samples/s of ``FineTune`` fitted by the project's ``build_trainer`` vs a bare loop: same model
    (a fresh copy of the same weights per arm), same DataLoader, batch size and AdamW (the module's own
    ``configure_optimizers``, constant lr). Arms interleaved, ``repeats`` times; medians and ratios."""
    _, _, data = pipeline.prepare(cfg)
    ctx = pipeline.RunContext(cfg, data, None, Path(tempfile.mkdtemp(prefix="bench-a-")))  # type: ignore[arg-type]
    params = replace(pipeline.train_recipe(cfg), warmup_ratio=0.0, epochs=1, max_steps=steps)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    arms: dict[str, list[float]] = {"bare": [], "lightning_quiet": [], "lightning_bar_logger": []}

    def run_lightning(bar: bool) -> float:
        torch.manual_seed(0)
        module = FineTune(ctx.pretrained(), params, data.num_labels, split="train")
        loader = module.train_loader(data, 0)
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
        torch.manual_seed(0)
        module = FineTune(ctx.pretrained(), params, data.num_labels, split="train")
        loader, optimizer = module.train_loader(data, 0), module.configure_optimizers()
        times, samples = bare_loop(module.model, loader, optimizer, steps)
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
        "samples_per_s": {k: median(v) for k, v in arms.items()},
        "ratio_quiet": median(ratios_quiet),
        "ratio_bar_logger": median(ratios_bar),
        "ratios_quiet": ratios_quiet,
        "ratios_bar_logger": ratios_bar,
    }


# ---------------------------------------------------------------------- (g) precision and compile (GPU)
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


def steady_rate(ends: Sequence[float], start: float, warmup: int, batch_size: int) -> dict[str, float]:
    """Samples/s over the steps after the first ``warmup`` ones, and the seconds those took."""
    return {
        "samples_per_s": (len(ends) - warmup) * batch_size / (ends[-1] - ends[warmup - 1]),
        "first_steps_s": ends[warmup - 1] - start,
    }


def precision_compile(
    cfg: DictConfig, arms: Sequence[tuple[str, bool]], steps: int, warmup: int, repeats: int
) -> dict[str, Any]:
    """Steady-state training samples/s of ``FineTune`` under each (trainer.precision, trainer.compile)
    arm, and of the bare loop at each precision (autocast for bf16-mixed), after ``warmup`` steps.
    Arms interleaved, ``repeats`` times; medians, and ratios to the first arm in the same repeat."""
    _, _, data = pipeline.prepare(cfg)
    ctx = pipeline.RunContext(cfg, data, None, Path(tempfile.mkdtemp(prefix="bench-g-")))  # type: ignore[arg-type]
    params = replace(pipeline.train_recipe(cfg), warmup_ratio=0.0, epochs=1000, max_steps=steps)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    device = eval_device(trainer_cfg)

    def lightning(precision: str, compiled: bool) -> dict[str, float]:
        torch.manual_seed(0)
        module = FineTune(ctx.pretrained(), params, data.num_labels, split="train")
        arm_cfg = {**trainer_cfg, "precision": precision, "compile": compiled, "enable_progress_bar": False}
        clock = StepClock(sync_at={warmup, steps})
        trainer = build_trainer(
            arm_cfg, None, ctx.run_dir, max_epochs=1000, max_steps=steps, callbacks=[clock]
        )
        start = time.perf_counter()
        with compiled_for_fit(module, arm_cfg):
            trainer.fit(module, train_dataloaders=module.train_loader(data, 0))
        return steady_rate(clock.ends, start, warmup, params.batch_size)

    def bare(precision: str) -> dict[str, float]:
        torch.manual_seed(0)
        module = FineTune(ctx.pretrained(), params, data.num_labels, split="train")
        times, _ = bare_loop(
            module.model,
            module.train_loader(data, 0),
            module.configure_optimizers(),
            steps,
            device,
            bf16=precision == "bf16-mixed",
            sync_at={warmup, steps},
        )
        return steady_rate(times[1:], times[0], warmup, params.batch_size)

    names = [f"{p}{' + compile' if c else ''}" for p, c in arms]
    precisions = sorted({p for p, _ in arms})
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in [*names, *(f"bare {p}" for p in precisions)]}
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


# ---------------------------------------------------------------------- (b) unlearning vs retraining
def unlearn_vs_retrain(
    datasets: dict[str, list[str]],
    methods: Sequence[str],
    ratios: Sequence[float],
    seeds: Sequence[int],
    cache_dir: Path,
    base: Sequence[str],
    progress: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Each method's unlearning wall seconds / retraining's, from results.json ``cost`` of real
    pipeline runs (both measured in this process; the retrained model is trained by the first run of
    a forget split). One row per (dataset, ratio, method), medians over seeds; ``progress`` gets the
    rows so far after each (dataset, ratio)."""
    rows = []
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
                cost = [r["cost"] for r in results]
                rows.append(
                    {
                        "dataset": name,
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
                )
            if progress is not None:
                progress(rows)
    return rows


# ---------------------------------------------------------------------- (c) scaling of DeepCUT
def n_train(cfg: DictConfig) -> int:
    _, _, data = pipeline.prepare(cfg)
    return len(data.splits.train)


def deepcut_seconds(
    base: Sequence[str], n_samples: int, n_forget: int, cache_dir: Path, repeats: int
) -> dict:
    """DeepCUT unlearning seconds with |D| = ``n_samples`` (before the val / test split) and
    |D_f| = ``n_forget`` (the forget ratio is set so that round(ratio * |train|) = n_forget)."""
    probe = compose_cfg([*base, f"data.max_samples={n_samples}", "forget.ratio=0.5"], cache_dir)
    train = n_train(probe)
    ratio = n_forget / train
    times, sizes = [], None
    for rep in range(repeats):
        cfg = compose_cfg(
            [
                *base,
                f"data.max_samples={n_samples}",
                f"forget.ratio={ratio}",
                "method=deepcut",
                "eval.reference=false",
                f"+bench_repeat={rep}",
            ],
            cache_dir,
        )
        res = pipeline.run_experiment(cfg, Path(tempfile.mkdtemp(prefix="bench-c-")))
        times.append(res["timing"]["unlearn_seconds"])
        sizes = res["sizes"]
        print(f"[c] |D| {sizes['train']} |D_f| {sizes['forget']} repeat {rep}: {times[-1]:.2f} s", flush=True)
    return {
        "n_samples": n_samples,
        "n_train": sizes["train"],
        "n_forget": sizes["forget"],
        "n_retain": sizes["retain"],
        "seconds": median(times),
        "all": times,
    }


def scaling(
    base: Sequence[str],
    sizes: Sequence[int],
    forgets: Sequence[int],
    fixed_forget: int,
    fixed_size: int,
    cache_dir: Path,
    repeats: int,
) -> dict[str, list[dict]]:
    vs_d = [deepcut_seconds(base, n, fixed_forget, cache_dir, repeats) for n in sizes]
    vs_f = [deepcut_seconds(base, fixed_size, k, cache_dir, repeats) for k in forgets]
    return {"vs_D": vs_d, "vs_Df": vs_f}


def scaling_plot(scale: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    d = scale["vs_D"]
    axes[0].plot([r["n_train"] for r in d], [r["seconds"] for r in d], "o-")
    axes[0].set_xlabel(f"|D| (train samples), |D_f| = {d[0]['n_forget']}")
    axes[0].set_ylabel("DeepCUT unlearning s")
    axes[0].set_ylim(0, 1.2 * max(r["seconds"] for r in d))
    f = scale["vs_Df"]
    axes[1].plot([r["n_forget"] for r in f], [r["seconds"] for r in f], "o-")
    axes[1].set_xlabel(f"|D_f|, |D| = {f[0]['n_train']}")
    axes[1].set_ylim(0, 1.2 * max(r["seconds"] for r in f))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------- (3) the stop-rule check
def stop_check_cost(cfg: DictConfig, cap: int, repeats: int) -> dict[str, Any]:
    """Seconds of one ``forget_f1_below_val`` check (DeepCUT's default stop rule) on the whole val set
    vs on ``stop.val_max_samples`` = ``cap`` of it; interleaved, medians."""
    from unlearnbench.methods.base import StopOnForgetMetric, StopParams

    _, _, data = pipeline.prepare(cfg)
    ctx = pipeline.RunContext(cfg, data, None, Path("."))  # type: ignore[arg-type]
    module = FineTune(ctx.pretrained(), pipeline.train_recipe(cfg), data.num_labels)
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


# ---------------------------------------------------------------------- (d) evaluation throughput
class MaxLengthCollator:
    """Pads every batch to ``max_length`` (the plain way): the baseline of (d)."""

    def __init__(self, collate, max_length: int) -> None:
        self.collate, self.max_length = collate, max_length

    def __call__(self, items):
        batch = self.collate(items)
        width = batch["input_ids"].shape[1]
        pad = self.max_length - width
        if pad > 0:
            ids = torch.full((len(items), pad), self.collate.pad_token_id, dtype=torch.long)
            batch["input_ids"] = torch.cat([batch["input_ids"], ids], dim=1)
            batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.zeros_like(ids)], dim=1)
        return batch


@torch.no_grad()
def plain_predict(model, loader: DataLoader) -> Predictions:
    """The baseline: no_grad (not inference_mode), fixed order, every batch padded to max_length."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels, indices = [], [], []
    for batch in loader:
        out = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        )
        logits.append(out.logits.float().cpu())
        labels.append(batch["labels"])
        indices.append(batch["index"])
    return Predictions(torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy())


def eval_throughput(cfg: DictConfig, split: str, repeats: int) -> dict[str, Any]:
    """The project's eval path (length-sorted batches, dynamic padding, inference_mode) vs the plain
    one (dataset order, padded to max_length, no_grad) on the same model and split: samples/s of each,
    their ratio (median of interleaved repeats), and whether predictions and metrics agree."""
    _, _, data = pipeline.prepare(cfg)
    ctx = pipeline.RunContext(cfg, data, None, Path("."))  # type: ignore[arg-type]
    model = ctx.pretrained().eval().to(eval_device(cfg.trainer))
    subset = data.subset(split)
    plain_loader = DataLoader(
        subset,
        batch_size=data.eval_batch_size,
        shuffle=False,
        collate_fn=MaxLengthCollator(data.collate, data.max_length),
    )
    fast_t, plain_t = [], []
    fast = plain = None
    for _ in range(repeats):
        t = time.perf_counter()
        fast = predict(model, data.eval_loader(split)).sorted()
        fast_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain = plain_predict(model, plain_loader).sorted()
        plain_t.append(time.perf_counter() - t)
    names = data.data.label_names
    m_fast, m_plain = split_metrics(fast, names), split_metrics(plain, names)
    lengths = subset.lengths()
    return {
        "split": split,
        "n": len(subset),
        "max_length": data.max_length,
        "mean_length": float(lengths.mean()),
        "batch_size": data.eval_batch_size,
        "repeats": repeats,
        "samples_per_s_fast": len(subset) / median(fast_t),
        "samples_per_s_plain": len(subset) / median(plain_t),
        "ratio": median([p / f for f, p in zip(fast_t, plain_t, strict=True)]),
        "max_abs_logit_diff": float(np.abs(fast.logits - plain.logits).max()),
        "same_predictions": bool(np.array_equal(fast.preds, plain.preds)),
        "logits_allclose": bool(np.allclose(fast.logits, plain.logits, atol=1e-4, rtol=1e-4)),
        "same_metrics": m_fast == m_plain,
        "metrics": m_fast,
    }


# ---------------------------------------------------------------------- (e) trainings in a sweep
@contextmanager
def counting_trainings():
    """Count the fine-tunings from the pretrained model (by split: train = original, retain = retrained
    reference) and the forward passes that compute the original's / reference's cached outputs."""
    from unlearnbench.evaluation import run as eval_run

    counts: Counter = Counter()
    train, outputs = pipeline.RunContext._train_from_pretrained, eval_run._predict_splits

    def counted_train(self, split, params, log_dir):
        counts[{"train": "original", "retain": "retrained"}.get(split, split)] += 1
        return train(self, split, params, log_dir)

    def counted_outputs(model, data, splits, embeddings=True):
        counts["outputs:" + "+".join(splits)] += 1
        return outputs(model, data, splits, embeddings)

    pipeline.RunContext._train_from_pretrained = counted_train
    eval_run._predict_splits = counted_outputs
    try:
        yield counts
    finally:
        pipeline.RunContext._train_from_pretrained = train
        eval_run._predict_splits = outputs


def count_sweep(
    methods: Sequence[str],
    ratios: Sequence[float],
    seeds: Sequence[int],
    cache_dir: Path,
    base: Sequence[str],
    run_root: Path,
) -> dict[str, Any]:
    """Run M x R x S experiments in-process on one fresh cache and count the trainings."""
    with counting_trainings() as counts:
        for seed in seeds:
            for ratio in ratios:
                for method in methods:
                    cfg = compose_cfg(
                        [*base, f"method={method}", f"forget.ratio={ratio}", f"seed={seed}"], cache_dir
                    )
                    pipeline.run_experiment(cfg, run_root / f"{method}-{ratio}-{seed}")
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


# ---------------------------------------------------------------------- the document
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(rows: Sequence[dict], cols: Sequence[tuple[str, str, Callable[[Any], str]]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---:" for _ in cols) + "|"
    body = ["| " + " | ".join(fmt(r[key]) for key, _, fmt in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def f1(x):
    return f"{x:.1f}"


def f2(x):
    return f"{x:.2f}"


def f3(x):
    return f"{x:.3f}"


def plain(x):
    return str(x)


MODES = {
    # quick: < 5 minutes on 2 CPU cores; subsets and short sequences, so the figures are indicative.
    "quick": {
        "a": {
            "overrides": ["data.max_samples=400", "data.max_length=32", "train.batch_size=16"],
            "steps": 8,
            "repeats": 3,
        },
        "a_tiny": {
            "overrides": [
                "model=tiny_bert",
                "data.max_samples=400",
                "data.max_length=64",
                "train.batch_size=16",
            ],
            "steps": 20,
            "repeats": 5,
        },
        "b": {  # the real train.* recipe (2 epochs): retraining's cost is what the ratio divides by
            "datasets": {
                "bbc": ["data=bbc", "data.max_samples=200", "data.max_length=32"],
                "tweets": ["data=tweets", "data.max_samples=200", "data.max_length=32"],
            },
            "methods": ["gradient_ascent", "deepcut"],  # finetune and the rest: full mode
            "ratios": [0.01, 0.05, 0.1],
            "seeds": [0],
            "base": [],
        },
        "c": {
            "base": ["data=tweets", "data.max_length=32", "train.epochs=1", "method.stop.rule=none"],
            "sizes": [300, 600, 1200],
            "forgets": [8, 16, 32],
            "fixed_forget": 16,
            "fixed_size": 600,
            "repeats": 1,
        },
        "d": {"overrides": ["data=tweets", "data.max_samples=600"], "split": "train", "repeats": 3},
        "s": {"overrides": ["data=tweets", "data.max_length=32"], "cap": 128, "repeats": 3},
        "e": {"methods": ["finetune", "gradient_ascent", "deepcut"], "ratios": [0.05, 0.1], "seeds": [0, 1]},
    },
    # full: MiniLM on full bbc (2,225) and tweets (5,000 default subsample), all methods, 3 seeds.
    "full": {
        "a": {"overrides": [], "steps": 50, "repeats": 5},
        "a_tiny": {"overrides": ["model=tiny_bert"], "steps": 50, "repeats": 5},
        "b": {
            "datasets": {"bbc": ["data=bbc"], "tweets": ["data=tweets"]},
            "methods": [
                "finetune",
                "gradient_ascent",
                "gradient_difference",
                "random_label",
                "scrub",
                "npo",
                "sisa",
                "deepcut",
            ],
            "ratios": [0.01, 0.05, 0.1],
            "seeds": [0, 1, 2],
            "base": [],
        },
        "c": {
            "base": ["data=tweets", "method.stop.rule=none"],
            "sizes": [2500, 5000, 10000, 20000],
            "forgets": [25, 50, 100, 200],
            "fixed_forget": 50,
            "fixed_size": 5000,
            "repeats": 3,
        },
        "d": {"overrides": ["data=tweets"], "split": "train", "repeats": 5},
        "s": {"overrides": ["data=tweets", "data.max_samples=null"], "cap": 256, "repeats": 5},
        "e": {"methods": ["finetune", "gradient_ascent", "deepcut"], "ratios": [0.05, 0.1], "seeds": [0, 1]},
    },
    # gpu: what only a GPU can tell (bf16, compile) and the CPU figures again on it; minutes on one GPU.
    "gpu": {
        "g": {
            "shapes": {  # name: (overrides, arms); compiling is slow, so only the defaults get it
                "bbc defaults": (
                    ["data=bbc"],
                    [("32-true", False), ("bf16-mixed", False), ("32-true", True), ("bf16-mixed", True)],
                ),
                "bbc long": (
                    ["data=bbc", "data.max_length=256", "train.batch_size=64"],
                    [("32-true", False), ("bf16-mixed", False)],
                ),
            },
            "steps": 60,
            "warmup": 10,
            "repeats": 2,
        },
        "b": {
            "datasets": {
                "bbc 32-true": ["data=bbc", "trainer.precision=32-true"],
                "bbc bf16-mixed": ["data=bbc", "trainer.precision=bf16-mixed"],
            },
            "methods": ["finetune", "gradient_ascent", "deepcut"],
            "ratios": [0.05],
            "seeds": [0],
            "base": [],
        },
        "d": {"overrides": ["data=tweets"], "split": "train", "repeats": 3},
    },
}
GPU_BASE = ["trainer.accelerator=gpu"]  # --mode gpu: fail rather than fall back to the CPU
TINY = ["model=tiny_bert", "data.max_samples=200", "eval.batch_size=128", *QUIET]


PROFILE_RUN = [  # (3): one DeepCUT run; py-spy record -- python scripts/benchmark.py --profile-run
    *QUIET,
    "data=bbc",
    "data.max_samples=600",
    "data.max_length=64",
    "train.epochs=1",
    "method=deepcut",
    "forget.ratio=0.1",
    "eval.reference=false",
]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=sorted(MODES), default="quick")
    ap.add_argument("--cache", default=None, help="model cache dir (default: a fresh temp dir)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    ap.add_argument("--json", default=None, help="also write the raw figures here")
    ap.add_argument("--only", default="abcdseg", help="which sections to run, e.g. 'ad' (g: GPU mode)")
    ap.add_argument(
        "--b-methods",
        default=None,
        help="(b)'s methods instead of the mode's: a comma list, or 'all' (every unlearning method)",
    )
    ap.add_argument("--seeds", default=None, help="(b)'s seeds instead of the mode's: a comma list, e.g. 0")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    ap.add_argument("--profile-run", action="store_true", help="only run PROFILE_RUN once (for py-spy)")
    ap.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="run nothing: write --out from the --json files of earlier runs on one machine "
        "(each section from the last file that has it)",
    )
    args = ap.parse_args(argv)
    if args.render:
        fig = merge([json.loads(Path(f).read_text()) for f in args.render])
        if "c" in fig:
            scaling_plot(fig["c"], Path(args.out).parent / "performance_scaling.png")
        write_doc(Path(args.out), render(fig))
        print(f"wrote {args.out} from {len(args.render)} runs", file=sys.stderr)
        return
    with scratch_space():
        measure(args, sys.argv[1:] if argv is None else list(argv))


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


PLUMBING = ("--out", "--json", "--cache")  # where a run writes, not what it measures


def what_runs(argv: Sequence[str]) -> list[str]:
    """The command-line arguments without the plumbing ones (for the document's header)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in PLUMBING:
            skip = True
        elif not arg.startswith(tuple(f"{p}=" for p in PLUMBING)):
            kept.append(arg)
    return kept


def measure(args: argparse.Namespace, argv: list[str]) -> None:
    torch.set_num_threads(args.threads)
    if args.profile_run:
        cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-cache-"))
        res = pipeline.run_experiment(
            compose_cfg(PROFILE_RUN, cache), Path(tempfile.mkdtemp(prefix="bench-p-"))
        )
        print(json.dumps({"timing": res["timing"], "sizes": res["sizes"]}))
        return
    plan = MODES[args.mode]
    if args.b_methods:
        every = MODES["full"]["b"]["methods"]
        methods = every if args.b_methods == "all" else args.b_methods.split(",")
        plan = {**plan, "b": {**plan["b"], "methods": methods}}
    if args.seeds:
        plan = {**plan, "b": {**plan["b"], "seeds": [int(s) for s in args.seeds.split(",")]}}
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-cache-"))
    t0 = time.perf_counter()
    fig: dict[str, Any] = {
        "mode": args.mode,
        "command": shlex.join(["python", "scripts/benchmark.py", *what_runs(argv)]),
        "machine": machine(),
        "versions": package_versions(),
    }
    timings = {}

    def save(**partial) -> None:  # after every section, and within a long one: a run stopped later
        if args.json:  # keeps what it measured
            figures = {**fig, **partial, "seconds": timings}
            Path(args.json).write_text(json.dumps(figures, indent=1, default=str))

    def section(key, fn):
        t = time.perf_counter()
        fig[key] = fn()
        timings[key] = time.perf_counter() - t
        save()
        print(f"[{key}] {timings[key]:.0f}s: {json.dumps(fig[key], default=str)[:600]}", flush=True)

    quiet = [*QUIET, *(GPU_BASE if args.mode == "gpu" else [])]
    if args.mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs a CUDA device (torch.cuda.is_available() is False)")
    if "g" in args.only and "g" in plan:
        p = plan["g"]
        section(
            "g",
            lambda: {
                shape: precision_compile(
                    compose_cfg([*quiet, *overrides], cache), arms, p["steps"], p["warmup"], p["repeats"]
                )
                for shape, (overrides, arms) in p["shapes"].items()
            },
        )
    if "a" in args.only and "a" in plan:
        p, q = plan["a"], plan["a_tiny"]
        section(
            "a", lambda: throughput(compose_cfg([*quiet, *p["overrides"]], cache), p["steps"], p["repeats"])
        )
        section(
            "a_tiny",
            lambda: throughput(compose_cfg([*quiet, *q["overrides"]], cache), q["steps"], q["repeats"]),
        )
    if "b" in args.only:
        p = plan["b"]
        section(
            "b",
            lambda: unlearn_vs_retrain(
                p["datasets"],
                p["methods"],
                p["ratios"],
                p["seeds"],
                cache,
                [*quiet, *NO_ANALYSES, *p["base"]],
                progress=lambda rows: save(b=rows),
            ),
        )
    if "c" in args.only and "c" in plan:
        p = plan["c"]
        section(
            "c",
            lambda: scaling(
                [*quiet, *NO_ANALYSES, *p["base"]],
                p["sizes"],
                p["forgets"],
                p["fixed_forget"],
                p["fixed_size"],
                cache,
                p["repeats"],
            ),
        )
        scaling_plot(fig["c"], Path(args.out).parent / "performance_scaling.png")
    if "d" in args.only:
        p = plan["d"]
        section(
            "d",
            lambda: eval_throughput(compose_cfg([*quiet, *p["overrides"]], cache), p["split"], p["repeats"]),
        )
    if "s" in args.only and "s" in plan:
        p = plan["s"]
        section(
            "s",
            lambda: stop_check_cost(compose_cfg([*quiet, *p["overrides"]], cache), p["cap"], p["repeats"]),
        )
    if "e" in args.only and "e" in plan:
        p = plan["e"]
        fresh = Path(tempfile.mkdtemp(prefix="bench-e-"))
        section(
            "e",
            lambda: count_sweep(p["methods"], p["ratios"], p["seeds"], fresh / "cache", TINY, fresh / "runs"),
        )
    fig["f"] = {
        "gpu_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
        "benchmark_process_peak_rss_mb": process_peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    timings["total"] = time.perf_counter() - t0
    fig["seconds"] = timings
    fig["finished"] = time.strftime("%Y-%m-%d %H:%M")
    save()
    write_doc(Path(args.out), render(merge([fig])))
    print(f"wrote {args.out} in {fig['seconds']['total']:.0f}s", file=sys.stderr)


BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (between the markers), keeping the hand-written text."""
    text = path.read_text() if path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = f"{text.rstrip()}\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}")


SECTIONS = ("g", "a", "a_tiny", "b", "c", "d", "s", "e")


def merge(figs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several runs (their --json files) as one, for one document: each section from
    the last run that has it; each run kept as a source (its command, time and peak memory)."""
    machines = {json.dumps({k: f["machine"].get(k) for k in ("cpu", "cores", "gpu")}) for f in figs}
    if len(machines) > 1:
        raise SystemExit(f"--render merges the runs of one machine; these come from {sorted(machines)}")
    merged: dict[str, Any] = {"machine": figs[-1]["machine"], "versions": figs[-1]["versions"], "sources": []}
    for fig in figs:
        sections = [k for k in SECTIONS if k in fig]
        merged.update({k: fig[k] for k in sections})
        merged["sources"].append(
            {
                "command": fig.get("command", f"python scripts/benchmark.py --mode {fig['mode']}"),
                "finished": fig.get("finished", "?"),
                "seconds": fig["seconds"]["total"],
                "sections": sections,
                "f": fig["f"],
            }
        )
    return merged


def render(fig: dict[str, Any]) -> str:
    m, v = fig["machine"], fig["versions"]
    out = [
        "_Generated by "
        + "; ".join(
            f"`{src['command']}` ({src['finished']}, {src['seconds']:.0f} s)" for src in fig["sources"]
        )
        + "._",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores"
        f"{'' if m['gpu'] else ' (shared with other jobs while measured)'}, "
        f"torch threads {m['torch_threads']}, GPU {m['gpu'] or 'none'}; Python {m['python']}, "
        + ", ".join(f"{k} {v[k]}" for k in sorted(v) if k != "python")
        + ".",
        "",
    ]
    for shape, g in fig.get("g", {}).items():
        arms = list(g["samples_per_s"])
        rows = [
            {
                "arm": arm,
                "sps": g["samples_per_s"][arm],
                "ratio": g["ratio_to_first_arm"][arm],
                "first": g["first_steps_s"][arm],
            }
            for arm in arms
        ]
        out += [
            f"**(g) Precision and torch.compile, {g['model']} on {m['gpu']}, {shape}** (max_length "
            f"{g['max_length']}, batch {g['batch_size']}, {g['steps']} steps per fit, steady state after the "
            f"first {g['warmup_steps']} (a CUDA sync at its two edges only), {g['repeats']} interleaved "
            "repeats; `bare` is the plain loop, "
            f"autocast for bf16). Lightning / bare loop: "
            + ", ".join(f"**{v:.3f}** at {k}" for k, v in g["lightning_over_bare"].items())
            + ".",
            "",
            table(
                rows,
                [
                    ("arm", "arm", plain),
                    ("sps", "samples/s", f1),
                    ("ratio", f"x {arms[0]}", f2),
                    ("first", f"first {g['warmup_steps']} steps s", f2),
                ],
            ),
            "",
        ]
    for key in ("a", "a_tiny"):
        if key in fig:
            a = fig[key]
            sps = a["samples_per_s"]
            out += [
                f"**(a) Training throughput, {a['model']}** (max_length {a['max_length']}, batch "
                f"{a['batch_size']}, {a['steps']} steps per arm, {a['repeats']} interleaved repeats): "
                f"bare loop {sps['bare']:.1f} samples/s, "
                f"FineTune + build_trainer {sps['lightning_quiet']:.1f} "
                f"(progress bar and logger off), {sps['lightning_bar_logger']:.1f} "
                "(progress bar + CSV logger on). "
                f"Ratio to the bare loop (median of per-repeat ratios): **{a['ratio_quiet']:.3f}** off, "
                f"**{a['ratio_bar_logger']:.3f}** on (each repeat: "
                f"{', '.join(f'{r:.2f}' for r in a['ratios_quiet'])} / "
                f"{', '.join(f'{r:.2f}' for r in a['ratios_bar_logger'])}).",
                "",
            ]
    if "b" in fig:
        out += [
            "**(b) Unlearning wall time / retraining's** (results.json `cost.ratio_to_retrain.seconds`; "
            "both measured in this process; median over seeds):",
            "",
            table(
                fig["b"],
                [
                    ("dataset", "dataset", plain),
                    ("ratio", "forget ratio", plain),
                    ("n_forget", "abs D_f", plain),
                    ("n_train", "abs D", plain),
                    ("method", "method", plain),
                    ("seconds", "unlearn s", f2),
                    ("retrain_seconds", "retrain s", f2),
                    ("ratio_to_retrain", "x retrain", f3),
                    ("peak_rss_mb", "peak RSS MB", f1),
                    *([("peak_gpu_mb", "peak GPU MB", f1)] if m["gpu"] else []),
                    *(
                        [("test_f1", "test F1", f1)]
                        if all(r.get("test_f1") is not None for r in fig["b"])
                        else []
                    ),
                    ("seeds", "seeds", plain),
                ],
            )
            .replace("abs D_f", "\\|D_f\\|")
            .replace("abs D", "\\|D\\|"),
            "",
        ]
    if "c" in fig:
        cols = [
            ("n_samples", "max_samples", plain),
            ("n_train", "\\|D\\|", plain),
            ("n_forget", "\\|D_f\\|", plain),
            ("seconds", "DeepCUT s", f2),
        ]
        out += [
            "**(c) DeepCUT scaling** (median unlearning seconds; plot: "
            "[performance_scaling.png](performance_scaling.png)). At fixed \\|D_f\\|:",
            "",
            table(fig["c"]["vs_D"], cols),
            "",
            "At fixed \\|D\\|:",
            "",
            table(fig["c"]["vs_Df"], cols),
            "",
            "![DeepCUT scaling](performance_scaling.png)",
            "",
        ]
    if "d" in fig:
        d = fig["d"]
        out += [
            f"**(d) Evaluation throughput** ({d['n']} samples of split {d['split']}, "
            f"batch {d['batch_size']}, "
            f"max_length {d['max_length']}, mean length {d['mean_length']:.1f} tokens, {d['repeats']} "
            f"interleaved repeats): length-sorted + dynamic padding + inference_mode "
            f"{d['samples_per_s_fast']:.0f} samples/s, fixed order padded to max_length + no_grad "
            f"{d['samples_per_s_plain']:.0f} samples/s: **{d['ratio']:.2f}x**. Predictions identical: "
            f"{d['same_predictions']}; logits allclose (1e-4): {d['logits_allclose']} (max abs diff "
            f"{d['max_abs_logit_diff']:.1e}); metrics identical: {d['same_metrics']}.",
            "",
        ]
    if "s" in fig:
        c = fig["s"]
        out += [
            f"**(3) Stop-rule check** (DeepCUT's `forget_f1_below_val`, {c['n_forget']} forget and "
            f"{c['n_val']} val samples, {c['repeats']} interleaved repeats): one "
            f"check on all of val {c['seconds_whole_val']:.2f} s, with `method.stop.val_max_samples="
            f"{c['cap']}` {c['seconds_capped']:.2f} s: **{c['ratio']:.2f}x** the time.",
            "",
        ]
    if "e" in fig:
        e = fig["e"]
        out += [
            f"**(e) Trainings in a sweep** of {e['M']} methods x {e['R']} ratios x {e['S']} seeds "
            f"({e['runs']} runs, tiny_bert, one fresh cache): original trained {e['original_trainings']} "
            f"times (expected S = {e['expected_original']}), retrained model {e['retrain_trainings']} times "
            f"(expected R x S = {e['expected_retrain']}); the original's outputs computed "
            f"{e['original_output_passes']} times, the reference's {e['reference_output_passes']} times; "
            f"cache entries {e['cache_entries']}. **{'OK' if e['ok'] else 'NOT OK'}**.",
            "",
        ]
    for src in fig["sources"]:
        f = src["f"]
        out += [
            f"**(f) Peak RSS** of the benchmark process that ran {', '.join(src['sections']) or 'nothing'} "
            f"(every job of those sections in it): {f['benchmark_process_peak_rss_mb']:.0f} MB "
            f"(`process_peak_rss_mb`; getrusage's max RSS says {f['ru_maxrss_mb']:.0f} MB, and can say less, "
            "because PeakMemory resets the kernel's high-water mark); the unlearning step's own peak per run "
            "is in (b)'s table."
            + (
                f" Peak GPU memory allocated by torch: {f['gpu_peak_allocated_mb']:.0f} MB."
                if f.get("gpu_peak_allocated_mb")
                else ""
            ),
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    main()

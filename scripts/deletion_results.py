"""Deletion requests as they arrive, and LoRA against full fine-tuning: runs (or resumes) both sweeps
and writes docs/deletion_results.md.

    python scripts/deletion_results.py [--render-only] [--part requests|lora|both] [overrides ...]

``requests``: ``unlearnbench -m experiment=deletion_requests`` (conf/experiment/deletion_requests.yaml:
four requests one after another, each unlearned from the model the previous one left, scored against
retraining on D minus requests 1..k). ``lora``: ``unlearnbench -m experiment=lora`` twice, with
``model.adapter=none`` and ``model.adapter=lora`` (conf/experiment/lora.yaml). Any override after the
options goes to every sweep (e.g. ``seed=0``). Rerunning skips the finished jobs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from unlearnbench.config import compose
from unlearnbench.io import atomic_write_text
from unlearnbench.report import load_runs, plot_requests, request_series
from unlearnbench.report.stats import mean_ci
from unlearnbench.report.tables import METHOD_ORDER

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "outputs" / "sweeps"
REQUESTS = SWEEPS / "deletion_requests"
LORA = SWEEPS / "lora"
# LoRA's recipe: LORA_SCALE x full fine-tuning's learning rate for every fit (train.lr for the
# original and the retrained references, method.lr for the unlearning), and more epochs.
LORA_SCALE = 20.0
UNLEARNERS = ("finetune", "gradient_ascent", "deepcut")


def full_learning_rates() -> dict[str, float]:
    """Full fine-tuning's learning rates, as experiment=lora composes them: ``train`` (the original
    and the retrained references) and each unlearning method's own."""
    rates = {"train": float(compose(["experiment=lora"]).train.lr)}
    for method in UNLEARNERS:
        rates[method] = float(compose(["experiment=lora", f"method={method}"]).method.lr)
    return rates


FULL_LR = full_learning_rates()
LORA_RECIPE = [f"train.lr={LORA_SCALE * FULL_LR['train']:g}", "train.epochs=8"]
ARMS = {  # name: the sweeps of its dir, each a list of overrides
    "full": [["model.adapter=none"]],
    "lora": [
        ["model.adapter=lora", *LORA_RECIPE, "method=original,retrain"],
        *(
            ["model.adapter=lora", *LORA_RECIPE, f"method={m}", f"method.lr={LORA_SCALE * FULL_LR[m]:g}"]
            for m in UNLEARNERS
        ),
    ],
    # LoRA with full fine-tuning's recipe: why LoRA gets a recipe of its own
    "lora_full_recipe": [["model.adapter=lora", "method=original"]],
}


def sweep(experiment: str, sweep_dir: Path, overrides: Sequence[str]) -> None:
    cmd = [
        sys.executable, "-m", "unlearnbench.cli", "-m", f"experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}", *overrides,
    ]  # fmt: skip
    print("$", shlex.join(cmd), flush=True)
    # A failed job leaves error.json and the others go on; the document reports what finished.
    subprocess.run(cmd, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"})


def job_time(frame: pd.DataFrame) -> str:
    """How much the runs of a section cost, from their own records (so a re-render keeps it)."""
    return f"{len(frame)} runs, {frame.total_seconds.sum():.0f} s of job time in all."


def _ordered(methods: Sequence[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(methods), key=lambda m: (rank.get(m, len(rank)), m))


def requests_section(sweep_dir: Path, figure_dir: Path) -> str:
    """Per method and request k: the forget-F1 gap to retraining on D minus requests 1..k, test F1
    and the cumulative unlearning seconds (mean ± 95 % CI over seeds), then the figure."""
    lines = ["## Requests one after another", ""]
    if not sweep_dir.exists():
        return "\n".join([*lines, f"No runs yet under `{sweep_dir}`."])
    frame, failures = load_runs([sweep_dir])
    series = request_series(frame) if not frame.empty else pd.DataFrame()
    if series.empty:
        return "\n".join([*lines, "No finished sequential run yet."])
    setting = series.iloc[0]
    seeds = sorted(series.seed.unique())
    lines += [
        f"{setting.dataset} x {setting.model}, forget design `{setting.forget}`, seeds "
        f"{', '.join(map(str, seeds))}. Request k is unlearned from the model request k - 1 left; "
        "the gap is |forget F1 - retrained forget F1| on all requests so far, with the model "
        "retrained on D minus requests 1..k; seconds are the method's own, summed over requests "
        "(SISA: the shards it retrained). Mean ± half-width of the 95 % t-interval over seeds. "
        f"{job_time(frame)}",
        "",
        "| method | request | forget-F1 gap (points) | test F1 | cumulative s | seeds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in _ordered(series.method):
        rows = series[series.method == method]
        for k, at_k in rows.groupby("request"):
            lines.append(
                f"| {method} | {k} | {mean_ci(at_k.gap)} | {mean_ci(at_k.test_f1)} | "
                f"{mean_ci(at_k.seconds)} | {len(at_k)} |"
            )
    figures = plot_requests(frame, figure_dir, _ordered(series.method))
    for path in figures:
        lines += ["", f"![requests one after another]({path.relative_to(figure_dir.parent).as_posix()})"]
    last = series[series.request == series.request.max()].groupby("method")
    gap, secs = last.gap.mean(), last.seconds.mean()
    if len(gap):
        closest, fastest = gap.idxmin(), secs.idxmin()
        lines += [
            "",
            f"After the last request the closest to retraining is **{closest}** "
            f"(gap {gap[closest]:.1f} points; the others: "
            + ", ".join(f"{m} {g:.1f}" for m, g in gap.drop(closest).items())
            + f"); the cheapest in cumulative seconds is **{fastest}** ({secs[fastest]:.1f} s).",
        ]
    lines += ["", *(f"Failed: {f['run_dir']}: {f['type']}: {f['message']}" for f in failures)]
    return "\n".join(lines)


def _arm_runs(sweep_dir: Path) -> tuple[pd.DataFrame, list[dict]]:
    frames, failures = [], []
    for arm in ARMS:
        if (sweep_dir / arm).exists():
            frame, failed = load_runs([sweep_dir / arm])
            frames.append(frame.assign(arm=arm))
            failures += failed
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), failures


def lora_section(sweep_dir: Path) -> str:
    """What LoRA costs and gives against full fine-tuning: the retrained model's fit (trainable
    parameters, seconds, peak memory), the original's test F1, and each method's scores."""
    lines = ["## LoRA against full fine-tuning", ""]
    frame, failures = _arm_runs(sweep_dir)
    if frame.empty:
        return "\n".join([*lines, f"No runs yet under `{sweep_dir}`."])
    lines += [
        f"Arms: `full` (every weight trains; `train.lr` {FULL_LR['train']:g}, 2 epochs), "
        "`lora` (rank-8 adapters on "
        f"query and value plus the head; {LORA_SCALE:g} x every learning rate: `train.lr` "
        f"{LORA_SCALE * FULL_LR['train']:g}, 8 epochs; `method.lr` of "
        + ", ".join(f"{m} {LORA_SCALE * FULL_LR[m]:g}" for m in UNLEARNERS)
        + "), and `lora_full_recipe` (LoRA with full fine-tuning's recipe: the original only). The fit "
        "is the retrained model's training, the recipe of the original; the arms ran one after "
        f"another on the same machine. {job_time(frame)}",
        "",
        "| arm | trainable parameters | fit seconds | s / step | peak RSS (MB) | original test F1 | seeds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    means = {}
    for arm in ARMS:
        rows, originals = (
            frame[(frame.arm == arm) & (frame.method == "retrain")],
            frame[(frame.arm == arm) & (frame.method == "original")],
        )
        if rows.empty and originals.empty:
            continue
        trainable = rows.get("trainable_parameters", pd.Series(dtype=float)).dropna()
        per_step = rows.unlearn_seconds / rows.unlearn_steps
        if not rows.empty:
            means[arm] = (per_step.mean(), rows.peak_rss_mb.mean(), trainable.mean())
        trainable_cell = f"{trainable.mean():,.0f}" if len(trainable) else "-"
        lines.append(
            f"| {arm} | {trainable_cell} | {mean_ci(rows.unlearn_seconds)} | {mean_ci(per_step, digits=3)} | "
            f"{mean_ci(rows.peak_rss_mb, digits=0)} | {mean_ci(originals.test_f1, 100)} | "
            f"{max(len(rows), len(originals))} |"
        )
    originals = frame[frame.method == "original"].groupby("arm").test_f1.mean()
    if {"full", "lora"} <= set(originals.index):
        lines += [
            "",
            f"Read with care: on this subsample full fine-tuning's recipe (2 epochs, about 20 steps) "
            f"leaves the original at {100 * originals['full']:.1f} test F1 against LoRA's "
            f"{100 * originals['lora']:.1f} with its own recipe (8 epochs), so the arms differ in how "
            "well trained their originals are as well as in what trains; the per-step cost compares "
            "like with like, the scores do not. The seconds were measured while other jobs shared "
            "the two cores, hence their wide intervals.",
        ]
    if {"full", "lora"} <= set(means):
        (fs, fm, ft), (ls, lm, lt) = means["full"], means["lora"]
        lines += [
            "",
            f"LoRA / full: {lt / ft:.4f} x the trainable parameters, {ls / fs:.2f} x the seconds per "
            f"optimiser step, {lm / fm:.2f} x the peak RSS of the fit.",
        ]
    lines += [
        "",
        "Each method's scores (mean ± 95 % CI over seeds; the gap is to the retrained model of the "
        "same arm):",
        "",
        "| method | arm | forget F1 | forget-F1 gap (points) | test F1 | unlearn s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in _ordered(frame.method):
        for arm in ("full", "lora"):
            runs = frame[(frame.method == method) & (frame.arm == arm)]
            if runs.empty:
                continue
            gap = "-" if method == "retrain" else mean_ci(runs.forget_f1_gap, 100)
            lines.append(
                f"| {method} | {arm} | {mean_ci(runs.forget_f1, 100)} | {gap} | "
                f"{mean_ci(runs.test_f1, 100)} | {mean_ci(runs.unlearn_seconds)} |"
            )
    lines += ["", *(f"Failed: {f['run_dir']}: {f['type']}: {f['message']}" for f in failures)]
    return "\n".join(lines)


AT_SCALE = """
## At full scale, on a GPU

The sweeps above are subsampled so that a 2-core CPU runs them in about an hour; on one GPU drop
the subsampling (the full 2,225 articles, 128 tokens, the issue's 5 % in four requests):

```bash
python scripts/deletion_results.py data.max_samples=null data.max_length=128 forget.ratio=0.05 \\
    trainer.accelerator=gpu trainer.precision=bf16-mixed
```

Expected time (an estimate from docs/performance_gpu.md, not a measurement): per seed, the
original and four retrained references at about 5 s each, the four methods' requests in seconds,
SISA's shards a few fits more; the LoRA arm the same again: about 10 minutes for three seeds.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="write the doc from the runs so far")
    parser.add_argument("--part", choices=("requests", "lora", "both"), default="both")
    parser.add_argument("--out", default=str(ROOT / "docs" / "deletion_results.md"))
    args, overrides = parser.parse_known_args()
    started = time.time()
    if not args.render_only:
        if args.part in ("requests", "both"):
            sweep("deletion_requests", REQUESTS, overrides)
        if args.part in ("lora", "both"):
            for arm, sweeps in ARMS.items():
                for arm_overrides in sweeps:
                    sweep("lora", LORA / arm, [*arm_overrides, *overrides])
    out = Path(args.out)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    header = (
        "# Deletion requests over time, and LoRA\n\n"
        f"_Written by `python scripts/deletion_results.py {shlex.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')} ({time.time() - started:.0f} s this call) on {machine}, "
        f"from the sweeps under `outputs/sweeps/` (`deletion_requests`, `lora/full`, `lora/lora`)._\n"
    )
    text = "\n\n".join(
        [header, requests_section(REQUESTS, out.parent / "figures"), lora_section(LORA), AT_SCALE]
    )
    atomic_write_text(out, text.rstrip() + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

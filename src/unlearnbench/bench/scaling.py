"""(c) Scaling of DeepCUT: its unlearning seconds against |D| at a fixed |D_f| and against |D_f|
at a fixed |D|, from real pipeline runs, and the two-panel plot of them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from omegaconf import DictConfig

from unlearnbench import pipeline
from unlearnbench.bench.common import compose_cfg, median
from unlearnbench.io import atomic_path


class ScalingPoint(TypedDict):
    n_samples: int  # data.max_samples, before the val / test split
    n_train: int
    n_forget: int
    n_retain: int
    seconds: float  # median over repeats
    all: list[float]


class ScalingRecord(TypedDict):
    vs_D: list[ScalingPoint]  # at a fixed |D_f|
    vs_Df: list[ScalingPoint]  # at a fixed |D|


def n_train(cfg: DictConfig) -> int:
    _, _, data = pipeline.prepare(cfg)
    return len(data.splits.train)


def deepcut_seconds(
    base: Sequence[str], n_samples: int, n_forget: int, cache_dir: Path, repeats: int
) -> ScalingPoint:
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
    assert sizes is not None, "repeats must be at least 1"
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
) -> ScalingRecord:
    vs_d = [deepcut_seconds(base, n, fixed_forget, cache_dir, repeats) for n in sizes]
    vs_f = [deepcut_seconds(base, fixed_size, k, cache_dir, repeats) for k in forgets]
    return {"vs_D": vs_d, "vs_Df": vs_f}


def scaling_plot(scale: ScalingRecord, path: Path) -> None:
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)

"""The report's figures (PNG, matplotlib without a display):

- ``embeddings_<dataset>_<model>_<forget>.png``: a 2-D PCA map of the [CLS] embeddings of the
  original model (before) and of each method's model (after), forget samples highlighted;
- ``tradeoff_<dataset>_<model>.png``: forgetting (forget-F1 gap to retraining) against utility
  (test F1), one point per method, one panel per forget set;
- ``forget_quality_<dataset>_<model>.png``: forget quality (``fq_score``) against utility (test F1,
  or after whole-class forgetting the test F1 of the kept classes), one point per method, the
  retrained model's marked as the reference, one panel per forget set (only when the runs hold a
  ``forget_quality`` section);
- ``vs_forget_ratio_<dataset>_<model>.png``: metrics against the random forget ratio, one line per
  method (only when the runs hold several ratios).

Every point is a mean over seeds and every error bar the half-width of its 95 % t-interval (the
summary's ``<col>_ci95``, as in the table; none with one seed), not the std.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from unlearnbench.report.stats import ci95
from unlearnbench.results import EMBEDDINGS_FILE

log = logging.getLogger(__name__)

RATIO_METRICS = [
    ("forget_f1", "forget F1"),
    ("forget_f1_gap", "forget-F1 gap to retrain"),
    ("test_f1", "test F1"),
    ("mia_loss_auc", "MIA AUC (loss attack)"),
]


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", "_".join(str(p) for p in parts)).strip("_")


def _label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if variant else method


def _order(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(methods)}
    return frame.assign(_o=frame.method.map(lambda m: rank.get(m, len(rank)))).sort_values(
        ["_o", "method", "variant"]
    )


def _legend_below(fig, axes) -> None:
    """One legend for every panel, under the figure (never over a point)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        ncol = min(len(handles), 6)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.04 + 0.04 * ((len(handles) - 1) // ncol), 1, 0.95))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------- embedding map
def _scatter_map(ax, emb: np.ndarray, split: np.ndarray, label: np.ndarray, names: list[str], title: str):
    """PCA of one model's embeddings (fitted on the points shown); retain small, forget large."""
    shown = split != "test"
    xy = PCA(n_components=2, random_state=0).fit_transform(emb[shown].astype(np.float32))
    split, label = split[shown], label[shown]
    colors = plt.get_cmap("tab10")
    retain, forget = split == "retain", split == "forget"
    for c in np.unique(label):
        m = label == c
        ax.scatter(*xy[m & retain].T, s=6, alpha=0.35, color=colors(c % 10), linewidths=0)
        ax.scatter(
            *xy[m & forget].T, s=40, marker="X", color=colors(c % 10), edgecolors="black", linewidths=0.7
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_embeddings(frame: pd.DataFrame, out_dir: Path, methods: list[str]) -> list[Path]:
    """One figure per dataset x model x forget set, for its lowest seed: the original's map, then
    each method's."""
    written = []
    for (dataset, model, forget), rows in frame.groupby(["dataset", "model", "forget"], sort=False):
        rows = _order(rows[rows.seed == rows.seed.min()], methods)
        panels, methods_shown, before = [], [], None
        for _, row in rows.iterrows():
            path = Path(row.run_dir) / EMBEDDINGS_FILE
            if not path.exists():
                continue
            z = dict(np.load(path, allow_pickle=False))
            if before is None and "before" in z:
                before = z
            panels.append((_label(row.method, row.variant), z))
            methods_shown.append(row.method)
        if not panels:
            continue
        if before is not None:  # theta_0 itself; an `original` run's panel would repeat it
            panels = [p for p, m in zip(panels, methods_shown, strict=True) if m != "original"]
            panels.insert(0, ("original (before unlearning)", {**before, "after": before["before"]}))
        cols = min(4, len(panels))
        nrows = -(-len(panels) // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows + 0.6), squeeze=False)
        for ax, (title, z) in zip(axes.flat, panels, strict=False):
            if "after" not in z:
                ax.text(0.5, 0.5, "no embeddings\n(not an encoder)", ha="center", va="center")
                ax.set_title(title, fontsize=9)
                ax.set_axis_off()
                continue
            _scatter_map(ax, z["after"], z["split"], z["label"], list(z["label_names"]), title)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_axis_off()
        names = list(panels[0][1]["label_names"])
        colors = plt.get_cmap("tab10")
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=colors(i % 10), label=n) for i, n in enumerate(names)
        ]
        handles += [
            plt.Line2D([], [], marker="o", ls="", color="grey", alpha=0.5, markersize=4, label="retain"),
            plt.Line2D([], [], marker="X", ls="", color="grey", mec="black", markersize=8, label="forget"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        fig.suptitle(f"[CLS] embeddings, PCA per model: {dataset} / {model} / {forget}", fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 0.97))
        written.append(_save(fig, out_dir / f"embeddings_{_slug(dataset, model, forget)}.png"))
    return written


def _ci(row: pd.Series, column: str) -> float:
    """The half-width of the 95 % t-interval of ``column``'s mean in a summary row (0 if none)."""
    return float(np.nan_to_num(row.get(f"{column}_ci95", 0.0)))


# ---------------------------------------------------------------------- trade-off
def plot_tradeoff(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """x: forget-F1 gap to retraining (0 = as forgotten as retraining), y: test F1; mean ± 95 % CI."""
    needed = {"forget_f1_gap_mean", "test_f1_mean"}
    if not needed <= set(summary.columns):
        return []
    written = []
    for (dataset, model), rows in summary.groupby(["dataset", "model"], sort=False):
        forgets = list(dict.fromkeys(rows.forget))
        fig, axes = plt.subplots(1, len(forgets), figsize=(5.0 * len(forgets), 4.2), squeeze=False)
        for ax, forget in zip(axes[0], forgets, strict=True):
            part = rows[rows.forget == forget]
            markers = "osD^vP*Xh<>p"
            for i, (_, r) in enumerate(part.iterrows()):
                ax.errorbar(
                    r.forget_f1_gap_mean,
                    r.test_f1_mean,
                    xerr=_ci(r, "forget_f1_gap"),
                    yerr=_ci(r, "test_f1"),
                    fmt=markers[i % len(markers)],
                    capsize=3,
                    label=_label(r.method, r.variant),
                )
            ax.set_xlabel("forget-F1 gap to retrain  (lower = closer to exact unlearning)")
            ax.set_ylabel("test F1 (macro)")
            ax.set_title(str(forget), fontsize=10)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Forgetting vs utility: {dataset} / {model}", fontsize=11)
        _legend_below(fig, axes[0])
        written.append(_save(fig, out_dir / f"tradeoff_{_slug(dataset, model)}.png"))
    return written


# ---------------------------------------------------------------------- forget quality
REFERENCE = "retrain"  # the method every forget-quality point is compared with


def _utility(rows: pd.DataFrame) -> tuple[str, str]:
    """The utility column of a panel: the kept classes' test F1 after whole-class forgetting."""
    if "test_kept_f1_mean" in rows and rows.test_kept_f1_mean.notna().any():
        return "test_kept_f1", "test F1 of the kept classes"
    return "test_f1", "test F1"


def plot_forget_quality(summary: pd.DataFrame, out_dir: Path, methods: list[str]) -> list[Path]:
    """x: forget quality (``fq_score``), y: utility (:func:`_utility`), one point per method
    (variant), mean ± 95 % CI on both axes; the retrained model's point is the reference (a star,
    and dotted lines through it; only the line of its utility if it has no score). Nothing when no
    run has a forget-quality score."""
    if "fq_score_mean" not in summary.columns or not summary.fq_score_mean.notna().any():
        return []
    written = []
    for (dataset, model), rows in summary.groupby(["dataset", "model"], sort=False):
        forgets = list(dict.fromkeys(rows.forget[rows.fq_score_mean.notna()]))
        if not forgets:
            continue
        ordered = _order(rows, methods)
        labels = list(dict.fromkeys(map(_label, ordered.method, ordered.variant)))
        colors = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
        markers = "osD^vP*Xh<>p"
        fig, axes = plt.subplots(1, len(forgets), figsize=(5.0 * len(forgets), 4.2), squeeze=False)
        for ax, forget in zip(axes[0], forgets, strict=True):
            part = _order(rows[rows.forget == forget], methods)
            utility, ylabel = _utility(part)
            for _, r in part.iterrows():
                x, y = r.fq_score_mean, r.get(f"{utility}_mean", np.nan)
                label = _label(r.method, r.variant)
                reference = r.method == REFERENCE
                if reference and pd.notna(y):  # labelled when it stands for the point
                    line = f"{label} utility (reference)" if pd.isna(x) else "_nolegend_"
                    ax.axhline(y, color="grey", ls=":", lw=1, label=line)
                if reference and pd.notna(x):
                    ax.axvline(x, color="grey", ls=":", lw=1)
                if pd.isna(x) or pd.isna(y):
                    continue
                ax.errorbar(
                    x,
                    y,
                    xerr=_ci(r, "fq_score"),
                    yerr=_ci(r, utility),
                    fmt="*" if reference else markers[labels.index(label) % len(markers)],
                    markersize=13 if reference else 7,
                    color="black" if reference else colors[label],
                    capsize=3,
                    label=f"{label} (reference)" if reference else label,
                )
            ax.set_xlabel("forget quality (fq_score)")
            ax.set_ylabel(ylabel)
            ax.set_title(str(forget), fontsize=10)
            ax.grid(alpha=0.3)
        fig.suptitle(
            f"Forget quality vs utility: {dataset} / {model} (mean ± 95 % CI over seeds)", fontsize=11
        )
        _legend_below(fig, axes[0])
        written.append(_save(fig, out_dir / f"forget_quality_{_slug(dataset, model)}.png"))
    return written


# ---------------------------------------------------------------------- vs forget ratio
def plot_vs_ratio(summary: pd.DataFrame, out_dir: Path, methods: list[str]) -> list[Path]:
    """Each metric against the random forget ratio, one line per method (variant), mean ± 95 % CI."""
    if "forget_ratio_mean" not in summary.columns:
        return []
    written = []
    random = summary[summary.forget_ratio_mean.notna()]
    for (dataset, model), rows in random.groupby(["dataset", "model"], sort=False):
        if rows.forget_ratio_mean.nunique() < 2:
            continue
        metrics = [
            (m, t) for m, t in RATIO_METRICS if f"{m}_mean" in rows and rows[f"{m}_mean"].notna().any()
        ]
        cols = min(2, len(metrics))
        nrows = -(-len(metrics) // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 3.4 * nrows + 0.5), squeeze=False)
        ratios = sorted(rows.forget_ratio_mean.unique())
        for ax, (metric, title) in zip(axes.flat, metrics, strict=False):
            for (method, variant), line in _order(rows, methods).groupby(["method", "variant"], sort=False):
                line = line.sort_values("forget_ratio_mean")
                ax.errorbar(
                    line.forget_ratio_mean,
                    line[f"{metric}_mean"],
                    yerr=np.nan_to_num(line.get(f"{metric}_ci95", pd.Series(0.0, index=line.index))),
                    marker="o",
                    capsize=3,
                    label=_label(method, variant),
                )
            ax.set_xlabel("forget ratio (share of the training set)")
            ax.set_xticks(ratios)
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(metrics) :]:
            ax.set_axis_off()
        fig.suptitle(f"Metrics vs forget ratio: {dataset} / {model}", fontsize=11)
        _legend_below(fig, axes.flat)
        written.append(_save(fig, out_dir / f"vs_forget_ratio_{_slug(dataset, model)}.png"))
    return written


def request_series(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, deletion request) of the runs whose requests came one after another."""
    import json

    rows = []
    for _, run in frame[frame.get("seq_requests", pd.Series(np.nan, index=frame.index)).notna()].iterrows():
        record = json.loads((Path(run.run_dir) / "results.json").read_text()).get("sequential") or {}
        for r in record.get("requests", []):
            if r.get("skipped"):
                continue
            rows.append(
                {
                    "dataset": run.dataset,
                    "model": run.model,
                    "forget": run.forget,
                    "method": run.method,
                    "variant": run.variant,
                    "seed": run.seed,
                    "request": r["request"],
                    "gap": 100 * (r.get("reference") or {}).get("f1_gap", np.nan),
                    "test_f1": 100 * r["test"]["f1"],
                    "seconds": r["cost"]["cumulative_seconds"],
                }
            )
    return pd.DataFrame(rows)


def plot_requests(frame: pd.DataFrame, out_dir: Path, methods: list[str]) -> list[Path]:
    """Deletion requests one after another: the forget-F1 gap to retraining on D minus requests 1..k,
    test F1 and the cumulative unlearning seconds against the request number, one line per method
    (mean over seeds, 95 % CI bars)."""
    series = request_series(frame)
    written = []
    if series.empty:
        return written
    panels = (
        ("gap", "forget-F1 gap to retraining (points)"),
        ("test_f1", "test F1"),
        ("seconds", "cumulative seconds"),
    )
    for (dataset, model, forget), rows in series.groupby(["dataset", "model", "forget"], sort=False):
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), squeeze=False)
        for ax, (column, title) in zip(axes.flat, panels, strict=True):
            for (method, variant), line in _order(rows, methods).groupby(["method", "variant"], sort=False):
                stats = line.groupby("request")[column].agg(["mean", "std", "count"])
                half = ci95(stats["std"], stats["count"])
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=np.nan_to_num(half),
                    marker="o",
                    capsize=3,
                    label=_label(method, variant),
                )
            ax.set_xlabel("deletion request")
            ax.set_xticks(sorted(rows.request.unique()))
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Requests one after another: {dataset} / {model} / {forget}", fontsize=11)
        _legend_below(fig, axes.flat)
        written.append(_save(fig, out_dir / f"requests_{_slug(dataset, model, forget)}.png"))
    return written


def write_plots(
    frame: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, methods: list[str]
) -> list[Path]:
    """Every figure the runs allow; a figure that fails is logged and skipped, never the report."""
    out_dir, written = Path(out_dir), []
    for name, make in (
        ("embedding map", lambda: plot_embeddings(frame, out_dir, methods)),
        ("trade-off", lambda: plot_tradeoff(summary, out_dir)),
        ("forget-quality figure", lambda: plot_forget_quality(summary, out_dir, methods)),
        ("forget-ratio lines", lambda: plot_vs_ratio(summary, out_dir, methods)),
        ("request lines", lambda: plot_requests(frame, out_dir, methods)),
    ):
        try:
            written += make()
        except Exception as exc:  # a plot is a convenience: the tables are the report
            log.warning("could not draw the %s: %s: %s", name, type(exc).__name__, exc)
            plt.close("all")
    return written

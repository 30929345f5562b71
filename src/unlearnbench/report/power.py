"""The benchmark's power, from the runs of a sweep with pools (``experiment=evaluation_power``):
per dataset and forget design, can forget quality tell the original from retraining, and which
methods come closest to retraining? Renders docs/evaluation_power.md
(``python scripts/evaluation_power.py``).

A design *separates* when the forget quality of the original's pool (the design's power) is below
that of a second retrained pool (its ceiling) by a one-sided Welch t-test over seeds (p < 0.05);
with one seed there is no test, and the doc says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.report.stats import ALPHA, mean_ci, significantly_better
from unlearnbench.report.tables import load_runs

YARDSTICKS = ("original", "retrain")
CELLS = (  # (frame column, label, scale, digits)
    ("fq_score", "FQ", 1.0, 3),
    ("fq_final_score", "FQ final", 1.0, 3),
    ("fq_ulira_auc", "U-LiRA AUC", 1.0, 3),
    ("forget_f1_gap", "gap F1 forget", 100.0, 1),
    ("test_f1", "test F1", 100.0, 1),
    ("design_true_accuracy", "true acc changed", 100.0, 1),
    ("design_asr", "ASR", 100.0, 1),
    ("mia_loss_auc", "MIA AUC (population)", 1.0, 3),
)


def design_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per method of one dataset x forget design: its scores, mean ± 95 % CI over seeds."""
    order = [
        m for m in ("original", "retrain", "finetune", "gradient_ascent", "deepcut") if m in set(rows.method)
    ]
    order += sorted(set(rows.method) - set(order))
    out = []
    for method in order:
        runs = rows[rows.method == method]
        row = {"method": method, "seeds": len(runs)}
        for column, label, scale, digits in CELLS:
            if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().any():
                row[label] = mean_ci(runs[column], scale, digits)
        out.append(row)
    return pd.DataFrame(out).fillna("-")


def verdict(rows: pd.DataFrame) -> dict[str, Any]:
    """Does this design separate the original from retraining, and which methods come closest?"""

    def fq(method: str) -> np.ndarray:
        return pd.to_numeric(rows[rows.method == method].get("fq_score"), errors="coerce").dropna().to_numpy()

    original, ceiling = fq("original"), fq("retrain")
    out: dict[str, Any] = {"original": float(original.mean()) if len(original) else math.nan}
    out["ceiling"] = float(ceiling.mean()) if len(ceiling) else math.nan
    if min(len(original), len(ceiling)) >= 2:
        out["separates"] = significantly_better(ceiling, original, "max")
        out["tested"] = True
    else:
        out["separates"] = bool(len(original) and len(ceiling) and out["original"] < out["ceiling"])
        out["tested"] = False
    methods = sorted(set(rows.method) - set(YARDSTICKS))
    means = {m: float(np.mean(fq(m))) for m in methods if len(fq(m))}
    out["ranking"] = sorted(means, key=lambda m: -means[m])
    out["means"] = means
    best = out["ranking"][:2]
    out["best_significant"] = len(best) == 2 and significantly_better(fq(best[0]), fq(best[1]), "max")
    top = means[out["ranking"][0]] if out["ranking"] else math.nan
    out["tied"] = [m for m in out["ranking"] if math.isclose(means[m], top, abs_tol=5e-4)]
    return out


def _sentence(design: str, v: dict[str, Any]) -> str:
    if math.isnan(v["original"]) or math.isnan(v["ceiling"]):
        return f"- **{design}**: no pooled runs of original and retrain."
    how = "separates" if v["separates"] else "does not separate"
    test = f"one-sided Welch test over seeds, p < {ALPHA}" if v["tested"] else "one seed: means only, no test"
    ranking = ", ".join(f"{m} {v['means'][m]:.3f}" for m in v["ranking"]) or "none"
    close = ""
    if len(v.get("tied", [])) > 1:
        close = f"; closest to retraining: none, a tie of {', '.join(v['tied'])}"
    elif v["ranking"]:
        lead = v["ranking"][0]
        sig = "significantly" if v.get("best_significant") else "not significantly"
        close = f"; closest to retraining: {lead} ({sig} ahead of the next)"
    return (
        f"- **{design}** {how} the original from retraining: F(original pool) {v['original']:.3f} against "
        f"F(second retrained pool) {v['ceiling']:.3f} ({test}). Methods by F: {ranking}{close}."
    )


def pool_costs(store_root: str | Path) -> dict[str, float] | None:
    """What a retrained pool member cost, from the store: its training (the fit seconds in its
    model's meta.json, one fine-tuning) and its member evaluation (the seconds in its member file)."""
    import json

    fits, evals = [], []
    for meta in Path(store_root, "models").glob("retrain-*/meta.json"):
        members = list(meta.parent.glob("eval/member-*.json"))
        if not members:
            continue
        fits.append(float(json.loads(meta.read_text())["fit"]["seconds"]))
        evals += [json.loads(m.read_text()).get("seconds") for m in members]
    evals = [e for e in evals if e is not None]
    if not fits:
        return None
    fit = float(np.mean(fits))
    out = {"members": len(fits), "fit_seconds": fit}
    if evals:
        out["eval_seconds"] = float(np.mean(evals))
        out["member_over_fit"] = (fit + out["eval_seconds"]) / fit
    return out


def render_power(paths: Sequence[str | Path], header: str) -> tuple[str, dict[str, Any]]:
    """The document's body (after ``header``) and the facts it states (for tests and notes)."""
    frame, failures = load_runs(paths)
    if frame.empty:
        return header.rstrip() + "\n\nNo finished runs.\n", {}
    frame = frame[frame.get("fq_score").notna()] if "fq_score" in frame else frame.iloc[:0]
    facts: dict[str, Any] = {}
    parts = [header.rstrip(), ""]
    for (dataset, model), by_data in frame.groupby(["dataset", "model"], sort=True):
        parts += [f"## {dataset} x {model}", ""]
        lines = []
        for forget, rows in by_data.groupby("forget", sort=True):
            v = verdict(rows)
            facts[(dataset, model, forget)] = v
            lines.append(_sentence(forget, v))
        parts += [*lines, ""]
        for forget, rows in by_data.groupby("forget", sort=True):
            n = int(pd.to_numeric(rows.get("fq_n_models"), errors="coerce").max())
            parts += [
                f"### {forget} (N = {n} models per pool)",
                "",
                design_table(rows).to_markdown(index=False),
                "",
            ]
    if failures:
        parts += [
            "## Failed runs",
            "",
            *(f"- {f['run_dir']}: {f['type']}: {f['message']}" for f in failures),
            "",
        ]
    return "\n".join(parts), facts

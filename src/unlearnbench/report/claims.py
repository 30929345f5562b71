"""The paper's three claims, judged per dataset and forget design from the runs of a grid
(``experiment=paper``), and docs/results.md rendered from them (``python scripts/paper_results.py``).

(a) **forgets better**: of the unlearning methods (every method but the original and the retrained
    model), DeepCUT is the closest to retraining: the highest forget quality where the runs have
    pools, else the smallest forget-F1 gap to the retrained model of the same seed. It holds where
    DeepCUT is first by mean; *significantly* where a one-sided Welch t-test over seeds says it beats
    the runner-up (p < 0.05).
(b) **little loss of utility**: DeepCUT's utility (test F1; after whole-class forgetting, the F1 on
    the kept classes) is at most ``UTILITY_TOLERANCE`` below the original's, by the mean over seeds of
    the per-seed drop (the same seed is the same split, so the drop is paired).
(c) **cheaper than retraining and SISA**: DeepCUT's mean unlearning seconds are below both the
    retrained model's and SISA's; each comparison also says whether a one-sided Welch t-test over
    seeds finds it significant (p < 0.05).

A claim is judged only where its runs exist (no DeepCUT, no retrain run: no verdict, and the document
says which runs were missing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.report.stats import ALPHA, mean_ci, significantly_better
from unlearnbench.report.tables import best_cells, display_table, render, summarize

CANDIDATE = "deepcut"
YARDSTICKS = ("original", "retrain")
UTILITY_TOLERANCE = 0.02  # (b): "little loss" = at most 2 F1 points below the original, on average
CLAIMS = ("a", "b", "c")
# The columns of a design's table, as display_table labels them (those with numbers are shown).
TABLE_COLUMNS = (
    "FQ",
    "gap F1 forget",
    "test F1",
    "test F1 kept",
    "true acc changed",
    "ASR",
    "MIA AUC",
    "unlearn s",
    "× retrain",
)


def _values(rows: pd.DataFrame, method: str, column: str) -> np.ndarray:
    if column not in rows:
        return np.array([])
    part = rows[rows.method == method]
    return pd.to_numeric(part[column], errors="coerce").dropna().to_numpy(dtype=float)


def _by_seed(rows: pd.DataFrame, method: str, column: str) -> pd.Series:
    part = rows[rows.method == method]
    if column not in part:
        return pd.Series(dtype=float)
    return pd.to_numeric(part.set_index("seed")[column], errors="coerce").dropna()


def forgetting_measure(rows: pd.DataFrame) -> tuple[str, str, str]:
    """(column, better, label): forget quality where the runs have pools, else the forget-F1 gap."""
    if "fq_score" in rows and pd.to_numeric(rows.fq_score, errors="coerce").notna().any():
        return "fq_score", "max", "forget quality"
    return "forget_f1_gap", "min", "forget-F1 gap to retraining"


def utility_measure(rows: pd.DataFrame) -> tuple[str, str]:
    """(column, label): the kept classes' test F1 after whole-class forgetting, else test F1."""
    if "test_kept_f1" in rows and pd.to_numeric(rows.test_kept_f1, errors="coerce").notna().any():
        return "test_kept_f1", "test F1 of the kept classes"
    return "test_f1", "test F1"


def claim_forgets_better(rows: pd.DataFrame) -> dict[str, Any]:
    """(a) on one dataset x forget design: DeepCUT's rank among the unlearning methods."""
    column, better, label = forgetting_measure(rows)
    methods = [m for m in dict.fromkeys(rows.method) if m not in YARDSTICKS]
    means = {m: float(np.mean(v)) for m in methods if len(v := _values(rows, m, column))}
    out: dict[str, Any] = {"claim": "a", "measure": label, "column": column, "better": better}
    if CANDIDATE not in means or len(means) < 2:
        out["judged"] = False
        out["missing"] = "deepcut and at least one baseline"
        return out
    sign = -1.0 if better == "max" else 1.0
    ranking = sorted(means, key=lambda m: sign * means[m])
    rival = next(m for m in ranking if m != CANDIDATE)  # the best other method
    first = ranking[0] == CANDIDATE
    ahead, behind = (CANDIDATE, rival) if first else (rival, CANDIDATE)
    out.update(
        judged=True,
        ranking=ranking,
        means=means,
        rank=ranking.index(CANDIDATE) + 1,
        rival=rival,
        # a tie with the best other method is not "better"
        holds=first and not math.isclose(means[CANDIDATE], means[rival], abs_tol=1e-9),
        # how far DeepCUT is from the best other method, in the measure's own direction (> 0: ahead)
        margin=sign * (means[rival] - means[CANDIDATE]),
        significant=significantly_better(_values(rows, ahead, column), _values(rows, behind, column), better),
    )
    return out


def claim_utility(rows: pd.DataFrame, tolerance: float = UTILITY_TOLERANCE) -> dict[str, Any]:
    """(b) on one dataset x forget design: DeepCUT's utility drop from the original, paired by seed."""
    column, label = utility_measure(rows)
    out: dict[str, Any] = {"claim": "b", "measure": label, "column": column, "tolerance": tolerance}
    original, candidate = _by_seed(rows, "original", column), _by_seed(rows, CANDIDATE, column)
    seeds = original.index.intersection(candidate.index)
    if len(seeds) == 0:
        out["judged"] = False
        out["missing"] = "original and deepcut runs of the same seed"
        return out
    drops = (original.loc[seeds] - candidate.loc[seeds]).to_numpy(dtype=float)
    retrain = _by_seed(rows, "retrain", column)
    out.update(
        judged=True,
        drop=float(drops.mean()),
        drop_ci=mean_ci(drops, 100.0, 1),
        seeds=len(seeds),
        holds=bool(drops.mean() <= tolerance),
        candidate=float(candidate.loc[seeds].mean()),
        original=float(original.loc[seeds].mean()),
        retrain=float(retrain.mean()) if len(retrain) else math.nan,
    )
    return out


def claim_cost(rows: pd.DataFrame) -> dict[str, Any]:
    """(c) on one dataset x forget design: DeepCUT's unlearning seconds against retraining and SISA."""
    out: dict[str, Any] = {"claim": "c"}
    candidate = _values(rows, CANDIDATE, "unlearn_seconds")
    against = {m: _values(rows, m, "unlearn_seconds") for m in ("retrain", "sisa")}
    present = {m: v for m, v in against.items() if len(v)}
    if not len(candidate) or not present:
        out["judged"] = False
        out["missing"] = "deepcut and retrain or sisa runs"
        return out
    ratios = {m: float(candidate.mean() / v.mean()) for m, v in present.items()}
    beats = {m: significantly_better(candidate, v, "min") for m, v in present.items()}
    out.update(
        judged=True,
        seconds=float(candidate.mean()),
        ratios=ratios,
        significant=beats,
        compared=sorted(present),
        holds=all(r < 1.0 for r in ratios.values()) and set(present) == {"retrain", "sisa"},
    )
    return out


def judge(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The three claims on one dataset x model x forget design."""
    return {"a": claim_forgets_better(rows), "b": claim_utility(rows), "c": claim_cost(rows)}


def _scaled(column: str, value: float) -> str:
    return f"{value:.3f}" if column == "fq_score" else f"{100 * value:.1f}"


def sentence(claim: dict[str, Any]) -> str:
    """One line on one claim of one design: the verdict and by how much."""
    if not claim["judged"]:
        return f"no verdict (missing: {claim['missing']})"
    if claim["claim"] == "a":
        col, means = claim["column"], claim["means"]
        unit = "" if col == "fq_score" else " points"
        sig = "significantly" if claim["significant"] else "not significantly"
        if claim["rank"] == 1 and not claim["holds"]:
            return (
                f"**fails**: DeepCUT ties {claim['rival']} for first of {len(means)} by {claim['measure']} "
                f"({_scaled(col, means[CANDIDATE])})"
            )
        if claim["holds"]:
            return (
                f"**holds**: DeepCUT is first of {len(means)} by {claim['measure']} "
                f"({_scaled(col, means[CANDIDATE])} against {claim['rival']}'s "
                f"{_scaled(col, means[claim['rival']])}; {sig} ahead)"
            )
        leader = claim["rival"]  # the first method, when DeepCUT is not
        return (
            f"**fails**: DeepCUT is #{claim['rank']} of {len(means)} by {claim['measure']} "
            f"({_scaled(col, means[CANDIDATE])}); {leader} leads with {_scaled(col, means[leader])}, "
            f"{_scaled(col, abs(claim['margin']))}{unit} better ({sig})"
        )
    if claim["claim"] == "b":
        word = "**holds**" if claim["holds"] else "**fails**"
        return (
            f"{word}: {claim['measure']} {100 * claim['candidate']:.1f} against the original's "
            f"{100 * claim['original']:.1f}, a drop of {claim['drop_ci']} points over {claim['seeds']} "
            f"seed(s) (tolerance {100 * claim['tolerance']:.0f}; retraining: "
            f"{100 * claim['retrain']:.1f})"
        )
    parts = []
    for m in claim["compared"]:
        sig = "significantly" if claim["significant"][m] else "not significantly"
        parts.append(f"{claim['ratios'][m]:.2f} x {m}'s time ({sig} less)" if claim["ratios"][m] < 1 else
                     f"{claim['ratios'][m]:.2f} x {m}'s time (more)")  # fmt: skip
    missing = {"retrain", "sisa"} - set(claim["compared"])
    word = "**holds**" if claim["holds"] else "**fails**"
    tail = f"; no {', '.join(sorted(missing))} run to compare" if missing else ""
    return f"{word}: DeepCUT unlearns in {claim['seconds']:.1f} s, " + ", ".join(parts) + tail


def design_table(rows: pd.DataFrame) -> str:
    """The markdown table of one dataset x forget design: the report's cells (mean ± 95 % CI over
    seeds, bold only where significantly best) of the columns in :data:`TABLE_COLUMNS`."""
    summary = summarize(rows).reset_index(drop=True)
    table = display_table(summary)
    best = best_cells(table, summary, rows.reset_index(drop=True))
    keep = ["method", "seeds", *(c for c in TABLE_COLUMNS if c in table)]
    return render(table[keep], best[keep])[0]


CLAIM_NAMES = {
    "a": "(a) DeepCUT forgets better than the baselines",
    "b": "(b) with little loss of utility",
    "c": "(c) at less cost than retraining and SISA",
}


def render_results(
    frame: pd.DataFrame, failures: Sequence[dict[str, Any]], header: str
) -> tuple[str, dict[Any, Any]]:
    """docs/results.md's body after ``header``, from the runs and failures of :func:`load_runs`: per
    dataset, the verdicts on the three claims (a count over the forget designs, then one line per
    design), then each design's table; the facts stated, keyed by (dataset, model, forget)."""
    if frame.empty:
        return header.rstrip() + "\n\nNo finished runs.\n", {}
    facts: dict[Any, Any] = {}
    parts = [header.rstrip(), ""]
    for (dataset, model), by_data in frame.groupby(["dataset", "model"], sort=True):
        designs = {f: r for f, r in by_data.groupby("forget", sort=True)}
        verdicts = {f: judge(r) for f, r in designs.items()}
        facts.update({(dataset, model, f): v for f, v in verdicts.items()})
        parts += [f"## {dataset} x {model}", ""]
        for claim in CLAIMS:
            judged = [f for f, v in verdicts.items() if v[claim]["judged"]]
            held = [f for f in judged if verdicts[f][claim]["holds"]]
            parts += [f"**{CLAIM_NAMES[claim]}**: holds on {len(held)} of {len(judged)} forget designs.", ""]
            parts += [f"- {f}: {sentence(verdicts[f][claim])}." for f in designs] + [""]
        for forget, rows in designs.items():
            seeds = sorted(set(rows.seed))
            measure = forgetting_measure(rows)[2]
            parts += [
                f"### {dataset}, {forget} (seeds {', '.join(map(str, seeds))}; forgetting: {measure})",
                "",
                design_table(rows),
                "",
            ]
    parts += [
        f"± is the half-width of the 95 % t-interval over seeds (the mean alone with one seed); bold: "
        f"the best unlearning method of a column where a one-sided Welch t-test over seeds says it beats "
        f"the runner-up (p < {ALPHA:g}).",
        "",
    ]
    if failures:
        listed = [f"- {f['run_dir']}: {f['type']}: {f['message']}" for f in failures]
        parts += ["## Failed runs", "", *listed, ""]
    return "\n".join(parts), facts

"""The report's tables: run dirs (results.json, error.json) gathered into one frame, mean, std and
95 % confidence interval over seeds, shown as a paper table (markdown, LaTeX) whose columns the
evaluation's sections declare.

Each results.json section is read through its registered flattener (:mod:`unlearnbench.evaluation.registry`)
into flat columns; :func:`write_report` writes results.csv (every number: per column ``_mean``,
``_std``, ``_ci95``, ``_n``), runs.csv (one row per run: the per-seed values), results.md,
results.tex and the figures of :mod:`.plots`. A cell shows ``mean ± ci95`` (the half-width of the
95 % t-interval, :func:`.stats.ci95`; the mean alone with one seed); bold marks the best unlearning
method of a column only where a one-sided Welch t-test over seeds says it beats the runner-up
(:func:`best_cells`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unlearnbench.evaluation.registry import Column, flatten, report_columns
from unlearnbench.io import atomic_write_text
from unlearnbench.report.plots import write_plots
from unlearnbench.report.stats import ALPHA, ci95, significantly_better
from unlearnbench.results import ERROR_FILE, RESULTS_FILE

log = logging.getLogger(__name__)
GROUP = ["dataset", "model", "forget", "method", "variant"]
METHOD_ORDER = ["original", "retrain", "finetune", "gradient_ascent", "deepcut"]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    found: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"no such run or sweep dir: {root}")
        for name in (RESULTS_FILE, ERROR_FILE):
            found.update(p.parent for p in root.rglob(name))
        found.update(p.parent.parent for p in root.rglob(".hydra/config.yaml"))  # every job's dir
    return sorted(found)


def _row(results: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    run = results["run"]
    row: dict[str, Any] = {
        "dataset": run["dataset"],
        # LoRA runs are rows of their own: the model "minilm+lora" beside full fine-tuning's "minilm"
        "model": run["model"] + ("" if run.get("adapter", "none") == "none" else f"+{run['adapter']}"),
        "forget": run["forget"].get("tag") or run["forget"].get("strategy"),
        "method": run["method"],
        "seed": run["seed"],
        "run_dir": str(run_dir),
    }
    row["unlearn_seconds"] = results["timing"]["unlearn_seconds"]
    row["total_seconds"] = results["timing"]["total_seconds"]
    forget = run["forget"]
    row["forget_ratio"] = _num(forget.get("ratio")) if forget.get("strategy") == "random" else math.nan
    if not isinstance(results.get("metrics"), dict):
        raise KeyError("metrics")  # every run has scores: without them the file is partial
    for name, record in results.items():
        row.update(flatten(name, record))  # every registered section, as its flat columns
    row["params"] = _flatten(results.get("method_params") or {})
    return row


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value)
    return out


def _variants(frame: pd.DataFrame) -> list[str]:
    """Per run, the method parameters that differ between runs of the same method ("" if none),
    so that a hyper-parameter sweep is not averaged into one row."""
    labels = [""] * len(frame)
    for _, rows in frame.groupby("method"):
        params = rows.params.tolist()
        keys = sorted({k for p in params for k in p})
        varying = [k for k in keys if len({p.get(k) for p in params}) > 1]
        for pos, p in zip(rows.index, params, strict=True):
            labels[frame.index.get_loc(pos)] = ",".join(f"{k}={p.get(k)}" for k in varying)
    return labels


def load_runs(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One row per finished run, and the failed runs (their error.json and dir, or "Incomplete")."""
    rows, failures = [], []
    for run_dir in find_run_dirs(paths):
        results_file, error_file = run_dir / RESULTS_FILE, run_dir / ERROR_FILE
        if results_file.exists():
            try:
                rows.append(_row(json.loads(results_file.read_text()), run_dir))
                continue
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # truncated or partial
                message = f"results.json is not complete ({type(exc).__name__}: {exc})"
                failures.append({"run_dir": str(run_dir), "type": "BadResults", "message": message})
                continue
        if not error_file.exists():  # the job started and never finished: killed, out of memory, or running
            failures.append(
                {
                    "run_dir": str(run_dir),
                    "type": "Incomplete",
                    "message": "no results.json or error.json "
                    "(killed, out of memory, timed out, or still running); rerun the sweep to resume it",
                }
            )
            continue
        try:
            error = json.loads(error_file.read_text())
            failures.append(
                {"run_dir": str(run_dir), "type": error.get("type"), "message": error.get("message")}
            )
        except (ValueError, AttributeError) as exc:
            message = f"error.json is not complete ({type(exc).__name__}: {exc})"
            failures.append({"run_dir": str(run_dir), "type": "BadError", "message": message})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["variant"] = _variants(frame)
        frame = add_retrain_comparisons(frame.drop(columns="params"))
    return frame, failures


def add_retrain_comparisons(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run, against the retrained model of the same dataset, model, forget set and seed:
    the forget-F1 gap |F1_f(run) - F1_f(retrain)| and the unlearning-time ratio."""
    key = ["dataset", "model", "forget", "seed"]
    retrain = frame[frame.method == "retrain"].drop_duplicates(key).set_index(key)
    matched = frame.join(retrain[["forget_f1", "unlearn_seconds"]].add_suffix("_retrain"), on=key)
    frame = frame.copy()
    frame["forget_f1_gap"] = (matched.forget_f1 - matched.forget_f1_retrain).abs()
    frame["ratio_to_retrain"] = matched.unlearn_seconds / matched.unlearn_seconds_retrain
    # Without a retrain run among these, the run's own comparison with the retrained reference.
    if "ref_forget_f1_gap" in frame:
        frame["forget_f1_gap"] = frame.forget_f1_gap.fillna(frame.ref_forget_f1_gap)
    if "cost_seconds_ratio" in frame:
        frame["ratio_to_retrain"] = frame.ratio_to_retrain.fillna(frame.cost_seconds_ratio)
    return frame


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Over seeds, per dataset x model x forget x method (x variant: the method parameters that a
    sweep varied), of every numeric column ``<col>``: ``<col>_mean``, ``<col>_std`` (ddof=1),
    ``<col>_ci95`` (the half-width of the two-sided 95 % t-interval, NaN under 2 values) and
    ``<col>_n`` (the runs with a value); ``seeds``: the runs of the row."""
    numeric = [c for c in frame.columns if c not in [*GROUP, "seed", "run_dir"]]
    grouped = frame.groupby(GROUP, sort=False)
    stats = grouped[numeric].agg(["mean", "std", "count"])
    columns: dict[str, pd.Series] = {}
    for col in numeric:
        std, n = stats[(col, "std")], stats[(col, "count")]
        columns[f"{col}_mean"] = stats[(col, "mean")]
        columns[f"{col}_std"] = std
        columns[f"{col}_ci95"] = pd.Series(ci95(std, n), index=stats.index)
        columns[f"{col}_n"] = n
    summary = pd.DataFrame(columns, index=stats.index)
    summary.insert(0, "seeds", grouped.size())
    summary = summary.reset_index()
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    summary["_order"] = summary.method.map(lambda m: rank.get(m, len(rank)))
    return summary.sort_values(["dataset", "model", "forget", "_order", "method", "variant"]).drop(
        columns="_order"
    )


def _fmt(mean: float, half: float | None, scale: float = 1.0, digits: int = 1) -> str:
    """``mean ± half`` (``half``: the CI's half-width), or the mean alone where there is none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    if half is not None and not (isinstance(half, float) and math.isnan(half)):
        text += f" ± {half * scale:.{digits}f}"
    return text


def _cells(summary: pd.DataFrame, column: Column) -> list[str]:
    means = summary[f"{column.source}_mean"]
    spread = f"{column.source}_ci95"
    halves = summary[spread] if column.spread and spread in summary else [None] * len(summary)
    return [_fmt(m, h, column.scale, column.digits) for m, h in zip(means, halves, strict=True)]


def shown_columns(summary: pd.DataFrame) -> list[Column]:
    """The declared columns this summary has numbers for (a column of a switched-off section, or of
    whole-class forgetting on random forget sets, is left out)."""
    return [
        c
        for c in report_columns()
        if f"{c.source}_mean" in summary and summary[f"{c.source}_mean"].notna().any()
    ]


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper table: the columns the evaluation's sections declare (scores in percent, the
    forget-F1 gap to retraining in points, MIA AUC, JS divergence, seconds, the time ratio to
    retraining), mean ± the half-width of the 95 % t-interval over seeds (the mean alone with one
    seed)."""
    out = pd.DataFrame(
        {
            "dataset": summary.dataset,
            "forget": summary.forget,
            "method": [
                m + (f" [{v}]" if v else "") for m, v in zip(summary.method, summary.variant, strict=True)
            ],
            "seeds": summary.seeds,
        }
    )
    for column in shown_columns(summary):
        out[column.label] = _cells(summary, column)
    return out


REFERENCE_METHODS = ("original", "retrain")  # the yardsticks, not candidates for "best"

LEGEND = (
    "± is the half-width of the 95 % t-interval over seeds (the mean alone with one seed); "
    "bold: the best unlearning method (by mean; original and retrain are not ranked) of its "
    "dataset x model x forget group in that column, only where a one-sided Welch t-test over seeds "
    f"says it is better than the runner-up (p < {ALPHA:g}); no bold on a tie or with fewer than "
    "2 seeds on either side."
)


def best_cells(table: pd.DataFrame, summary: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """True where a cell's method is significantly the best of its column among the unlearning
    methods of its dataset x model x forget group (the original and retrained models are not ranked).

    Per column with a ``better`` direction: the best row by mean and the runner-up (every row whose
    mean ties the runner-up's); the best is marked only if a one-sided Welch t-test
    (:func:`.stats.significantly_better`) over the per-seed values of ``frame`` (one row per run)
    gives p < 0.05 against each of them. A tie for the best, or fewer than 2 seeds on either side:
    nothing marked. ``summary`` is :func:`summarize` of ``frame``, ``table`` its
    :func:`display_table` (same index)."""
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    ranked = [
        c
        for c in report_columns()
        if c.better and c.label in table and f"{c.source}_mean" in summary and c.source in frame
    ]
    if not ranked or frame.empty:
        return best
    runs = frame.groupby(GROUP, sort=False).indices  # (dataset, ..., variant) -> positions in frame
    keys = list(zip(*(summary[g] for g in GROUP), strict=True))
    candidates = ~summary.method.isin(REFERENCE_METHODS).to_numpy()
    per_seed = {c.source: _floats(frame[c.source]) for c in ranked}
    means = {c.source: _floats(summary[f"{c.source}_mean"]) for c in ranked}
    none = np.array([], dtype=int)
    for _, rows in summary.groupby(["dataset", "model", "forget"], sort=False):
        positions = [summary.index.get_loc(i) for i in rows.index]
        positions = [p for p in positions if candidates[p]]
        if len(positions) < 2:
            continue
        for column in ranked:
            mean, values = means[column.source], per_seed[column.source]
            shown = [p for p in positions if not math.isnan(mean[p])]
            if len(shown) < 2:
                continue
            sign = -1.0 if column.better == "max" else 1.0
            shown.sort(key=lambda p, m=mean, s=sign: s * m[p])  # the best first
            top, second = shown[0], mean[shown[1]]
            rivals = [p for p in shown[1:] if math.isclose(mean[p], second, rel_tol=1e-9, abs_tol=1e-12)]
            ahead = values[runs.get(keys[top], none)]
            if all(
                significantly_better(ahead, values[runs.get(keys[p], none)], column.better) for p in rivals
            ):
                best.iloc[top, table.columns.get_loc(column.label)] = True
    return best


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text.replace("±", r"$\pm$").replace("×", r"$\times$")


def render(table: pd.DataFrame, best: pd.DataFrame) -> tuple[str, str]:
    """The table as markdown and as LaTeX, the best cells in bold."""
    md = table.astype(str).mask(best, "**" + table.astype(str) + "**")
    tex = table.astype(str).map(_latex_escape)
    tex = tex.mask(best, r"\textbf{" + tex + "}")
    tex.columns = [_latex_escape(c) for c in tex.columns]
    return md.to_markdown(index=False), tex.to_latex(index=False, escape=False)


def _report(
    paths: Sequence[str | Path], out_dir: str | Path, plots: bool
) -> tuple[pd.DataFrame, str, list[dict[str, Any]]]:
    """:func:`write_report`, also returning the markdown table (bold cells marked)."""
    frame, failures = load_runs(paths)
    out_dir = Path(out_dir)
    if frame.empty:
        log.warning("no finished runs under %s", ", ".join(map(str, paths)))
        return pd.DataFrame(), "", failures
    summary = summarize(frame).reset_index(drop=True)
    table = display_table(summary)
    atomic_write_text(out_dir / "results.csv", summary.to_csv(index=False))
    atomic_write_text(out_dir / "runs.csv", frame.to_csv(index=False))
    markdown_table, latex = render(table, best_cells(table, summary, frame))
    markdown = markdown_table + "\n\n" + LEGEND
    if failures:
        markdown += "\n\nFailed runs:\n" + "\n".join(
            f"- {f['run_dir']}: {f['type']}: {f['message']}" for f in failures
        )
    atomic_write_text(out_dir / "results.md", markdown + "\n")
    atomic_write_text(out_dir / "results.tex", latex + f"% {LEGEND}\n")
    if plots:
        for path in write_plots(frame, summary, out_dir, METHOD_ORDER):
            log.info("figure: %s", path)
    return table, markdown_table, failures


def write_report(
    paths: Sequence[str | Path], out_dir: str | Path, plots: bool = True
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """results.csv, runs.csv, results.md (the table, bold cells marked, then :data:`LEGEND`),
    results.tex and the figures into ``out_dir``; returns the display table and the failed runs."""
    table, _, failures = _report(paths, out_dir, plots)
    return table, failures


def write_markdown_doc(paths: Sequence[str | Path], doc: str | Path, header: str, notes: str = "") -> str:
    """A document (e.g. under docs/) holding the report table of ``paths`` (bold cells marked, then
    the one-line :data:`LEGEND`) between a header and notes."""
    table, markdown_table, failures = _report(paths, Path(paths[0]), plots=False)
    body = markdown_table + "\n\n" + LEGEND if not table.empty else table.to_markdown(index=False)
    text = header.rstrip() + "\n\n" + body + "\n" + notes
    text += "".join(f"\nFailed: {f['run_dir']}: {f['type']}: {f['message']}\n" for f in failures)
    Path(doc).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text)
    return text

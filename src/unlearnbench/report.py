"""The report: gathers run dirs (results.json, error.json) into one table, mean +- std over seeds.

    unlearnbench-report outputs/main [more dirs...] [--out DIR]

Writes results.csv (every number), results.md and results.tex (paste-ready), the figures of
:mod:`unlearnbench.plots` (PNG), and prints the markdown table. Every ``-m`` sweep also calls it when
it ends (:class:`SweepReportCallback`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from unlearnbench.io import atomic_write_text
from unlearnbench.plots import write_plots
from unlearnbench.tracking import log_report_table

log = logging.getLogger(__name__)
GROUP = ["dataset", "model", "forget", "method", "variant"]
SPLITS = ("forget", "retain", "test")
SCORES = ("accuracy", "f1")  # f1: macro-F1 (classification), entity micro-F1 (NER)
METHOD_ORDER = ["original", "retrain", "finetune", "gradient_ascent", "deepcut"]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    found: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"no such run or sweep dir: {root}")
        for name in ("results.json", "error.json"):
            found.update(p.parent for p in root.rglob(name))
        found.update(p.parent.parent for p in root.rglob(".hydra/config.yaml"))  # every job's dir
    return sorted(found)


def _row(results: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    run = results["run"]
    row: dict[str, Any] = {
        "dataset": run["dataset"],
        "model": run["model"],
        "forget": run["forget"].get("tag") or run["forget"].get("strategy"),
        "method": run["method"],
        "seed": run["seed"],
        "run_dir": str(run_dir),
    }
    for split, metrics in results["metrics"].items():
        for name, value in metrics.items():
            if name != "n":
                row[f"{split}_{name}"] = value
        if "f1" not in metrics and "f1_macro" in metrics:  # results written before the task-level "f1"
            row[f"{split}_f1"] = metrics["f1_macro"]
    row["unlearn_seconds"] = results["timing"]["unlearn_seconds"]
    row["total_seconds"] = results["timing"]["total_seconds"]
    row.update(_evaluation_columns(results))
    row["params"] = _flatten(results.get("method_params") or {})
    return row


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _evaluation_columns(results: dict[str, Any]) -> dict[str, float]:
    """The numbers of the schema-2 sections (absent from older or switched-off results):
    ref_<split>_{f1_gap,agreement,js}, mia_<attack>_auc(_gap), latent_<split>_<metric>_{before,after},
    peak_rss_mb, cost_<what>_ratio (to retrain), and forget_ratio (random forget sets only)."""
    row: dict[str, float] = {}
    forget = results["run"]["forget"]
    row["forget_ratio"] = _num(forget.get("ratio")) if forget.get("strategy") == "random" else math.nan
    reference = results.get("reference") or {}
    for split in ("forget", "test"):
        for key, name in (("f1_gap", "f1_gap"), ("agreement", "agreement"), ("js_divergence", "js")):
            if split in reference:
                row[f"ref_{split}_{name}"] = _num(reference[split].get(key))
    for attack, values in ((results.get("mia") or {}).get("attacks") or {}).items():
        row[f"mia_{attack}_auc"] = _num(values.get("auc"))
        row[f"mia_{attack}_auc_gap"] = _num(values.get("auc_gap"))
    latent = results.get("latent") or {}
    for when in ("before", "after"):
        for split, values in (latent.get(when) or {}).items():
            for key in ("nearest_own", "margin", "silhouette"):
                row[f"latent_{split}_{key}_{when}"] = _num(values.get(key))
    cost = results.get("cost") or {}
    if cost:
        row["peak_rss_mb"] = _num(cost.get("peak_rss_mb"))
        for key, value in (cost.get("ratio_to_retrain") or {}).items():
            row[f"cost_{key}_ratio"] = _num(value)
    return row


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
        results_file, error_file = run_dir / "results.json", run_dir / "error.json"
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
    """Mean and std (over seeds) of every numeric column, per dataset x model x forget x method
    (x variant: the method parameters that a sweep varied)."""
    numeric = [c for c in frame.columns if c not in [*GROUP, "seed", "run_dir"]]
    grouped = frame.groupby(GROUP, sort=False)
    summary = grouped[numeric].agg(["mean", "std"])
    summary.columns = [f"{col}_{stat}" for col, stat in summary.columns]
    summary.insert(0, "seeds", grouped.size())
    summary = summary.reset_index()
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    summary["_order"] = summary.method.map(lambda m: rank.get(m, len(rank)))
    return summary.sort_values(["dataset", "model", "forget", "_order", "method", "variant"]).drop(
        columns="_order"
    )


def _fmt(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std * scale:.{digits}f}"
    return text


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper table: scores in percent, the forget-F1 gap to retraining (points; lower is
    closer to exact unlearning), seconds, and the time ratio to retraining."""
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
    for split in SPLITS:
        for score, label in (("accuracy", "acc"), ("f1", "F1")):
            col = f"{split}_{score}"
            if f"{col}_mean" in summary:
                out[f"{split} {label}"] = [
                    _fmt(m, s, 100.0)
                    for m, s in zip(summary[f"{col}_mean"], summary[f"{col}_std"], strict=True)
                ]
    if "test_kept_f1_mean" in summary and summary.test_kept_f1_mean.notna().any():
        # whole-class forgetting: test F1 on the kept classes (the full test split loses the forgotten one)
        out["test F1 kept"] = [
            _fmt(m, s, 100.0)
            for m, s in zip(summary.test_kept_f1_mean, summary.test_kept_f1_std, strict=True)
        ]
    out["gap F1 forget"] = [
        _fmt(m, s, 100.0) for m, s in zip(summary.forget_f1_gap_mean, summary.forget_f1_gap_std, strict=True)
    ]
    for col, label in (("mia_loss_auc", "MIA AUC"), ("ref_forget_js", "JS forget")):
        if f"{col}_mean" in summary and summary[f"{col}_mean"].notna().any():
            out[label] = [
                _fmt(m, s, digits=3)
                for m, s in zip(summary[f"{col}_mean"], summary[f"{col}_std"], strict=True)
            ]
    out["unlearn s"] = [
        _fmt(m, s) for m, s in zip(summary.unlearn_seconds_mean, summary.unlearn_seconds_std, strict=True)
    ]
    out["× retrain"] = [_fmt(m, None, digits=3) for m in summary.ratio_to_retrain_mean]
    return out


# Columns with a better direction, and the summary column that decides it. Forget-set scores and MIA
# have none of their own: close to the retrained model is what counts, which the gap and JS measure.
BEST = {
    "retain acc": ("retain_accuracy_mean", max),
    "retain F1": ("retain_f1_mean", max),
    "test acc": ("test_accuracy_mean", max),
    "test F1": ("test_f1_mean", max),
    "test F1 kept": ("test_kept_f1_mean", max),
    "gap F1 forget": ("forget_f1_gap_mean", min),
    "JS forget": ("ref_forget_js_mean", min),
    "unlearn s": ("unlearn_seconds_mean", min),
    "× retrain": ("ratio_to_retrain_mean", min),
}
REFERENCE_METHODS = ("original", "retrain")  # the yardsticks, not candidates for "best"


def best_cells(table: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """True where a cell holds the best mean of its column among the unlearning methods of its
    dataset x forget group (ties all marked); the original and retrained models are not ranked."""
    best = pd.DataFrame(False, index=table.index, columns=table.columns)
    candidates = ~summary.method.isin(REFERENCE_METHODS).to_numpy()
    for _, rows in summary.groupby(["dataset", "model", "forget"], sort=False):
        positions = [summary.index.get_loc(i) for i in rows.index]
        positions = [p for p in positions if candidates[p]]
        for column, (source, pick) in BEST.items():
            if column not in table or source not in summary:
                continue
            values = summary[source].iloc[positions].dropna()
            if len(values) < 2:
                continue
            target = pick(values.round(4))
            for p, v in zip(positions, summary[source].iloc[positions], strict=True):
                if pd.notna(v) and round(v, 4) == target:
                    best.iloc[p, table.columns.get_loc(column)] = True
    return best


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


def write_report(
    paths: Sequence[str | Path], out_dir: str | Path, plots: bool = True
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    frame, failures = load_runs(paths)
    out_dir = Path(out_dir)
    if frame.empty:
        log.warning("no finished runs under %s", ", ".join(map(str, paths)))
        return pd.DataFrame(), failures
    summary = summarize(frame).reset_index(drop=True)
    table = display_table(summary)
    atomic_write_text(out_dir / "results.csv", summary.to_csv(index=False))
    atomic_write_text(out_dir / "runs.csv", frame.to_csv(index=False))
    markdown, latex = render(table, best_cells(table, summary))
    markdown += "\n\nBold: the best unlearning method of its dataset x forget group in that column."
    if failures:
        markdown += "\n\nFailed runs:\n" + "\n".join(
            f"- {f['run_dir']}: {f['type']}: {f['message']}" for f in failures
        )
    atomic_write_text(out_dir / "results.md", markdown + "\n")
    atomic_write_text(out_dir / "results.tex", latex)
    if plots:
        for path in write_plots(frame, summary, out_dir, METHOD_ORDER):
            log.info("figure: %s", path)
    return table, failures


def write_markdown_doc(paths: Sequence[str | Path], doc: str | Path, header: str, notes: str = "") -> str:
    """A document (e.g. under docs/) holding the report table of ``paths`` between a header and notes."""
    table, failures = write_report(paths, Path(paths[0]), plots=False)
    text = header.rstrip() + "\n\n" + table.to_markdown(index=False) + "\n" + notes
    text += "".join(f"\nFailed: {f['run_dir']}: {f['type']}: {f['message']}\n" for f in failures)
    Path(doc).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text)
    return text


class SweepReportCallback(Callback):
    """Hydra callback: at the end of every ``-m`` sweep, write and print its report."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        table, failures = write_report([sweep_dir], sweep_dir)
        if not table.empty:
            print(f"\n{table.to_markdown(index=False)}\n\nreport: {sweep_dir}/results.md (.csv, .tex)")
        for f in failures:
            print(f"FAILED {f['run_dir']}: {f['type']}: {f['message']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlearnbench-report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="run or sweep dirs (searched recursively)")
    parser.add_argument("--out", default=None, help="where to write results.* (default: the first dir)")
    parser.add_argument("--no-plots", action="store_true", help="tables only, no PNG figures")
    parser.add_argument(
        "--wandb", metavar="PROJECT", default=None, help="also log the table as a wandb Table to PROJECT"
    )
    parser.add_argument("--wandb-entity", default=None, help="the wandb entity (team) of --wandb")
    args = parser.parse_args(argv)
    try:
        table, failures = write_report(args.dirs, args.out or args.dirs[0], plots=not args.no_plots)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if table.empty:
        print("no finished runs found")
        return 1
    print(table.to_markdown(index=False))
    if args.wandb:
        out = Path(args.out or args.dirs[0])
        where = log_report_table(table, args.wandb, f"report-{out.name}", out, args.wandb_entity)
        print(f"wandb Table 'results' logged: {where}")
    for f in failures:
        print(f"FAILED {f['run_dir']}: {f['type']}: {f['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

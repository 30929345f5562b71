"""The fair comparison: tunes every method with one budget, runs (or resumes) the grid on the tuned
parameters and writes docs/results.md with a verdict on each of the paper's claims.

    python scripts/paper_results.py [--render-only] [--trials N] [--tune-data D] [--set NAME] [overrides ...]

1. Tuning: ``unlearnbench -m hparams_search=<method> experiment=paper data=<D> forget=random_5`` for
   every method with a search space (conf/hparams_search/), ``--trials`` trials each, the oracle
   objective, tuning seed 100; a finished search (its optimization_results.yaml) is not rerun. The
   best parameters become the tuned set ``--set`` (``unlearnbench-save-tuned``).
2. The grid: ``unlearnbench -m experiment=paper tuned=<set>`` (conf/experiment/paper.yaml: every
   embedded dataset x forget design x method x seeds 0, 1, 2); rerunning skips the finished jobs.
3. docs/results.md and docs/figures/results/ from the grid's runs (unlearnbench.report.claims).

Overrides after the options go to the grid, and those that are not one of its sweep axes (data,
forget, method, seed) to the searches too: ``data.max_samples=400 data.max_length=48`` scales both
down, ``data=bbc seed=0,1`` narrows the grid.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from unlearnbench.cli.callbacks import OPTUNA_RESULTS
from unlearnbench.cli.tuned import read_search, save_tuned
from unlearnbench.config import CONF_DIR
from unlearnbench.io import atomic_write_text
from unlearnbench.report import load_runs, summarize
from unlearnbench.report.claims import UTILITY_TOLERANCE, render_results
from unlearnbench.report.plots import plot_forget_quality, plot_tradeoff
from unlearnbench.report.tables import METHOD_ORDER

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "outputs" / "sweeps" / "paper"
TUNING = ROOT / "outputs" / "tuning" / "paper"
FIGURES = ROOT / "docs" / "figures" / "results"
GRID_AXES = {"data", "forget", "method", "seed"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def searched_methods() -> list[str]:
    """Every method with a search space: conf/hparams_search/<method>.yaml."""
    return sorted(p.stem for p in (Path(CONF_DIR) / "hparams_search").glob("*.yaml"))


def shared_overrides(overrides: list[str]) -> list[str]:
    """The overrides that are not one of the grid's sweep axes: they apply to the searches too."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in GRID_AXES]


def run(cmd: list[str]) -> None:
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=False, env=ENV)


def tune(args: argparse.Namespace, overrides: list[str]) -> list[Path]:
    """Each method's search (skipped where finished), saved into the tuned set; the search dirs."""
    done = []
    for method in searched_methods():
        sweep_dir = Path(args.tuning_dir) / method
        if not (sweep_dir / OPTUNA_RESULTS).exists():
            run(
                [
                    sys.executable, "-m", "unlearnbench.cli", "-m", f"hparams_search={method}",
                    "experiment=paper", f"data={args.tune_data}", "forget=random_5",
                    f"hydra.sweeper.n_trials={args.trials}",
                    f"hydra.sweeper.sampler.n_startup_trials={max(1, min(10, args.trials // 2))}",
                    f"hydra.sweep.dir={sweep_dir}", *shared_overrides(overrides),
                ]
            )  # fmt: skip
        if (sweep_dir / OPTUNA_RESULTS).exists():
            for path in save_tuned(sweep_dir, args.set_name):
                print(f"wrote {path}")
            done.append(sweep_dir)
        else:
            print(f"warning: the search of {method} did not finish; it runs on its defaults", flush=True)
    return done


def tuned_section(set_name: str, tuning_dir: Path) -> str:
    """The tuned parameters and the budget each search had."""
    params_dir = Path(CONF_DIR) / "tuned_params" / set_name
    files = sorted(params_dir.glob("*.yaml"))
    lines = ["## The tuned parameters", ""]
    if not files:
        return "\n".join([*lines, f"No tuned set `{set_name}`: every method ran on its defaults.", ""])
    lines += [
        f"`tuned={set_name}` (conf/tuned_params/{set_name}/); each search: Optuna TPE through Hydra's "
        "sweeper, the same number of trials (half of them, at most 10, random start-up trials), the "
        "objective below, tuning seed 100 (never a reported seed); methods without a file (original, "
        "retrain, sisa) have no hyper-parameter searched.",
        "",
        "| method | trials | objective | best value | parameters |",
        "|---|---|---|---|---|",
    ]
    for path in files:
        values = pd.json_normalize(OmegaConf.to_container(OmegaConf.load(path))).iloc[0]
        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        sweep_dir = tuning_dir / path.stem
        if (sweep_dir / OPTUNA_RESULTS).exists():
            search = read_search(sweep_dir)
            budget = f"{search.n_trials} | {search.objective} | {search.best_value:.4f}"
            lines.append(f"| {path.stem} | {budget} | {shown} |")
        else:
            lines.append(f"| {path.stem} | - | - | - | {shown} |")
    return "\n".join([*lines, ""])


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def figures(frame: pd.DataFrame) -> list[Path]:
    """The trade-off and forget-quality plots of the grid's runs, into docs/figures/results/."""
    if frame.empty:
        return []
    summary = summarize(frame).reset_index(drop=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    return plot_tradeoff(summary, FIGURES) + plot_forget_quality(summary, FIGURES, METHOD_ORDER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="write the doc from the runs so far")
    parser.add_argument("--trials", type=int, default=30, help="the trial budget of every search")
    parser.add_argument("--tune-data", default="bbc", help="the dataset the searches tune on")
    parser.add_argument("--set", dest="set_name", default="paper", help="the tuned set (tuned=NAME)")
    parser.add_argument("--sweep-dir", default=str(GRID))
    parser.add_argument("--tuning-dir", default=str(TUNING))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args, overrides = parser.parse_known_args()
    started = time.time()
    if not args.render_only:
        tune(args, overrides)
        selector = Path(CONF_DIR) / "tuned" / f"{args.set_name}.yaml"
        tuned = args.set_name if selector.exists() else "none"
        run(
            [
                sys.executable, "-m", "unlearnbench.cli", "-m", "experiment=paper", f"tuned={tuned}",
                f"hydra.sweep.dir={args.sweep_dir}", *overrides,
            ]
        )  # fmt: skip
    sweep_dir = Path(args.sweep_dir)
    frame, failures = load_runs([sweep_dir]) if sweep_dir.exists() else (pd.DataFrame(), [])
    runs = len(frame)
    job_seconds = float(frame.total_seconds.sum()) if runs else 0.0
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    header = (
        "# Results: every method tuned by the same budget, and the paper's claims as measured\n\n"
        f"_Written by `python scripts/paper_results.py {shlex.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')} from {runs} runs in `{sweep_dir.name}`, {job_seconds:.0f} s "
        f"of job time in all ({time.time() - started:.0f} s this call), on {machine}._\n\n"
        "The claims, judged per dataset and forget design (src/unlearnbench/report/claims.py): "
        "(a) DeepCUT is the closest of the unlearning methods to retraining (forget quality where the "
        "runs have pools, else the smallest forget-F1 gap to the retrained model); (b) its utility (test "
        "F1; the kept classes' F1 after whole-class forgetting) is on average at most "
        f"{100 * UTILITY_TOLERANCE:.0f} F1 points below the original's, paired by seed; (c) it unlearns "
        "in less time than retraining and than SISA. 'Significantly': a one-sided Welch t-test over "
        "seeds, p < 0.05."
    )
    text = render_results(frame, failures, header)[0]
    text += "\n" + tuned_section(args.set_name, Path(args.tuning_dir))
    written = figures(frame)
    if written:
        text += "\n## Figures\n\n" + "".join(
            f"![{p.stem}]({os.path.relpath(p, Path(args.out).parent)})\n\n" for p in written
        )
    atomic_write_text(args.out, text.rstrip() + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

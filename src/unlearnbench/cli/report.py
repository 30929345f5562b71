"""The ``unlearnbench-report`` command: run or sweep dirs -> one table, mean ± 95 % CI over seeds.

    unlearnbench-report outputs/main [more dirs...] [--out DIR] [--no-plots] [--wandb PROJECT]
    unlearnbench-report outputs/main --doc docs/main.md   # the table as a document, with its provenance

Writes results.csv (every number), runs.csv, results.md and results.tex (paste-ready) and the
figures (PNG) into the first dir (or --out), and prints the markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from unlearnbench.report import load_runs, write_markdown_doc, write_report
from unlearnbench.runtime.tracking import log_report_table


def provenance(dirs: Sequence[str], argv: Sequence[str]) -> str:
    """Which command wrote a document, when, from how many runs, and on what machine."""
    frame, _ = load_runs(dirs)
    seeds = sorted(frame.seed.unique().tolist()) if not frame.empty else []
    job_seconds = float(frame.total_seconds.sum()) if not frame.empty else 0.0
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    return (
        f"_Written by `unlearnbench-report {shlex.join(argv)}` on {time.strftime('%Y-%m-%d %H:%M')}, "
        f"from {len(frame)} runs (seeds {seeds}) that took {job_seconds:.0f} s of job time in all "
        f"(their `timing.total_seconds`), on {machine}._"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlearnbench-report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="run or sweep dirs (searched recursively)")
    parser.add_argument("--out", default=None, help="where to write results.* (default: the first dir)")
    parser.add_argument("--no-plots", action="store_true", help="tables only, no PNG figures")
    parser.add_argument(
        "--wandb", metavar="PROJECT", default=None, help="also log the table as a wandb Table to PROJECT"
    )
    parser.add_argument("--wandb-entity", default=None, help="the wandb entity (team) of --wandb")
    parser.add_argument("--doc", metavar="PATH", default=None, help="also write the table as a document")
    parser.add_argument("--title", default="Results", help="the document's title (with --doc)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        table, failures = write_report(args.dirs, args.out or args.dirs[0], plots=not args.no_plots)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if table.empty:
        print("no finished runs found")
        return 1
    print(table.to_markdown(index=False))
    if args.doc:
        header = f"# {args.title}\n\n{provenance(args.dirs, argv)}"
        notes = (
            "\nScores in percent; `gap F1 forget` = |forget F1 - retrain's|; `MIA AUC`: the loss "
            "attack, forget vs test; `JS forget`: Jensen-Shannon divergence to the retrained model on "
            "D_f (docs/results-schema.md).\n"
        )
        write_markdown_doc(args.dirs, args.doc, header, notes)
        print(f"document: {args.doc}")
    if args.wandb:
        out = Path(args.out or args.dirs[0])
        where = log_report_table(table, args.wandb, f"report-{out.name}", out, args.wandb_entity)
        print(f"wandb Table 'results' logged: {where}")
    for f in failures:
        print(f"FAILED {f['run_dir']}: {f['type']}: {f['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

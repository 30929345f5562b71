"""The ``unlearnbench-report`` command: run or sweep dirs -> one table, mean ± std over seeds.

    unlearnbench-report outputs/main [more dirs...] [--out DIR] [--no-plots] [--wandb PROJECT]

Writes results.csv (every number), runs.csv, results.md and results.tex (paste-ready) and the
figures (PNG) into the first dir (or --out), and prints the markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from unlearnbench.report import write_report
from unlearnbench.runtime.tracking import log_report_table


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

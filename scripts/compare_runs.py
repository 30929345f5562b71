"""Compare two sweeps (or run dirs) number by number: ``python scripts/compare_runs.py BEFORE AFTER``.

Exit status 0 when every result and prediction agrees to --tol (see unlearnbench.report.compare)."""

from __future__ import annotations

import argparse
import sys

from unlearnbench.report.compare import compare_sweeps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()
    result = compare_sweeps(args.before, args.after, args.tol)
    print(
        f"{result.runs} runs, {result.numbers} numbers, {result.predictions} predictions compared; "
        f"largest difference {result.max_diff:.3g} (tolerance {args.tol:g})"
    )
    for line in result.missing + result.mismatches:
        print("  " + line)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

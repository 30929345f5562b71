# ruff: noqa: E402  (the offline switches are set before transformers is imported)
"""Performance of unlearnbench: framework overhead, unlearning cost vs retraining, scaling, evaluation
throughput, training counts of a sweep and peak memory. Writes docs/performance.md (and a PNG).

    unlearnbench-bench --mode quick   # < 5 minutes on a 2-core CPU: subsets, short sequences
    unlearnbench-bench --mode full    # MiniLM on full bbc / tweets (5,000), 3 seeds: hours on CPU

(``python scripts/benchmark.py`` is the same command.) The measurements are
:mod:`unlearnbench.bench`; :func:`profile_main` is scripts/profile_step.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from unlearnbench.io import atomic_write_text

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("WANDB_MODE", "offline")

from unlearnbench.bench import profile as step_profile
from unlearnbench.bench.common import scratch_space
from unlearnbench.bench.document import merge, render, write_doc
from unlearnbench.bench.plans import MODES
from unlearnbench.bench.run import Options, measure, profile_run
from unlearnbench.bench.scaling import scaling_plot


def _root() -> Path:
    """The checkout this package runs from (its docs/ is the default --out), else the working dir."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="unlearnbench-bench", description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=sorted(MODES), default="quick")
    ap.add_argument("--cache", default=None, help="model cache dir (default: a fresh temp dir)")
    ap.add_argument("--out", default=str(_root() / "docs" / "performance.md"))
    ap.add_argument("--json", default=None, help="also write the raw figures here")
    ap.add_argument("--only", default="abcdseg", help="which sections to run, e.g. 'ad' (g: GPU mode)")
    ap.add_argument(
        "--b-methods",
        default=None,
        help="(b)'s methods instead of the mode's: a comma list, or 'all' (every unlearning method)",
    )
    ap.add_argument("--seeds", default=None, help="(b)'s seeds instead of the mode's: a comma list, e.g. 0")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    ap.add_argument("--profile-run", action="store_true", help="only run PROFILE_RUN once (for py-spy)")
    ap.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="run nothing: write --out from the --json files of earlier runs on one machine "
        "(each section from the last file that has it)",
    )
    args = ap.parse_args(argv)
    if args.render:
        fig = merge([json.loads(Path(f).read_text()) for f in args.render])
        if "c" in fig:
            scaling_plot(fig["c"], Path(args.out).parent / "performance_scaling.png")
        write_doc(Path(args.out), render(fig))
        print(f"wrote {args.out} from {len(args.render)} runs", file=sys.stderr)
        return
    with scratch_space():
        if args.profile_run:
            print(json.dumps(profile_run(args.cache, args.threads)))
            return
        measure(
            Options(
                mode=args.mode,
                only=args.only,
                out=Path(args.out),
                json=args.json,
                cache=args.cache,
                b_methods=args.b_methods,
                seeds=args.seeds,
                threads=args.threads,
                argv=sys.argv[1:] if argv is None else list(argv),
            )
        )


def profile_main(argv: Sequence[str] | None = None) -> None:
    """scripts/profile_step.py: the arms of :mod:`unlearnbench.bench.profile`, written to --out."""
    ap = argparse.ArgumentParser(prog="profile_step.py", description=step_profile.__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the config (data, model, trainer...)")
    ap.add_argument("--out", default="profile_step.md")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile-steps", type=int, default=20, help="steps recorded by torch.profiler per arm")
    ap.add_argument("--top", type=int, default=15, help="operators listed per arm")
    args = ap.parse_args(argv)
    with scratch_space():
        result = step_profile.profile_step(
            args.overrides, args.steps, args.warmup, args.repeats, args.profile_steps, args.top
        )
    atomic_write_text(args.out, step_profile.render_profile(result))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

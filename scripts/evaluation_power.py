"""The benchmark's power: runs (or resumes) the pooled sweep and writes docs/evaluation_power.md.

    python scripts/evaluation_power.py [--render-only] [hydra overrides ...]

The sweep is ``unlearnbench -m experiment=evaluation_power`` (conf/experiment/evaluation_power.yaml:
bbc and tweets x MiniLM x five forget designs x five methods x seeds, pools of eval.pool.size);
any override after the options goes to it (e.g. ``seed=0`` for one seed, ``eval.pool.size=64``,
``hydra/launcher=submitit_slurm``). Rerunning skips the finished jobs.
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

from unlearnbench.io import atomic_write_text
from unlearnbench.report import load_runs
from unlearnbench.report.power import pool_costs, render_power

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "outputs" / "sweeps" / "evaluation_power"


AT_SCALE = """
## At N = 64, on a GPU cluster

One Slurm job per pool member (submitit), then the gathering runs; the data at their full size:

```bash
G="data=bbc,tweets forget=random_5,memorized,label_swap,backdoor,class seed=0,1,2 \\
   data.max_samples=null data.max_length=96 eval.pool.size=64 hydra/launcher=submitit_slurm"
X="unlearnbench -m experiment=evaluation_power $G eval.pool.gather=false"
$X method=retrain train_seed='range(128)'            # both retrained pools
$X method=original train_seed='range(64,128)'        # the originals' pool
$X method=finetune,gradient_ascent,deepcut unlearn_seed='range(64)'
python scripts/evaluation_power.py $G                # gathers: every member is stored
```

Expected time (an estimate, not a measurement): per design and seed, 2 x 64 retrained models, 64
originals and 3 x 64 unlearning runs, about 380 fits. MiniLM trains at about 1,600 samples/s on an
H200 (docs/performance_gpu.md), so a full-size fit of bbc takes a few seconds plus a few seconds of
set-up, about 5 s; the 30 design x seed points make about 11,500 fits, about 16 GPU-hours: about 15
minutes on 64 GPUs, plus the queue.
"""


def cost_notes(store: Path) -> str:
    """The cost of a pool member, as measured in this store, and the command for N = 64."""
    costs = pool_costs(store)
    lines = ["", "## Cost", ""]
    if costs is None:
        lines.append("No retrained pool member in the store yet.")
    else:
        fit = costs["fit_seconds"]
        line = f"A retrained pool member's training took {fit:.1f} s on average ({costs['members']} members):"
        if "member_over_fit" in costs:
            ratio = costs["member_over_fit"]
            line += (
                f" one fine-tuning, plus {costs['eval_seconds']:.1f} s for its outputs on D_f, the retain "
                f"sample and test: a member costs {ratio:.2f} x one fine-tuning "
                f"(N = 8 members: {8 * ratio:.1f} x)."
            )
        else:
            line += " one fine-tuning each (this store did not record the members' evaluation time)."
        lines.append(line)
    return "\n".join(lines) + "\n" + AT_SCALE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="write the doc from the runs so far")
    parser.add_argument("--sweep-dir", default=str(SWEEP))
    parser.add_argument("--out", default=str(ROOT / "docs" / "evaluation_power.md"))
    parser.add_argument(
        "--store", default=None, help="the model store (default: outputs/cache beside the sweeps)"
    )
    args, overrides = parser.parse_known_args()
    started = time.time()
    if not args.render_only:
        cmd = [
            sys.executable, "-m", "unlearnbench.cli", "-m", "experiment=evaluation_power",
            f"hydra.sweep.dir={args.sweep_dir}", *overrides,
        ]  # fmt: skip
        print("$", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"})
    frame, _ = load_runs([args.sweep_dir])
    job_seconds = float(frame.total_seconds.sum()) if not frame.empty else 0.0
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    header = (
        "# The benchmark's power: which forget designs separate the original from retraining\n\n"
        f"_Written by `python scripts/evaluation_power.py {shlex.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')} from {len(frame)} runs in `{Path(args.sweep_dir).name}`, "
        f"{job_seconds:.0f} s of job time in all ({time.time() - started:.0f} s this call), "
        f"on {machine}._\n\n"
        "Forget quality F (NeurIPS 2023 rule, docs/evaluation.md): 1 = as if retrained, 0 = separable. "
        "For `original` the pool is N originals (training seeds N..2N-1) and F is the design's *power* "
        "(how far the original sits from retraining); for `retrain` it is a second retrained pool and F "
        "is the *ceiling* (what sampling noise leaves of two identical pools). Every cell: mean ± half-width "
        "of the 95 % t-interval over seeds."
    )
    text, _ = render_power([args.sweep_dir], header)
    text += cost_notes(Path(args.store) if args.store else Path(args.sweep_dir).parents[1] / "cache")
    atomic_write_text(args.out, text + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the DeepCUT tuning sweep (conf/experiment/deepcut_tuning.yaml) and write its table.

    python scripts/tune_deepcut.py [extra overrides...]      # e.g. seed=1 method.views=1

Evaluates the original and the retrained reference, sweeps DeepCUT's grid, and writes
docs/deepcut_tuning.md: one row per setting, with the forget-F1 gap to retraining, test F1 and the
unlearning time ratio. Models come from the cache and finished sweep jobs are skipped when it is
run again. It rewrites the whole file: the analysis under the table there was written by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unlearnbench.report import write_markdown_doc

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "outputs" / "sweeps" / "deepcut_tuning"
HEADER = """# DeepCUT tuning sweep

Written by `python scripts/tune_deepcut.py` (grid: conf/experiment/deepcut_tuning.yaml): BBC x
all-MiniLM-L6-v2, 5 % random forget set (78 of 1,557 training articles), seed 0, on a 2-core CPU.
Scores in percent; `gap F1 forget` = |forget F1 - retrain's forget F1| (lower: closer to exact
unlearning). Each DeepCUT run stops once forget F1 <= validation F1 (checked every 5 steps) or
after one pass over D_f.
"""


def main(extra: list[str]) -> None:
    cli = [sys.executable, "-m", "unlearnbench.cli"]
    overrides = ["experiment=deepcut_tuning", *extra]
    for reference in ("original", "retrain"):
        subprocess.run([*cli, *overrides, f"method={reference}"], check=True, cwd=ROOT)
    subprocess.run([*cli, "--multirun", *overrides], check=True, cwd=ROOT)
    print(write_markdown_doc([SWEEP], ROOT / "docs" / "deepcut_tuning.md", HEADER))


if __name__ == "__main__":
    main(sys.argv[1:])

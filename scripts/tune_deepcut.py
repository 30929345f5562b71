"""Run the DeepCUT tuning sweep (conf/experiment/deepcut_tuning.yaml) and write its table.

    python scripts/tune_deepcut.py [extra overrides...]      # e.g. seed=1 method.views=1

Trains (or reads from the cache) the original and the retrained reference, sweeps DeepCUT's grid,
and writes docs/deepcut_tuning.md: one row per setting, with the forget-F1 gap to retraining,
test F1 and the unlearning time ratio. Finished jobs are skipped when it is run again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unlearnbench.report import write_report

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "outputs" / "sweeps" / "deepcut_tuning"


def main(extra: list[str]) -> None:
    cli = [sys.executable, "-m", "unlearnbench.cli"]
    overrides = ["experiment=deepcut_tuning", *extra]
    subprocess.run([*cli, *overrides, "method=retrain"], check=True, cwd=ROOT)  # the reference
    subprocess.run([*cli, "--multirun", *overrides], check=True, cwd=ROOT)
    table, failures = write_report([SWEEP], SWEEP)
    doc = ROOT / "docs" / "deepcut_tuning.md"
    doc.write_text(
        "# DeepCUT tuning sweep\n\n"
        "Written by `python scripts/tune_deepcut.py` (grid: conf/experiment/deepcut_tuning.yaml):\n"
        "BBC x all-MiniLM-L6-v2, 5 % random forget set, seed 0, on a 2-core CPU. Scores in percent;\n"
        "`gap F1 forget` = |forget F1 - retrain's forget F1| (lower: closer to exact unlearning).\n\n"
        + table.to_markdown(index=False)
        + "\n"
    )
    print(doc.read_text())
    for f in failures:
        print(f"FAILED {f['run_dir']}: {f['message']}")


if __name__ == "__main__":
    main(sys.argv[1:])

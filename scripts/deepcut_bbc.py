"""DeepCUT against the core baselines on BBC x MiniLM (conf/experiment/deepcut_bbc.yaml):
3 seeds x {5 % random forget set, the whole class "business"} x original, retrain, finetune,
gradient_ascent, deepcut. Writes docs/deepcut_bbc.md (mean +- std over seeds).

    python scripts/deepcut_bbc.py [extra overrides...]     # about an hour on a 2-core CPU

Finished jobs are skipped when it is run again, so an interrupted run resumes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unlearnbench.report import write_markdown_doc

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "outputs" / "sweeps" / "deepcut_bbc"
HEADER = """# DeepCUT vs the core baselines on BBC x MiniLM

Written by `python scripts/deepcut_bbc.py` (sweep: conf/experiment/deepcut_bbc.yaml), on a 2-core
CPU with no GPU. Scores in percent, mean ± the 95 % t-interval half-width over the seeds;
`gap F1 forget` = |forget F1 - retrain's| per seed (lower: closer to exact unlearning);
`× retrain` = unlearning wall time / retrain's. `class-0-1.0` is the whole class "business"
(forget.class_name=0).
"""


def main(extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "unlearnbench.cli", "--multirun", "experiment=deepcut_bbc", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(write_markdown_doc([SWEEP], ROOT / "docs" / "deepcut_bbc.md", HEADER))


if __name__ == "__main__":
    main(sys.argv[1:])

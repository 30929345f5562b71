"""Hydra callbacks of the ``unlearnbench`` app (``conf/hydra/default.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from unlearnbench.report import write_report


class SweepReportCallback(Callback):
    """At the end of every ``-m`` sweep, write and print its report."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        table, failures = write_report([sweep_dir], sweep_dir)
        if not table.empty:
            print(f"\n{table.to_markdown(index=False)}\n\nreport: {sweep_dir}/results.md (.csv, .tex)")
        for f in failures:
            print(f"FAILED {f['run_dir']}: {f['type']}: {f['message']}")

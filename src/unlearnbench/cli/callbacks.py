"""Hydra callbacks of the ``unlearnbench`` app (``conf/hydra/default.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from unlearnbench.report import write_report

OPTUNA_RESULTS = "optimization_results.yaml"  # what the Optuna sweeper writes into the sweep dir


def search_summary(sweep_dir: Path, set_name: str) -> str | None:
    """The best parameters of an Optuna search in ``sweep_dir`` and how to apply them; None when the
    sweep was not a search."""
    path = sweep_dir / OPTUNA_RESULTS
    if not path.exists():
        return None
    best = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(best, dict)
    params = " ".join(f"{k}={v}" for k, v in (best.get("best_params") or {}).items())
    return "\n".join(
        [
            f"best parameters (objective {best.get('best_value')}): {params}",
            f"search results: {path}",
            f"apply them: unlearnbench-save-tuned {sweep_dir} --set {set_name}, then tuned={set_name}",
        ]
    )


class SweepReportCallback(Callback):
    """At the end of every ``-m`` sweep, write and print its report; after a search, also its best
    parameters (the trials are the sweep's runs)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        table, failures = write_report([sweep_dir], sweep_dir)
        if not table.empty:
            print(f"\n{table.to_markdown(index=False)}\n\nreport: {sweep_dir}/results.md (.csv, .tex)")
        for f in failures:
            print(f"FAILED {f['run_dir']}: {f['type']}: {f['message']}")
        summary = search_summary(sweep_dir, str(config.get("experiment_name", "default")))
        if summary:
            print(f"\n{summary}")

"""Experiment tracking with Weights & Biases (``logger=wandb``): one wandb run per job.

The job's run is started before the first fit, so that the WandbLogger of every fit of the job
(original, retrained reference, the method itself) logs into it; the final metrics go into its
summary when the job ends. Only rank 0 of a DDP job tracks. Other loggers (CSV, none) need nothing
here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unlearnbench.errors import ConfigError
from unlearnbench.io import unreachable_reason

log = logging.getLogger(__name__)
WANDB_TARGET = "lightning.pytorch.loggers.WandbLogger"
MODES = ("auto", "online", "offline", "disabled")
# Keys of conf/logger/wandb.yaml that are the logger's own, not wandb.init's.
LOGGER_ONLY_KEYS = ("_target_", "log_model", "mode", "save_dir", "prefix", "checkpoint_name")


def uses_wandb(cfg: DictConfig) -> bool:
    logger = cfg.get("logger")
    return bool(logger) and logger.get("_target_") == WANDB_TARGET


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def resolve_mode(mode: str | None) -> str:
    """``auto``: offline unless an API key and the network are both there; WANDB_MODE wins."""
    mode = mode or "auto"
    if mode not in MODES:
        raise ConfigError("logger.mode", mode, f"one of {', '.join(MODES)}")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if _has_api_key() and unreachable_reason("api.wandb.ai") is None else "offline"
    return mode


def logger_kwargs(logger_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The WandbLogger's arguments with ``mode`` resolved (what build_trainer instantiates)."""
    kwargs = dict(logger_cfg)
    kwargs["mode"] = resolve_mode(kwargs.get("mode"))
    return kwargs


@contextmanager
def tracked_run(cfg: DictConfig, run_dir: Path) -> Iterator[Any]:
    """The job's wandb run (None when the job does not log to wandb), finished on exit."""
    if not uses_wandb(cfg):
        yield None
        return
    import wandb

    settings = OmegaConf.to_container(cfg.logger, resolve=True)
    init = {k: v for k, v in settings.items() if k not in LOGGER_ONLY_KEYS}
    mode = resolve_mode(settings.get("mode"))
    config = OmegaConf.to_container(cfg, resolve=True)
    run = wandb.init(**init, mode=mode, dir=str(run_dir), config=config, reinit="finish_previous")
    log.info("wandb run %s (%s): %s", run.name, mode, run.dir)
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


def log_results(run: Any, results: Mapping[str, Any]) -> None:
    """The job's final numbers into the wandb run's summary (flat keys, e.g. ``test/f1``)."""
    if run is None:
        return
    summary: dict[str, Any] = {}
    for split, metrics in results.get("metrics", {}).items():
        summary.update({f"{split}/{k}": v for k, v in metrics.items() if isinstance(v, int | float)})
    for section in ("timing", "cost"):
        for key, value in (results.get(section) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                summary[f"{section}/{key}"] = value
    for split, ref in (results.get("reference") or {}).items():
        if isinstance(ref, Mapping):
            summary.update(
                {f"reference/{split}/{k}": v for k, v in ref.items() if isinstance(v, int | float)}
            )
    run.summary.update(summary)
    run.log({f"final/{k}": v for k, v in summary.items()})


def log_report_table(frame: Any, project: str, name: str, directory: Path, entity: str | None = None) -> str:
    """A report table (pandas) as a wandb Table in its own run (job_type ``report``), its files
    under ``directory``/wandb; returns the run's dir."""
    import wandb

    run = wandb.init(
        project=project,
        entity=entity,
        job_type="report",
        name=name,
        dir=str(directory),
        mode=resolve_mode("auto"),
        reinit="finish_previous",
    )
    run.log({"results": wandb.Table(dataframe=frame)})
    run.finish()
    return str(run.dir)

"""``hydra/sweeper=resuming``: Hydra's basic sweeper (the grid of ``key=a,b`` overrides, batches of
``max_batch_size``) that leaves out, before it hands a batch to any launcher, every job whose run
dir already holds a complete results.json, and says how many it left out. A job's run dir is
computed as Hydra computes it (``hydra.sweep.dir`` / ``hydra.sweep.subdir`` of the job's own
config); a job whose config says ``resume=false`` is always launched.

Locally this saves starting the job; on a cluster it saves a place in the queue.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside
# sys.modules, where dataclasses cannot resolve string annotations.

import logging
import time
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import unlearnbench.config  # noqa: F401  (registers the resolvers that name a job's dir)
from unlearnbench.results import is_complete

log = logging.getLogger(__name__)


def job_dir(job_cfg: DictConfig) -> Path | None:
    """Where Hydra runs the job of this (sweep job) config; None when it cannot be told here."""
    try:
        return Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)
    except OmegaConfBaseException:  # e.g. an interpolation that only a running job can resolve
        return None


def is_done(job_cfg: DictConfig) -> bool:
    """The job may be left out: it resumes (``resume``, default true) and its results are complete."""
    if not bool(OmegaConf.select(job_cfg, "resume", default=True)):
        return False
    where = job_dir(job_cfg)
    return where is not None and is_complete(where)


class ResumingSweeper(BasicSweeper):
    """:class:`BasicSweeper` that does not launch finished jobs (see the module's docstring)."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.left_out = 0

    def pending(self, batch: list[list[str]]) -> list[list[str]]:
        """The jobs of ``batch`` to launch. Composing each job's config also checks that it composes
        (what :meth:`validate_batch_is_legal` does), before anything is launched."""
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        keep = []
        for overrides in batch:
            job_cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            if is_done(job_cfg):
                log.info("skip (done): %s", job_dir(job_cfg))
            else:
                keep.append(overrides)
        return keep

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params_conf = [*self._parse_config(), *arguments]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params_conf), self.max_batch_size)
        returns: list[list[JobReturn]] = []
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        launched = 0
        while not self.is_done():
            batch = list(self.get_job_batch())
            tic = time.perf_counter()
            jobs = self.pending(batch)
            log.debug("composed %d job configs in %.2f s", len(batch), time.perf_counter() - tic)
            if len(jobs) < len(batch):
                log.info(
                    "resume: left out %d of %d jobs whose results.json is complete",
                    len(batch) - len(jobs),
                    len(batch),
                )
            self.left_out += len(batch) - len(jobs)
            if not jobs:
                continue
            results = self.launcher.launch(jobs, initial_job_idx=launched)
            for r in results:
                _ = r.return_value  # raises the error of a job that failed in Hydra itself
            launched += len(jobs)
            returns.append(list(results))
        return returns

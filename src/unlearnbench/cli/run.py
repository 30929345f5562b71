"""The ``unlearnbench`` command: a Hydra app that runs one experiment per (sweep) job.

Wraps :func:`unlearnbench.pipeline.run_experiment` with what a sweep needs: skip jobs that are
already done, record a failed job's error in its run dir and carry on with the others, and turn
a user error into one clear line instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from unlearnbench.config import CONF_DIR
from unlearnbench.distributed import is_main_process
from unlearnbench.errors import ConfigError, UnlearnbenchError
from unlearnbench.io import atomic_write_json, redact, redact_logs
from unlearnbench.pipeline import run_experiment
from unlearnbench.results import ERROR_FILE, is_complete

log = logging.getLogger("unlearnbench")

# conf/hydra/launcher/submitit_slurm.yaml is complete on its own (every key, and _target_); Hydra 1.3
# also validates it against the plugin's schema of the same name and warns that this will go away.
warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema with the same name.*")


def run_job(cfg: DictConfig, run_dir: Path, multirun: bool) -> None:
    if multirun and cfg.get("resume", True) and is_complete(run_dir):
        log.info("skip (done): %s", run_dir)
        return
    main = is_main_process()  # a DDP job started by Slurm or torchrun runs this once per rank
    if main:
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        run_experiment(cfg, run_dir)
    except Exception as exc:
        if main:
            atomic_write_json(
                run_dir / ERROR_FILE,
                {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
            )
        if multirun:  # the other jobs of the sweep go on; the report lists this one
            log.error("job failed (%s: %s); details in %s", type(exc).__name__, exc, run_dir / ERROR_FILE)
            return
        if isinstance(exc, UnlearnbenchError) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            print(f"error: {redact(str(exc))}", file=sys.stderr)
            sys.exit(2)
        raise


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    redact_logs()
    hc = HydraConfig.get()
    run_job(cfg, Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN)


def search_path(args: list[str]) -> list[str]:
    """The local dirs of a ``hydra.searchpath=[file://DIR, ...]`` override (a user's own configs)."""
    dirs: list[str] = []
    for arg in args:
        if arg.startswith("hydra.searchpath="):
            for item in arg.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    dirs.append(item.removeprefix("file://"))
    return dirs


def check_group_options(args: list[str], conf_dir: str | Path = CONF_DIR) -> None:
    """Refuse an override ``group=option`` (or a sweep ``group=a,b``) that names no option of a config
    group (of ``conf_dir`` and the search path): one line, where Hydra would print a block ending in
    a hint."""
    extra = search_path(args)
    for arg in args:
        match = re.fullmatch(r"\+{0,2}([\w/]+)=([\w,-]+)", arg)
        # hydra/* groups also hold the plugins' options (launchers, sweepers): Hydra checks those.
        if match is None or match.group(1).startswith("hydra/"):
            continue
        group = match.group(1)
        if not any((Path(root) / group).is_dir() for root in [conf_dir, *extra]):
            continue
        options = sorted({p.stem for root in [conf_dir, *extra] for p in (Path(root) / group).glob("*.yaml")})
        for option in match.group(2).split(","):
            if option not in (*options, "null"):
                raise ConfigError(group, option, f"one of {', '.join(options)}")


def main() -> None:
    """The ``unlearnbench`` command: the Hydra app, after a check of the config group options."""
    if os.environ.get("HYDRA_FULL_ERROR") != "1":  # HYDRA_FULL_ERROR=1: Hydra's own report
        try:
            check_group_options(sys.argv[1:])
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()

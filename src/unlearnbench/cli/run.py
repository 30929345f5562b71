"""The ``unlearnbench`` command: a Hydra app that runs one experiment per (sweep) job.

Wraps :func:`unlearnbench.pipeline.run_experiment` with what a sweep needs: skip jobs that are
already done, record a failed job's error in its run dir and carry on with the others, and turn
a user error into one clear line instead of a traceback. When ``optimized_metric`` names an
objective (``hparams_search=<method>``), each job returns it to the sweeper, also a job whose
results were already complete, so a search rerun into its sweep dir replays its finished trials.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from unlearnbench.config import CONF_DIR, compose_with_hydra
from unlearnbench.distributed import is_main_process
from unlearnbench.errors import ConfigError, UnlearnbenchError
from unlearnbench.io import atomic_write_json, redact, redact_logs
from unlearnbench.objective import KEY as OBJECTIVE_KEY
from unlearnbench.objective import Objective, breakdown, check_config, check_name
from unlearnbench.pipeline import run_experiment
from unlearnbench.results import ERROR_FILE, read_results

log = logging.getLogger("unlearnbench")
NO_TRIAL_DONE = "No trials are completed yet"  # optuna's message when a study has no finished trial
# optuna imports alembic (for database studies, unused here), which logs each of its plugins at INFO
# when Hydra scans for sweepers: a dozen lines before every command.
logging.getLogger("alembic").setLevel(logging.WARNING)

# conf/hydra/launcher/submitit_slurm.yaml is complete on its own (every key, and _target_); Hydra 1.3
# also validates it against the plugin's schema of the same name and warns that this will go away.
warnings.filterwarnings(
    "ignore", message=r"(?s)\s*.*is validated against ConfigStore schema with the same name"
)


def objective_value(results: dict[str, Any], objective: Objective | None, run_dir: Path) -> float | None:
    """The value the sweeper gets for this job (None outside a search), logged with its parts."""
    if objective is None:
        return None
    parts = breakdown(results, objective)
    log.info(
        "objective %s = %.4f (closeness %.4f, utility %.4f, floor %.4f): %s",
        objective.name,
        parts["value"],
        parts["closeness"],
        parts["utility"],
        parts["floor"],
        run_dir,
    )
    return parts["value"]


def run_job(cfg: DictConfig, run_dir: Path, multirun: bool) -> float | None:
    """Run the job; its objective when ``optimized_metric`` is set (None for a failed job, which
    Optuna records as a failed trial and the search goes on)."""
    objective = check_config(cfg)  # a search that cannot yield its objective stops here, untrained
    done = read_results(run_dir) if multirun and cfg.get("resume", True) else None
    if done is not None:
        log.info("skip (done): %s", run_dir)
        return objective_value(done, objective, run_dir)
    main = is_main_process()  # a DDP job started by Slurm or torchrun runs this once per rank
    if main:
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        results = run_experiment(cfg, run_dir)
    except Exception as exc:
        if main:
            atomic_write_json(
                run_dir / ERROR_FILE,
                {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
            )
        if multirun:  # the other jobs of the sweep go on; the report lists this one
            log.error("job failed (%s: %s); details in %s", type(exc).__name__, exc, run_dir / ERROR_FILE)
            return None
        raise  # main() prints an UnlearnbenchError in one line (HYDRA_FULL_ERROR=1: the traceback)
    return objective_value(results, objective, run_dir) if main else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    redact_logs()
    hc = HydraConfig.get()
    return run_job(cfg, Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN)


def check_objective_names(args: list[str]) -> None:
    """Refuse ``optimized_metric=<name>`` on the command line before Hydra composes anything."""
    for arg in args:
        key, eq, text = arg.lstrip("+").partition("=")
        if eq and key == OBJECTIVE_KEY and text != "null":
            for name in text.split(","):
                check_name(name)


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


def hydra_overrides(args: list[str]) -> list[str]:
    """The overrides among the command's arguments (Hydra's flags and their values left out)."""
    from hydra._internal.utils import get_args_parser

    try:
        return list(get_args_parser().parse_known_args(args)[0].overrides)
    except SystemExit:  # argparse refused the flags: Hydra will say so
        return []


def config_keys(overrides: list[str]) -> list[str]:
    """Every key of the config that ``overrides`` compose (dotted, nodes and leaves, the hydra node
    included): sweeps take their first value; overrides that do not compose are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    single: list[str] = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except Exception:
            continue
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                continue
            first = next(iter(override.sweep_string_iterator()), None)
            text = f"{override.get_key_element()}={first}"
        single.append(text)

    try:
        cfg = compose_with_hydra(single)
    except Exception:  # keep what composes on its own (the group choices, the search path)
        good = []
        for text in single:
            try:
                compose_with_hydra([*good, text])
                good.append(text)
            except Exception:
                continue
        cfg = compose_with_hydra(good)

    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for key in node:
            path = f"{prefix}{key}"
            keys.append(path)
            child = node._get_node(key)
            if OmegaConf.is_dict(child):
                walk(child, f"{path}.")

    walk(cfg, "")
    return keys


def unknown_key(key: str, value: Any, args: list[str]) -> ConfigError:
    """``key`` is not in the config: the closest valid keys, else the keys beside it."""
    try:
        keys = config_keys([a for a in hydra_overrides(args) if a.lstrip("+~").split("=", 1)[0] != key])
    except Exception:  # the list of keys is a help; the line must come whatever happens
        keys = []
    close = difflib.get_close_matches(key, keys, n=4, cutoff=0.6)
    parent = key.rpartition(".")[0]
    if close:
        allowed = f"not a key of the config; the closest valid keys: {', '.join(close)}"
    else:
        level = [k for k in keys if k.rpartition(".")[0] == parent]
        where = f"under {parent}" if parent and level else "at the top level"
        level = level or [k for k in keys if "." not in k]
        allowed = f"not a key of the config; the keys {where}: {', '.join(level[:20])}"
    return ConfigError(key, value, allowed)


def one_line_error(exc: Exception, args: list[str]) -> UnlearnbenchError:
    """A Hydra composition or override error as one line that names the key and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException

    message = str(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        if group:
            return ConfigError(group, option, f"one of {', '.join(sorted(exc.options))}")
    match = re.match(r"Could not override '([^']+)'", message) or re.search(
        r"Could not delete from config\. '([^']+)' does not exist", message
    )
    if match:
        key = match.group(1)
        given = [a.lstrip("+~").partition("=") for a in hydra_overrides(args)]
        value = next((v for k, eq, v in given if k == key and eq), None)
        return unknown_key(key, _override_value(value), args)
    lines = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    if isinstance(exc, OverrideParseException):
        return UnlearnbenchError(f"cannot parse the override {exc.override!r}: {lines}")
    return UnlearnbenchError(lines)


def _override_value(text: str | None) -> Any:
    """The value of an override as Hydra reads it (``-1`` an int, ``a,b`` a sweep's text)."""
    if text is None:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (override,) = OverridesParser.create().parse_overrides([f"k={text}"])
        return text if override.is_sweep_override() else override.value()
    except Exception:
        return text


@contextmanager
def hydra_raises() -> Iterator[None]:
    """Inside: Hydra raises its errors (and the app's) instead of printing them, for main() to report."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def main() -> None:
    """The ``unlearnbench`` command: the Hydra app. Bad input, whether the app finds it or Hydra does
    (an unknown key or option, an override that does not parse, a launcher's refusal), ends with
    one line, ``error: ...``, and exit status 2; ``HYDRA_FULL_ERROR=1`` shows Hydra's own report."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        hydra_main()
        return
    from hydra.errors import ConfigCompositionException, OverrideParseException

    args = sys.argv[1:]
    try:
        check_group_options(args)
        check_objective_names(args)
        with hydra_raises():
            hydra_main()
    except UnlearnbenchError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except (ConfigCompositionException, OverrideParseException) as exc:
        print(f"error: {redact(str(one_line_error(exc, args)))}", file=sys.stderr)
        sys.exit(2)
    except ValueError as exc:
        # The Optuna sweeper asks its study for the best trial even when every trial failed; optuna
        # answers with this ValueError. Each failed job already logged its error and wrote error.json.
        if NO_TRIAL_DONE not in str(exc):
            raise
        print("error: no trial of the search finished; each one's error.json says why", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

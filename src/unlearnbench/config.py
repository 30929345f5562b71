"""Where the configs live and what they need to compose.

The source of the configs is the top-level ``conf/`` tree of the repository; the package carries
it as ``unlearnbench/conf`` (a link in the source tree, real files in a wheel), so an installed
package composes the same configs as a checkout. ``UNLEARNBENCH_CONF_DIR`` points elsewhere.
This module also registers the OmegaConf resolvers the configs use and offers :func:`compose`,
the config of a run built from Python (no Hydra run).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = os.environ.get("UNLEARNBENCH_CONF_DIR") or str(Path(__file__).resolve().parent / "conf")
PRIMARY = "config"


def _subdir(overrides: str) -> str:
    """A sweep job's dir is named by its overrides; a sweep with none still needs a name."""
    return overrides or "default"


def _equal_cost_epochs(epochs: int, slices: int) -> int:
    """SISA's epochs per slice at equal cost (Bourtoule et al.): the ensemble sees as many passes
    as one model trained on D, round(2 epochs / (slices + 1)), at least 1."""
    return max(1, round(2 * int(epochs) / (int(slices) + 1)))


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("ub_subdir", _subdir, replace=True)
    OmegaConf.register_new_resolver("ub_equal_cost_epochs", _equal_cost_epochs, replace=True)


register_resolvers()


def default_cache_dir() -> str:
    """The model cache outside a Hydra run: UNLEARNBENCH_CACHE_DIR, else ./outputs/cache."""
    return os.environ.get("UNLEARNBENCH_CACHE_DIR") or str(Path.cwd() / "outputs" / "cache")


def compose(overrides: Sequence[str] = (), resolve: bool = True, conf_dir: str | None = None) -> DictConfig:
    """The config that ``unlearnbench`` composes for ``overrides``, built from Python.

    Outside a Hydra run nothing can be read from ``hydra:runtime``: ``paths.cache_dir`` is set to
    :func:`default_cache_dir` unless an override names it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = list(overrides)
    if not any(o.startswith("paths.cache_dir=") for o in overrides):
        overrides.append(f"paths.cache_dir={default_cache_dir()}")
    with initialize_config_dir(config_dir=conf_dir or CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(PRIMARY, overrides=overrides)
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg


def compose_with_hydra(overrides: Sequence[str] = (), conf_dir: str | None = None) -> DictConfig:
    """The config as a Hydra app sees it, its ``hydra`` node included (sweeper, launcher, run dirs),
    unresolved. Hydra's global state is cleared before and after, so it works inside a Hydra run
    (the CLI's checks) and between tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir or CONF_DIR, version_base="1.3"):
            return hydra_compose(PRIMARY, overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def group_options(group: str, conf_dirs: Sequence[str | Path] = ()) -> list[str]:
    """The options of a config group in the package's conf dir and in ``conf_dirs`` (a search path)."""
    names: set[str] = set()
    for root in [CONF_DIR, *conf_dirs]:
        names.update(p.stem for p in (Path(root) / group).glob("*.yaml"))
    return sorted(names)

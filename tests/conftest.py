"""Shared fixtures: configs composed the way the CLI composes them, on a tiny random BERT."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch

from unlearnbench.config import CONF_DIR  # registers the config resolvers

torch.set_num_threads(1)  # tests also call the pipeline in-process

# Small and fast, yet enough data that every class has training, val and test samples.
TINY = [
    "experiment=smoke",
    "data.max_samples=200",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "eval.batch_size=128",
    "num_threads=1",  # a tiny model runs faster on one thread than on two contending ones
]


def compose_cfg(overrides: list[str], cache_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, f"paths.cache_dir={cache_dir}", *overrides])
    # Outside a Hydra run there is no hydra:runtime; every ${...} left must resolve without it.
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session: the tiny original model is trained once, then reused."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def make_cfg(shared_cache: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str, cache_dir: Path | None = None) -> DictConfig:
        return compose_cfg(list(overrides), cache_dir or shared_cache)

    return make

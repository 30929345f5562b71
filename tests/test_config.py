"""Every config group option composes, and the CLI shows the composed config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from unlearnbench.config import CONF_DIR
from unlearnbench.methods import METHODS, get_method

FILL_MANDATORY = {
    "data/hf": ["data.hub_name=ag_news"],
    "data/local": ["data.path=/tmp/x.csv"],
    "model/hf": ["model.path=bert-base-uncased"],
    "forget/ids": ["forget.path=/tmp/ids.txt"],
}


def options() -> list[tuple[str, str]]:
    out = []
    for group_dir in sorted(Path(CONF_DIR).iterdir()):
        if group_dir.is_dir() and group_dir.name != "hydra":
            out += [(group_dir.name, f.stem) for f in sorted(group_dir.glob("*.yaml"))]
    return out


def default_groups() -> set[str]:
    defaults = OmegaConf.load(Path(CONF_DIR) / "config.yaml").defaults
    return {next(iter(d)) for d in defaults if isinstance(d, dict | DictConfig)}


@pytest.mark.parametrize(("group", "option"), options())
def test_every_option_composes(make_cfg, group: str, option: str) -> None:
    add = "" if group in default_groups() else "+"  # groups outside the defaults list are added
    cfg = make_cfg(f"{add}{group}={option}", *FILL_MANDATORY.get(f"{group}/{option}", []))
    if group == "method":
        assert cfg.method.name == option
        get_method(option).parse_params(cfg.method)  # the YAML matches the method's schema


def test_method_yaml_and_registry_agree() -> None:
    yamls = {p.stem for p in (Path(CONF_DIR) / "method").glob("*.yaml")}
    assert yamls == set(METHODS), "each method needs methods/<name>.py and conf/method/<name>.yaml"


@pytest.mark.slow  # interpreters of its own; --cfg job composition is tested in-process
def test_cli_prints_job_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unlearnbench.cli", "--cfg", "job", "method=deepcut", "forget.ratio=0.1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "name: deepcut" in out and "ratio: 0.1" in out and "gamma:" in out

"""The package as users get it: a wheel carries the configs, so an install outside the repo composes
them; and a method of the user's own (their YAML naming their class, on Hydra's search path) runs
like a built-in one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_a_wheel_installed_outside_the_repo_composes_its_configs(tmp_path) -> None:
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ in it
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__")
    for part in ("src", "conf"):
        shutil.copytree(ROOT / part, source / part, symlinks=True, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*wheel_cmd, "-w", tmp_path, source], check=True, capture_output=True)
    wheel = next(tmp_path.glob("unlearnbench-*.whl"))
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    assert (site / "unlearnbench" / "conf" / "method" / "deepcut.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import unlearnbench.config as c; print(c.CONF_DIR)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where) == site / "unlearnbench" / "conf"  # the wheel's configs, not the checkout's
    out = subprocess.run(
        [site / "bin" / "unlearnbench", "--cfg", "job", "method=deepcut"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "name: deepcut" in out and "tau: 0.5" in out and "rule: auto" in out
    # The Hydra plugins (the resuming sweeper, the checked Slurm launcher) ship in the wheel too,
    # inside the hydra_plugins namespace that Hydra searches (and without an __init__ of their own).
    assert not (site / "hydra_plugins" / "__init__.py").exists()
    probe = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
        "import hydra_plugins.unlearnbench_plugins as p; print(p.__file__); "
        "print(' '.join(c.__name__ for c in Plugins.instance().discover(Sweeper)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert (
        Path(found[0]).parent == site / "hydra_plugins" / "unlearnbench_plugins"
        and "ResumingSweeper" in found[1]
    )


USER_METHOD = '''
"""A method of the user's own: gradient ascent with the loss scaled."""

from unlearnbench.methods import PairedLossMethod, PairedParams
from dataclasses import dataclass


@dataclass(kw_only=True)
class ScaledParams(PairedParams):
    scale: float = 1.0


class ScaledAscent(PairedLossMethod):
    """L = - scale * CE(B_f)"""

    Params = ScaledParams

    def loss_terms(self, batch):
        return {"forget_ce": self.ce(self.logits(batch), batch, batch["is_forget"])}

    def combine(self, terms):
        return -self.params.scale * terms["forget_ce"]
'''

USER_YAML = """
defaults:
  - base/paired@_here_
  - stop: none
  - _self_

_target_: my_methods.ScaledAscent
name: scaled_ascent
retain_batch_size: 0
scale: 2.0
"""


def test_a_method_of_the_users_own_runs_from_its_yaml_on_the_search_path(shared_cache, tmp_path) -> None:
    (tmp_path / "my_methods.py").write_text(USER_METHOD)
    (tmp_path / "conf" / "method").mkdir(parents=True)
    (tmp_path / "conf" / "method" / "scaled_ascent.yaml").write_text(USER_YAML)
    run_dir = tmp_path / "run"
    cmd = [
        BIN / "unlearnbench",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "method=scaled_ascent",
        "method.max_steps=2",
        *TINY,
        f"paths.cache_dir={shared_cache}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["method"] == "scaled_ascent" and results["timing"]["steps"] == 2
    assert results["method_params"]["scale"] == 2.0 and results["metrics"]["forget"]["n"] > 0

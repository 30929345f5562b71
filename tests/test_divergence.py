"""A loss that becomes NaN or infinite stops its fit at once, whichever fit it is (the original, the
retrained reference, the unlearning), with one line naming the method, the fit and the step; the
job records the error and writes no results, nothing of the fit is kept, and a sweep goes on."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.test_cli import unlearnbench_here
from unlearnbench.errors import DivergenceError
from unlearnbench.methods.finetune import FineTune
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.finetune import SupervisedFit

DIVERGE_AT = 3  # the first step whose loss is NaN


class DivergingFineTune(FineTune):
    """``finetune`` whose loss turns NaN at step DIVERGE_AT: a method that diverges, on purpose."""

    name = "diverging"

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.global_step + 1 >= DIVERGE_AT else loss


DIVERGING_YAML = """
defaults:
  - stop: none
  - _self_

_target_: tests.test_divergence.DivergingFineTune
name: diverging
lr: 5.0e-5
epochs: 2
batch_size: 16
"""


def nan_loss(self, batch, batch_idx):
    return torch.tensor(float("nan"), requires_grad=True)


def test_a_diverging_unlearning_fit_stops_at_once_and_writes_no_results(make_cfg, tmp_path) -> None:
    from unlearnbench.cli.run import run_job

    cfg = make_cfg("method=finetune", "method._target_=tests.test_divergence.DivergingFineTune")
    cfg.method.name = "diverging"
    with pytest.raises(DivergenceError) as info:
        run_experiment(cfg, tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message
    assert re.fullmatch(
        rf"method diverging: the unlearning fit diverged at step {DIVERGE_AT} \(epoch 0\): the loss is nan",
        message,
    ), message
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing to resume a diverged fit from

    run_job(cfg, tmp_path / "job", multirun=True)  # in a sweep: error.json, and the sweep goes on
    error = json.loads((tmp_path / "job" / "error.json").read_text())
    assert error["type"] == "DivergenceError" and error["message"] == message
    assert not (tmp_path / "job" / "results.json").exists()


def test_a_diverging_original_fit_leaves_no_store_entry(make_cfg, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(SupervisedFit, "training_step", nan_loss)
    cache = tmp_path / "cache"
    with pytest.raises(DivergenceError, match=r"^method deepcut: the original fit diverged at step 1 "):
        run_experiment(make_cfg("method=deepcut", cache_dir=cache), tmp_path / "run")
    left = [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # neither an entry nor a partial one that a later run would trust or resume
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_diverging_reference_fit_is_named(make_cfg, tmp_path, monkeypatch) -> None:
    cfg = make_cfg("method=original", "forget.ratio=0.13")  # a reference no other test has stored
    _, _, data = prepare(cfg)
    ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), tmp_path / "run")
    ctx.original()  # trained (or stored) without trouble
    monkeypatch.setattr(SupervisedFit, "training_step", nan_loss)
    expected = r"^method original: the retrained reference fit diverged at step 1 "
    with pytest.raises(DivergenceError, match=expected):
        ctx.reference_retrained()
    assert not ctx.store.has(ctx.reference_spec())


def test_a_sweep_goes_on_past_a_diverging_job_and_resume_false_launches_every_job(
    shared_cache, tmp_path, monkeypatch, capsys
) -> None:
    conf = tmp_path / "conf" / "method"
    conf.mkdir(parents=True)
    (conf / "diverging.yaml").write_text(DIVERGING_YAML)
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "method=diverging,original",
        "eval.reference=false",
        f"hydra.sweep.dir={sweep}",
    ]
    assert unlearnbench_here(monkeypatch, *args, cache=shared_cache) == 0, capsys.readouterr().err[-3000:]
    (error_file,) = sweep.rglob("error.json")
    assert "method=diverging" in error_file.parent.name
    error = json.loads(error_file.read_text())
    assert error["type"] == "DivergenceError"
    assert f"the unlearning fit diverged at step {DIVERGE_AT}" in error["message"]
    assert not (error_file.parent / "results.json").exists()
    (done,) = sweep.rglob("results.json")
    assert "method=original" in done.parent.name  # the rest of the sweep went on
    assert "Failed runs" in (sweep / "results.md").read_text()

    # resume=false: the sweeper leaves nothing out, the finished job runs again.
    stamp = done.stat().st_mtime_ns
    capsys.readouterr()
    assert unlearnbench_here(monkeypatch, *args, "resume=false", cache=shared_cache) == 0
    output = "".join(capsys.readouterr())
    assert "Launching 2 jobs locally" in output and "left out" not in output and "skip (done)" not in output
    assert done.stat().st_mtime_ns != stamp and error_file.exists()

"""Each method does its own thing to the original model: changes it, or (original) keeps it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnbench.methods import METHODS
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_changes_the_weights_or_keeps_them(make_cfg, tmp_path, name: str) -> None:
    untrained = ("original", "ssd")  # no optimiser steps: nothing to budget
    budget = [] if name in untrained else ["method.lr=1e-3", "method.max_steps=3"]
    cfg = make_cfg(f"method={name}", *budget)
    ctx, method_cls, params = context(cfg, tmp_path)
    before = snapshot(ctx.original().model)
    outcome = method_cls.run(ctx, params)
    if name == "sisa":  # an ensemble of shard models, not theta_0: tests/test_sisa.py checks which changed
        assert outcome.info["n_retrained_shards"] > 0 and outcome.stats.steps > 0
        return
    after = outcome.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if name == "original":
        assert not changed and outcome.stats.seconds == 0
    else:
        assert changed, f"{name} left every weight as it was"
        assert outcome.stats.seconds > 0
        assert outcome.stats.steps == 0 if name in untrained else outcome.stats.steps > 0


def forget_loss(model, data) -> float:
    pred = predict(model, data.eval_loader("forget"))
    return float(F.cross_entropy(torch.from_numpy(pred.logits), torch.from_numpy(pred.labels)))


def test_gradient_ascent_raises_the_forget_loss(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "method=gradient_ascent", "method.lr=3e-3", "method.epochs=5", "method.forget_batch_size=4"
    )
    ctx, method_cls, params = context(cfg, tmp_path)
    before = forget_loss(ctx.original().model, ctx.data)
    outcome = method_cls.run(ctx, params)
    assert forget_loss(outcome.model, ctx.data) > before + 0.5


def test_gradient_ascent_stops_on_forget_accuracy(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "method=gradient_ascent",
        "method.lr=3e-3",
        "method.epochs=50",
        "method.forget_batch_size=4",
        "method.stop.rule=forget_accuracy_below",
        "method.stop.threshold=0.3",
        "method.stop.every_n_steps=1",
    )
    ctx, method_cls, params = context(cfg, tmp_path)
    outcome = method_cls.run(ctx, params)
    checks = outcome.info["stop_checks"]
    assert outcome.stats.stopped_early and checks[-1]["forget_accuracy"] <= 0.3
    assert all(c["forget_accuracy"] > 0.3 for c in checks[:-1])


def test_deepcut_pushes_forget_samples_out_of_their_class(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "method=deepcut", "method.lr=2e-3", "method.epochs=4", "method.stop.rule=none", "method.gamma=2"
    )
    ctx, method_cls, params = context(cfg, tmp_path)
    data = ctx.data
    before = predict(ctx.original().model, data.eval_loader("forget"))
    outcome = method_cls.run(ctx, params)
    after = predict(outcome.model, data.eval_loader("forget"))
    acc = lambda p: float(np.mean(p.preds == p.labels))  # noqa: E731
    assert acc(after) < acc(before)
    assert outcome.info["skipped_anchors"] == 0  # the stratified retain batches give every anchor negatives


def test_finetune_trains_on_retain_only(make_cfg, tmp_path) -> None:
    cfg = make_cfg("method=finetune")
    ctx, method_cls, params = context(cfg, tmp_path)
    module = method_cls(ctx.original().model, params, ctx.data)
    seen = {int(i) for batch in module.train_loader(0) for i in batch["index"]}
    assert seen == set(ctx.data.splits.retain.tolist())


def test_auto_stop_rule_follows_the_forget_set(make_cfg) -> None:
    from unlearnbench.methods.stop import StopParams, resolve_stop_rule

    _, _, data = prepare(make_cfg())
    assert resolve_stop_rule(StopParams(rule="auto"), data).rule == "forget_f1_below_val"
    _, _, whole = prepare(make_cfg("forget=class", "forget.class_name=tech", "forget.ratio=1.0"))
    stop = resolve_stop_rule(StopParams(rule="auto"), whole)
    assert (stop.rule, stop.threshold) == ("forget_accuracy_below", 0.05)
    assert resolve_stop_rule(StopParams(rule="none"), whole).rule == "none"


def test_stop_check_reads_at_most_val_max_samples(make_cfg) -> None:
    """stop.val_max_samples: each forget_f1_below_val check reads a fixed seeded sample of val (the same
    at every check, a subset of val); null reads all of it; a non-positive cap is refused."""
    from unlearnbench.errors import ConfigError
    from unlearnbench.methods.stop import StopOnForgetMetric, StopParams

    _, _, data = prepare(make_cfg())
    val = data.splits["val"]
    assert StopOnForgetMetric(data, StopParams(rule="forget_f1_below_val")).val_indices is None
    capped = StopOnForgetMetric(data, StopParams(rule="forget_f1_below_val", val_max_samples=5))
    again = StopOnForgetMetric(data, StopParams(rule="forget_f1_below_val", val_max_samples=5))
    assert len(capped.val_indices) == 5 and set(capped.val_indices) <= set(val.tolist())
    assert np.array_equal(capped.val_indices, again.val_indices)
    loader = data.eval_loader("val", indices=capped.val_indices)
    assert sorted(i for b in loader for i in b["index"].tolist()) == sorted(capped.val_indices.tolist())
    with pytest.raises(ConfigError, match=r"method\.stop\.val_max_samples"):
        prepare(make_cfg("method=deepcut", "method.stop.val_max_samples=0"))
    # forget_max_samples: the same for the forget set, under either rule
    forget = data.splits["forget"]
    assert (
        StopOnForgetMetric(data, StopParams(rule="forget_accuracy_below", threshold=0.1)).forget_indices
        is None
    )
    few = StopOnForgetMetric(
        data, StopParams(rule="forget_accuracy_below", threshold=0.1, forget_max_samples=3)
    )
    assert len(few.forget_indices) == 3 and set(few.forget_indices) <= set(forget.tolist())
    model = RunContext(make_cfg(), data, None, None).pretrained()  # type: ignore[arg-type]
    read, eval_loader = [], data.eval_loader
    data.eval_loader = lambda split, indices=None: (
        read.append((split, indices)) or eval_loader(split, indices=indices)
    )
    few._check(0, type("Module", (), {"model": model})())
    assert [s for s, _ in read] == ["forget"] and np.array_equal(read[0][1], few.forget_indices)
    with pytest.raises(ConfigError, match=r"method\.stop\.forget_max_samples"):
        prepare(make_cfg("method=deepcut", "method.stop.forget_max_samples=0"))


def test_a_stored_model_is_keyed_by_what_it_depends_on_not_by_the_method(make_cfg, tmp_path) -> None:
    """The original's spec names its data (fingerprint, training ids), base model, recipe, seed and
    precision: a method's settings (its stop rule, a knob added later) or the evaluation cannot split
    the store; the recipe and the training samples do."""

    def original_key(*overrides: str) -> str:
        cfg = make_cfg(*overrides)
        ctx = RunContext(cfg, prepare(cfg)[2], None, tmp_path)  # type: ignore[arg-type]
        return ctx.model_spec("original", sorted(ctx.data.sample_ids("train")), ctx.recipe).key()

    key = original_key("method=deepcut")
    assert original_key("method=deepcut", "method.stop.forget_max_samples=64", "eval.mia=false") == key
    assert original_key("method=gradient_ascent") == key
    assert original_key("method=deepcut", "data.origin=elsewhere") == key  # descriptive keys do not count
    assert original_key("method=deepcut", "train.lr=0.002") != key
    assert original_key("method=deepcut", "seed=1") != key

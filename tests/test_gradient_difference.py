"""gradient_difference: the retain term keeps D_r where gradient ascent loses it, while D_f is forgotten."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnbench.errors import ConfigError
from unlearnbench.methods.gradient_difference import GradientDifference
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict
from unlearnbench.tasks import get_task

# Same optimiser, step size and step count for both methods: 14 forget samples / 4 = 4 steps x 5 epochs.
BUDGET = ["method.lr=3e-3", "method.epochs=5", "method.forget_batch_size=4"]


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def split_stats(model, data, split: str) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on one split."""
    pred = predict(model, data.eval_loader(split))
    ce = F.cross_entropy(torch.from_numpy(pred.logits), torch.from_numpy(pred.labels))
    return float(np.mean(pred.preds == pred.labels)), float(ce)


def test_masked_ce_is_the_ce_of_the_selected_rows() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    mask = torch.tensor([True, False, True])
    assert get_task("sequence_classification").masked_ce(logits, labels, mask).item() == pytest.approx(
        F.cross_entropy(logits[[0, 2]], labels[[0, 2]]).item()
    )
    empty = get_task("sequence_classification").masked_ce(logits, labels, torch.zeros(3, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_each_step_pairs_a_forget_batch_with_a_retain_batch(make_cfg, tmp_path) -> None:
    cfg = make_cfg("method=gradient_difference", "method.forget_batch_size=4", "method.retain_batch_size=8")
    ctx, method_cls, params = context(cfg, tmp_path)
    module = method_cls(ctx.original().model, params, ctx.data)
    batches = list(module.train_loader(0))
    forget = set(ctx.data.splits.forget.tolist())
    assert len(batches) == -(-len(forget) // 4)  # one epoch = one pass over D_f
    for batch in batches:
        is_forget = batch["is_forget"]
        assert 1 <= int(is_forget.sum()) <= 4 and int((~is_forget).sum()) == 8
        assert {int(i) for i in batch["index"][is_forget]} <= forget
        assert not {int(i) for i in batch["index"][~is_forget]} & forget


@pytest.mark.parametrize(
    ("override", "key"), [("method.alpha=0", "method.alpha"), ("method.retain_batch_size=0", "retain")]
)
def test_bad_params_are_refused(make_cfg, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        GradientDifference.parse_params(make_cfg("method=gradient_difference", override).method)


def test_keeps_the_retain_set_where_gradient_ascent_loses_it(make_cfg, tmp_path) -> None:
    runs = {}
    for name in ("gradient_ascent", "gradient_difference"):
        ctx, method_cls, params = context(make_cfg(f"method={name}", *BUDGET), tmp_path / name)
        forget_before = split_stats(ctx.original().model, ctx.data, "forget")
        outcome = method_cls.run(ctx, params)
        runs[name] = {
            "steps": outcome.stats.steps,
            "forget": split_stats(outcome.model, ctx.data, "forget"),
            "retain": split_stats(outcome.model, ctx.data, "retain"),
        }
    ga, gd = runs["gradient_ascent"], runs["gradient_difference"]
    assert ga["steps"] == gd["steps"] == 20
    # Forgets: the forget loss rises well above the original's (about 0.3 on the tiny model).
    assert gd["forget"][1] > forget_before[1] + 1.0
    # Keeps D_r: gradient ascent drags the retain set down with the forget set; the retain term holds it.
    assert gd["retain"][0] >= ga["retain"][0] + 0.15
    assert gd["retain"][1] < 0.5 * ga["retain"][1]

"""random_label: drawn labels are never the true ones, and training on them moves forget predictions off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnbench.methods.random_label import wrong_labels
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def accuracy(model, data, split: str) -> float:
    pred = predict(model, data.eval_loader(split))
    return float(np.mean(pred.preds == pred.labels))


@pytest.mark.parametrize("num_labels", [2, 3, 5])
def test_wrong_labels_are_never_the_true_label_and_uniform_over_the_others(num_labels: int) -> None:
    labels = torch.arange(num_labels).repeat(3000)
    drawn = wrong_labels(labels, num_labels, torch.Generator().manual_seed(0))
    assert drawn.shape == labels.shape and drawn.dtype == labels.dtype
    assert bool((drawn != labels).all())
    assert bool(((drawn >= 0) & (drawn < num_labels)).all())
    for y in range(num_labels):
        counts = torch.bincount(drawn[labels == y], minlength=num_labels).float() / 3000
        others = [c for c in range(num_labels) if c != y]
        assert counts[y] == 0
        assert torch.allclose(counts[others], torch.full((num_labels - 1,), 1 / (num_labels - 1)), atol=0.03)
    same_seed = wrong_labels(labels, num_labels, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, same_seed)


def test_wrong_labels_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="two classes"):
        wrong_labels(torch.zeros(3, dtype=torch.long), 1)


def test_fixed_labels_stay_put_and_per_step_labels_are_redrawn(make_cfg, tmp_path) -> None:
    targets = {}
    for mode in ("fixed", "per_step"):
        cfg = make_cfg("method=random_label", f"method.relabel={mode}", "method.forget_batch_size=4")
        ctx, method_cls, params = context(cfg, tmp_path)
        module = method_cls(ctx.original().model, params, ctx.data)
        batch = next(iter(module.train_loader(ctx.seed)))
        is_forget = batch["is_forget"]
        runs = []
        for step in range(20):
            got = module.relabelled(batch, step=step)
            assert bool((got[is_forget] != batch["labels"][is_forget]).all())  # forget rows: always wrong
            assert torch.equal(got[~is_forget], batch["labels"][~is_forget])  # retain rows: untouched
            runs.append(got[is_forget])
        targets[mode] = runs
        assert torch.equal(module.relabelled(batch, step=3), module.relabelled(batch, step=3))  # seeded
    assert all(torch.equal(t, targets["fixed"][0]) for t in targets["fixed"])
    assert len({tuple(t.tolist()) for t in targets["per_step"]}) > 1


def test_forget_predictions_leave_their_labels_and_retain_ones_stay(make_cfg, tmp_path) -> None:
    cfg = make_cfg("method=random_label", "method.lr=5e-3", "method.epochs=5", "method.forget_batch_size=4")
    ctx, method_cls, params = context(cfg, tmp_path)
    before = accuracy(ctx.original().model, ctx.data, "forget")
    module = method_cls(ctx.original().model, params, ctx.data)
    outcome = module.fit(ctx)
    assert outcome.stats.steps == 20
    after = accuracy(outcome.model, ctx.data, "forget")
    assert before >= 0.9 and after <= before - 0.5
    assert accuracy(outcome.model, ctx.data, "retain") >= 0.7  # the retain CE keeps D_r
    # With fixed labels, the forget samples go where they were sent: mostly to their drawn label.
    pred = predict(outcome.model, ctx.data.eval_loader("forget"))
    drawn = module.fixed_labels[torch.from_numpy(pred.indices)].numpy()
    assert float(np.mean(pred.preds == drawn)) >= 0.5

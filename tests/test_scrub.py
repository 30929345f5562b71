"""scrub: the student keeps to its frozen teacher on D_r and leaves it on D_f; the teacher never moves."""

from __future__ import annotations

import math

import pytest
import torch

from unlearnbench.methods.scrub import Scrub, distill_kl
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict

# Same optimiser, step size and step count for scrub and gradient ascent: 4 steps x 5 epochs.
BUDGET = ["method.lr=3e-3", "method.epochs=5", "method.forget_batch_size=4"]


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def kl_to(reference, model, data, split: str) -> float:
    """KL(p_reference || p_model) on a split, mean over samples, at temperature 1 (eval mode)."""
    ref = torch.from_numpy(predict(reference, data.eval_loader(split)).logits)
    got = torch.from_numpy(predict(model, data.eval_loader(split)).logits)
    return float(distill_kl(got, ref, 1.0))


def test_distill_kl_matches_hand_computation() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # p_t = (3/4, 1/4) at T = 1
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distill_kl(student, teacher, 1.0).item() == pytest.approx(expected, abs=1e-6)
    # At T = 2: p_t = softmax(log(3)/2, 0) = (sqrt3, 1) / (1 + sqrt3), scaled by T^2 = 4.
    q = math.sqrt(3.0) / (1.0 + math.sqrt(3.0))
    expected_t2 = 4.0 * (q * math.log(q / 0.5) + (1 - q) * math.log((1 - q) / 0.5))
    assert distill_kl(student, teacher, 2.0).item() == pytest.approx(expected_t2, abs=1e-6)
    # Mean over rows, zero where student == teacher, and no rows: 0 (not NaN).
    two = distill_kl(torch.cat([student, teacher]), torch.cat([teacher, teacher]), 1.0)
    assert two.item() == pytest.approx(expected / 2, abs=1e-6)
    assert distill_kl(torch.zeros(0, 2), torch.zeros(0, 2), 4.0).item() == 0.0


def test_the_max_term_is_switched_off_after_forget_epochs(make_cfg, tmp_path, monkeypatch) -> None:
    cfg = make_cfg("method=scrub", "method.forget_epochs=2", "method.gamma=0.5")
    ctx, method_cls, params = context(cfg, tmp_path)
    module = method_cls(ctx.original().model, params, ctx.data)
    weights = []
    for epoch in range(4):
        monkeypatch.setattr(Scrub, "current_epoch", property(lambda self, e=epoch: e))
        weights.append(module.forget_weight())
    assert weights == [0.5, 0.5, 0.0, 0.0]


def test_forgets_away_from_the_teacher_keeps_retain_close_and_teacher_frozen(make_cfg, tmp_path) -> None:
    ctx, method_cls, params = context(make_cfg("method=scrub", *BUDGET), tmp_path / "scrub")
    teacher = ctx.frozen_original()
    before = snapshot(teacher)
    module = method_cls(ctx.original().model, params, ctx.data, reference=teacher)
    outcome = module.fit(ctx)

    # The teacher: the same weights, frozen, in eval mode, outside the optimizer and the state dict.
    assert module.reference is teacher
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    optimized = {id(p) for opt in module.trainer.optimizers for g in opt.param_groups for p in g["params"]}
    assert optimized and not optimized & {id(p) for p in teacher.parameters()}
    assert optimized == {id(p) for p in module.model.parameters()}
    assert all(k.startswith("model.") for k in module.state_dict())

    # The student moved away from the teacher on D_f, and stayed close to it on D_r...
    reference = ctx.frozen_original()
    scrub_retain, scrub_forget = (kl_to(reference, outcome.model, ctx.data, s) for s in ("retain", "forget"))
    assert scrub_forget > 0.5 and scrub_forget > 2 * scrub_retain
    # ...far closer than gradient ascent, with the same budget, keeps it.
    ga_ctx, ga_cls, ga_params = context(make_cfg("method=gradient_ascent", *BUDGET), tmp_path / "ga")
    ga = ga_cls.run(ga_ctx, ga_params)
    assert ga.stats.steps == outcome.stats.steps == 20
    assert scrub_retain < 0.25 * kl_to(reference, ga.model, ga_ctx.data, "retain")

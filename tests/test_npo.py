"""npo: the loss by hand, its gradient as faded gradient ascent, and a forget loss that rises more slowly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unlearnbench.errors import ConfigError
from unlearnbench.methods.npo import Npo, npo_loss
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict

# Same optimiser, step size and step count for npo and gradient ascent: 4 steps x 5 epochs.
BUDGET = ["method.lr=5e-3", "method.epochs=5", "method.forget_batch_size=4"]


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def forget_loss(model, data) -> float:
    pred = predict(model, data.eval_loader("forget"))
    return float(F.cross_entropy(torch.from_numpy(pred.logits), torch.from_numpy(pred.labels)))


def test_npo_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    ref_logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    beta = 0.5
    ratio_0 = 0.5 / 0.75  # p_theta(0|x_0) = 1/2, p_ref(0|x_0) = 3/4
    ratio_1 = (1.0 / (1.0 + math.exp(2.0))) / 0.5  # p_theta(1|x_1) = 1/(1+e^2), p_ref(1|x_1) = 1/2
    expected = 2.0 / beta * (math.log(1 + ratio_0**beta) + math.log(1 + ratio_1**beta)) / 2
    assert npo_loss(logits, ref_logits, labels, beta).item() == pytest.approx(expected, abs=1e-6)
    # theta = ref: log(2) * 2/beta whatever the inputs; no rows: 0.
    assert npo_loss(ref_logits, ref_logits, labels, beta).item() == pytest.approx(2 / beta * math.log(2))
    assert npo_loss(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), beta).item() == 0


def grad_wrt_logits(loss_fn, logits: torch.Tensor) -> torch.Tensor:
    z = logits.clone().requires_grad_(True)
    loss_fn(z).backward()
    return z.grad


@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0])
def test_npo_gradient_is_gradient_ascent_faded_by_the_log_ratio(beta: float) -> None:
    gen = torch.Generator().manual_seed(0)
    ref_logits = torch.randn(6, 4, generator=gen)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    logits = ref_logits + torch.randn(6, 4, generator=gen)

    def ascent(z: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(z, labels)

    npo = grad_wrt_logits(lambda z: npo_loss(z, ref_logits, labels, beta), logits)
    log_ratio = F.cross_entropy(ref_logits, labels, reduction="none") - F.cross_entropy(
        logits, labels, reduction="none"
    )
    weight = 2 * torch.sigmoid(beta * log_ratio)  # per sample: 1 at theta = ref, -> 0 once forgotten
    assert torch.allclose(npo, weight[:, None] * grad_wrt_logits(ascent, logits), atol=1e-6)
    # At theta = ref it is exactly gradient ascent's gradient.
    at_ref = grad_wrt_logits(lambda z: npo_loss(z, ref_logits, labels, beta), ref_logits)
    assert torch.allclose(at_ref, grad_wrt_logits(ascent, ref_logits), atol=1e-6)


def test_retain_batch_only_for_npo_rt(make_cfg, tmp_path) -> None:
    for weight, expect_retain in ((0.0, False), (1.0, True)):
        cfg = make_cfg("method=npo", f"method.retain_weight={weight}", "method.retain_batch_size=8")
        ctx, method_cls, params = context(cfg, tmp_path)
        module = method_cls(ctx.original().model, params, ctx.data)
        has_retain = [bool((~b["is_forget"]).any()) for b in module.train_loader(0)]
        assert all(has_retain) if expect_retain else not any(has_retain)
    with pytest.raises(ConfigError, match="retain_batch_size"):
        Npo.parse_params(
            make_cfg("method=npo", "method.retain_weight=1", "method.retain_batch_size=0").method
        )
    with pytest.raises(ConfigError, match="beta"):
        Npo.parse_params(make_cfg("method=npo", "method.beta=0").method)


def test_raises_the_forget_loss_more_slowly_than_gradient_ascent(make_cfg, tmp_path) -> None:
    ctx, method_cls, params = context(make_cfg("method=npo", "method.beta=1", *BUDGET), tmp_path / "npo")
    before = forget_loss(ctx.original().model, ctx.data)
    reference = ctx.frozen_original()
    reference_before = {k: v.clone() for k, v in reference.state_dict().items()}
    module = method_cls(ctx.original().model, params, ctx.data, reference=reference)
    npo = module.fit(ctx)
    # The reference is frozen, outside the optimizer, and unchanged.
    optimized = {id(p) for opt in module.trainer.optimizers for g in opt.param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in reference.parameters()} and not reference.training
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in reference_before.items())

    ga_ctx, ga_cls, ga_params = context(make_cfg("method=gradient_ascent", *BUDGET), tmp_path / "ga")
    ga = ga_cls.run(ga_ctx, ga_params)
    assert npo.stats.steps == ga.stats.steps == 20
    npo_gain = forget_loss(npo.model, ctx.data) - before
    ga_gain = forget_loss(ga.model, ga_ctx.data) - before
    assert npo_gain > 0.5  # it forgets: the forget loss rises (from about 0.3)
    # ...but the push fades as samples are forgotten, where gradient ascent keeps climbing
    # (measured: about 2.3 against 5.3; the margin is generous).
    assert npo_gain < 0.75 * ga_gain

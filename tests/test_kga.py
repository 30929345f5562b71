"""kga: the loss by hand and zero when A*'s forget gap equals the extra-set gap, one step moves the
gap toward alignment, A_f and A_n come from the store on a second run (a sweep over KGA's knobs does
not retrain them), the frozen models stay frozen, a token task runs, and bad values are refused."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from unlearnbench.errors import ConfigError
from unlearnbench.methods.kga import Kga, row_kl
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext

# A_f and A_n trained for 3 epochs (a few steps each on the tiny data), not train.epochs = 20.
GAP = ["method.gap_recipe.epochs=3"]


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def test_row_kl_matches_hand_computation() -> None:
    p = torch.tensor([[math.log(3.0), 0.0]])  # (3/4, 1/4)
    q = torch.tensor([[0.0, 0.0]])  # (1/2, 1/2)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert row_kl(p, q).item() == pytest.approx(expected, abs=1e-6)
    assert row_kl(q, q).item() == 0.0
    empty = torch.zeros(0, 2, requires_grad=True)
    assert row_kl(empty, empty).item() == 0.0


def module_with(ctx, params, forget_model, extra_model) -> Kga:
    return Kga(
        copy.deepcopy(ctx.original().model),
        params,
        ctx.data,
        reference=ctx.frozen_original(),
        forget_model=forget_model,
        extra_model=extra_model,
    )


def a_batch(module: Kga) -> dict[str, torch.Tensor]:
    return next(iter(module.train_loader(0)))


def test_the_loss_is_the_gap_difference_and_zero_when_the_gaps_are_equal(make_cfg, tmp_path) -> None:
    ctx, _, params = context(make_cfg("method=kga", "method.alpha=0.5", *GAP), tmp_path)
    original = ctx.original().model
    # A_f = A* and A_n = A_D: both gaps are 0, and A* = A_D on D_r: L = 0 exactly.
    same = module_with(ctx, params, copy.deepcopy(original), ctx.frozen_original())
    same.model.eval()  # no dropout, so A* and its copies give the same logits
    batch = a_batch(same)
    terms = same.loss_terms(batch)
    assert same.extra_gap() == 0.0 and terms["forget_gap"].item() == pytest.approx(0.0, abs=1e-6)
    assert same.combine(terms).item() == pytest.approx(0.0, abs=1e-6)

    # Real gap models: L = |g_f - G_n| + alpha * KL_r by hand, and 0 in the first term when G_n = g_f.
    forget, extra = (Kga.gap_model(ctx, role, params).model for role in ("forget", "extra"))
    module = module_with(ctx, params, forget, extra)
    module.model.eval()
    terms = module.loss_terms(batch)
    g_n, g_f = module.extra_gap(), terms["forget_gap"].item()
    assert g_n > 0 and g_f > 0
    assert terms["align"].item() == pytest.approx(abs(g_f - g_n), rel=1e-5)
    assert module.combine(terms).item() == pytest.approx(abs(g_f - g_n) + 0.5 * terms["retain_kl"].item())
    module._extra_gap = g_f  # an extra-set gap equal to A*'s forget gap: nothing left to align
    assert module.loss_terms(batch)["align"].item() == pytest.approx(0.0, abs=1e-6)


def test_one_step_moves_the_forget_gap_toward_the_extra_set_gap(make_cfg, tmp_path) -> None:
    ctx, _, params = context(
        make_cfg("method=kga", "method.alpha=0", "method.forget_batch_size=16", *GAP), tmp_path
    )
    forget, extra = (Kga.gap_model(ctx, role, params).model for role in ("forget", "extra"))
    module = module_with(ctx, params, forget, extra)
    module.model.eval()
    batch = a_batch(module)
    before = module.loss_terms(batch)["align"].item()
    optimizer = torch.optim.SGD(module.model.parameters(), lr=0.05)
    module.combine(module.loss_terms(batch)).backward()
    optimizer.step()
    after = module.loss_terms(batch)["align"].item()
    assert after < before - 1e-3, (before, after)


def test_gap_models_are_stored_once_and_frozen(make_cfg, tmp_path, monkeypatch) -> None:
    # Its own gap recipe (2 epochs): keys no other test stores, so the first run trains them.
    budget = ["method.max_steps=2", "method.lr=1e-3", "method.gap_recipe.epochs=2"]
    ctx, method_cls, params = context(make_cfg("method=kga", *budget), tmp_path / "a")
    first = method_cls.run(ctx, params)
    assert not first.info["forget_model"]["from_cache"] and not first.info["extra_model"]["from_cache"]
    assert first.stats.steps > 2  # A*'s 2 steps and A_f's fit: A_f is part of the request's cost
    assert first.info["unlearn_fit_seconds"] < first.stats.seconds

    # A sweep point with other KGA knobs: the same A_f and A_n, read from the store, not trained.
    other = make_cfg(
        "method=kga", "method.alpha=1.0", "method.lr=5e-4", "method.max_steps=1", "method.gap_recipe.epochs=2"
    )
    ctx2, _, params2 = context(other, tmp_path / "b")
    monkeypatch.setattr(RunContext, "fine_tune", lambda *a, **k: pytest.fail("a gap model was retrained"))
    reference = ctx2.frozen_original()
    forget = Kga.gap_model(ctx2, "forget", params2)
    extra = Kga.gap_model(ctx2, "extra", params2)
    assert forget.hit and extra.hit
    assert (
        forget.key == first.info["forget_model"]["cache_key"]
        and extra.key == first.info["extra_model"]["cache_key"]
    )
    frozen = [reference, forget.model, extra.model]
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in frozen]
    module = Kga(
        ctx2.original().model,
        params2,
        ctx2.data,
        reference=reference,
        forget_model=forget.model,
        extra_model=extra.model,
    )
    second = module.fit(ctx2)
    assert second.stats.steps == 1
    optimized = {id(p) for opt in module.trainer.optimizers for g in opt.param_groups for p in g["params"]}
    for model, state in zip(frozen, states, strict=True):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        assert not optimized & {id(p) for p in model.parameters()}
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    # Their keys depend on what they are trained on and how, not on KGA's knobs.
    spec = Kga.gap_model_spec(ctx2, "forget", params2)
    assert spec.key() == Kga.gap_model_spec(ctx, "forget", params).key()
    retuned = context(
        make_cfg("method=kga", "method.gap_recipe.epochs=2", "method.gap_recipe.lr=1e-3"), tmp_path / "c"
    )
    assert Kga.gap_model_spec(retuned[0], "forget", retuned[2]).key() != spec.key()
    assert Kga.gap_model_spec(ctx2, "extra", params2).key() != spec.key()


def test_runs_on_a_token_task(make_cfg, tmp_path) -> None:
    cfg = make_cfg("data=wnut16", "data.max_samples=120", "method=kga", "method.max_steps=2", *GAP)
    ctx, method_cls, params = context(cfg, tmp_path)
    outcome = method_cls.run(ctx, params)
    assert (
        outcome.stats.steps > 2 and math.isfinite(outcome.info["extra_gap"]) and outcome.info["extra_gap"] > 0
    )
    batch = next(iter(ctx.data.eval_loader("test")))
    logits = outcome.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.dim() == 3 and logits.shape[-1] == ctx.data.num_labels


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["method.alpha=-1"], "method.alpha"),
        (["method.alpha=0.5", "method.retain_batch_size=0"], "method.retain_batch_size"),
        (["method.gap_recipe.lr=0"], "method.gap_recipe.lr"),
        (["method.gap_recipe.batch_size=0"], "method.gap_recipe.batch_size"),
    ],
)
def test_bad_values_are_refused_in_one_line(make_cfg, overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Kga.parse_params(make_cfg("method=kga", *overrides).method)
    assert err.value.key == key and "\n" not in str(err.value)


def test_alpha_zero_needs_no_retain_batch_and_d_n_must_exist(make_cfg) -> None:
    params = Kga.parse_params(make_cfg("method=kga", "method.alpha=0", "method.retain_batch_size=0").method)
    assert params.retain_batch_size == 0
    with pytest.raises(ConfigError, match=r"data\.val_fraction.*validation split"):
        prepare(make_cfg("method=kga", "data.val_fraction=0"))

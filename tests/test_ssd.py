"""ssd: exactly the parameters whose forget importance exceeds alpha x the data importance are
dampened (the rest bit-identical), alpha and lambda act monotonically, it runs on a token task, its
cost is reported, and bad values are refused in one line."""

from __future__ import annotations

import copy

import pytest
import torch

from unlearnbench.errors import ConfigError
from unlearnbench.methods.ssd import Ssd, dampen, importance
from unlearnbench.pipeline import prepare
from unlearnbench.runtime import ModelStore, RunContext


def context(cfg, run_dir) -> tuple[RunContext, type, object]:
    method_cls, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), method_cls, params


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_dampen_scales_exactly_the_selected_parameters() -> None:
    theta = {"w": torch.tensor([1.0, -2.0, 3.0, 4.0, 5.0]), "b": torch.tensor([7.0, -1.5])}
    data = {"w": torch.tensor([1.0, 1.0, 0.0, 2.0, 0.5]), "b": torch.tensor([1.0, 0.0])}
    forget = {"w": torch.tensor([5.0, 20.0, 3.0, 20.0, 0.0]), "b": torch.tensor([1.0, 0.0])}
    before = {k: v.clone() for k, v in theta.items()}
    report = dampen(theta, data, forget, alpha=9.0, lam=2.0)
    # w[1]: 20 > 9 x 1, beta = 2 x 1 / 20; w[2]: I_D = 0 < I_f, beta = 0; w[3]: 20 > 18, beta = 4 / 20.
    # w[0] (5 < 9), w[4] (I_f = 0) and all of b are not selected and stay bit for bit.
    expected_w = torch.tensor([1.0, -2.0 * 0.1, 0.0, 4.0 * 0.2, 5.0])
    assert torch.allclose(theta["w"], expected_w)
    assert torch.equal(theta["w"][[0, 4]], before["w"][[0, 4]]) and torch.equal(theta["b"], before["b"])
    assert report["selected"] == 3 and report["parameters"] == 7
    assert report["mean_beta"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
    # beta is capped at 1: a large lambda never grows a parameter
    grown = {"w": torch.tensor([2.0])}
    dampen(grown, {"w": torch.tensor([1.0])}, {"w": torch.tensor([20.0])}, alpha=1.0, lam=100.0)
    assert torch.equal(grown["w"], torch.tensor([2.0]))


@pytest.fixture
def tiny_importances(make_cfg, tmp_path):
    ctx, _, params = context(make_cfg("method=ssd"), tmp_path)
    model = ctx.original().model
    data = ctx.data
    i_data, *_ = importance(model, data.index_loader(data.splits.train, params.batch_size, 0), data)
    i_forget, *_ = importance(model, data.index_loader(data.splits.forget, params.batch_size, 0), data)
    return model, i_data, i_forget


def test_the_run_dampens_only_where_forget_importance_exceeds_alpha_times_data(make_cfg, tmp_path) -> None:
    ctx, method_cls, params = context(make_cfg("method=ssd"), tmp_path)
    data, model = ctx.data, ctx.original().model
    before = snapshot(model)
    # The importances the run will compute (eval mode, the same batches: same seed, same loaders).
    seed = ctx.unlearn_seed
    i_data, n_data, s_data = importance(
        model, data.index_loader(data.splits.train, params.batch_size, seed), data
    )
    i_forget, n_forget, s_forget = importance(
        model, data.index_loader(data.splits.forget, params.batch_size, seed), data
    )
    outcome = method_cls.run(ctx, params)
    after = dict(outcome.model.named_parameters())
    selected = changed = 0
    for name, old in before.items():
        chosen = i_forget[name] > params.alpha * i_data[name]
        moved = after[name].detach() != old
        assert not (moved & ~chosen).any(), f"{name}: a parameter outside the selection moved"
        assert torch.equal(after[name].detach()[~chosen], old[~chosen])
        # alpha = 10 > lambda = 1: every selected beta is < 1/10, so every nonzero selected value moves
        assert bool((moved | (old == 0))[chosen].all()), name
        selected += int(chosen.sum())
        changed += int(moved.sum())
    info, stats = outcome.info, outcome.stats
    assert 0 < changed <= selected == info["selected"] < info["parameters"]
    assert info["importance_batches"] == {"data": n_data, "forget": n_forget}
    assert stats.samples == s_data + s_forget == len(data.splits.train) + len(data.splits.forget)
    assert stats.seconds > 0 and stats.steps == 0  # retrain-free: no optimiser step


def test_larger_alpha_selects_fewer_and_larger_lambda_dampens_less(tiny_importances) -> None:
    model, i_data, i_forget = tiny_importances
    original = snapshot(model)

    def dampened(alpha: float, lam: float) -> tuple[dict, dict[str, torch.Tensor]]:
        theta = {k: v.clone() for k, v in original.items()}
        return dampen(theta, i_data, i_forget, alpha, lam), theta

    counts = [dampened(alpha, 1.0)[0]["selected"] for alpha in (1.0, 10.0, 100.0)]
    assert counts[0] > counts[1] > 0 and counts[1] >= counts[2]

    def distance(theta: dict[str, torch.Tensor]) -> float:
        return float(sum((theta[k] - original[k]).abs().sum() for k in original))

    moved = [distance(dampened(10.0, lam)[1]) for lam in (0.1, 1.0, 5.0)]
    assert moved[0] > moved[1] > moved[2] > 0
    # the selection does not depend on lambda
    assert len({dampened(10.0, lam)[0]["selected"] for lam in (0.1, 1.0, 5.0)}) == 1


def test_batch_caps_and_the_token_task(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "data=wnut16",
        "data.max_samples=120",
        "method=ssd",
        "method.batch_size=8",
        "method.data_batches=2",
        "method.forget_batches=1",
    )
    ctx, method_cls, params = context(cfg, tmp_path)
    before = snapshot(copy.deepcopy(ctx.original().model))
    outcome = method_cls.run(ctx, params)
    assert outcome.info["importance_batches"] == {"data": 2, "forget": 1}
    assert outcome.stats.samples == 2 * 8 + min(8, len(ctx.data.splits.forget))
    assert outcome.info["selected"] > 0
    after = dict(outcome.model.named_parameters())
    assert any(not torch.equal(after[k].detach(), v) for k, v in before.items())
    batch = next(iter(ctx.data.eval_loader("test")))
    logits = outcome.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.dim() == 3 and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("method.alpha=0", "method.alpha"),
        ("method.lambda=-1", "method.lambda"),
        ("method.lambda=abc", "method.lambda"),
        ("method.batch_size=0", "method.batch_size"),
        ("method.data_batches=0", "method.data_batches"),
        ("method.forget_batches=-2", "method.forget_batches"),
    ],
)
def test_bad_values_are_refused_in_one_line(make_cfg, override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Ssd.parse_params(make_cfg("method=ssd", override).method)
    assert err.value.key == key and "\n" not in str(err.value)

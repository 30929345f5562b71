"""DeepCUT: the loss against hand-computed values, its gradient direction, and the method's parts."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from unlearnbench.methods.deepcut import (
    DeepCut,
    contrastive_forget_loss,
    contrastive_forget_terms,
    supervised_contrastive_loss,
)
from unlearnbench.pipeline import prepare

# Four unit vectors in 2-D: two of class 1, two of class 0.
RETAIN_Z = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
RETAIN_Y = torch.tensor([1, 1, 0, 0])


def test_loss_matches_hand_computation_for_both_denominators() -> None:
    anchor = torch.tensor([[1.0, 0.0]])  # class 0: positives r0, r1 (s = 0, -1); negatives r2, r3 (s = 1, 0)
    tau = 0.5
    # s/tau: positives 0 and -2, negatives 2 and 0.
    log_all = math.log(math.exp(0) + math.exp(-2) + math.exp(2) + math.exp(0))
    log_neg = math.log(math.exp(2) + math.exp(0))
    expected_all = -0.5 * ((0 - log_all) + (-2 - log_all))
    expected_neg = -0.5 * ((0 - log_neg) + (-2 - log_neg))
    got_all = contrastive_forget_loss(anchor, torch.tensor([0]), RETAIN_Z, RETAIN_Y, tau=tau)
    got_neg = contrastive_forget_loss(
        anchor, torch.tensor([0]), RETAIN_Z, RETAIN_Y, tau=tau, denominator="negatives"
    )
    assert got_all.item() == pytest.approx(expected_all, abs=1e-6)
    assert got_neg.item() == pytest.approx(expected_neg, abs=1e-6)


def test_loss_is_the_mean_over_anchors() -> None:
    a = torch.tensor([[1.0, 0.0]])
    b = F.normalize(torch.tensor([[0.6, 0.8]]), dim=1)
    tau = 0.3
    la = contrastive_forget_loss(a, torch.tensor([0]), RETAIN_Z, RETAIN_Y, tau=tau)
    lb = contrastive_forget_loss(b, torch.tensor([1]), RETAIN_Z, RETAIN_Y, tau=tau)
    both = contrastive_forget_loss(torch.cat([a, b]), torch.tensor([0, 1]), RETAIN_Z, RETAIN_Y, tau=tau)
    assert both.item() == pytest.approx((la.item() + lb.item()) / 2, abs=1e-6)


@pytest.mark.parametrize("denominator", ["all", "negatives"])
def test_gradient_step_moves_anchor_to_other_class_and_away_from_own(denominator: str) -> None:
    own, other = (
        F.normalize(torch.tensor([[1.0, 0.2], [1.0, -0.2]]), dim=1),
        F.normalize(torch.tensor([[-0.2, 1.0], [0.2, 1.0]]), dim=1),
    )
    retain_z, retain_y = torch.cat([own, other]), torch.tensor([0, 0, 1, 1])
    raw = torch.tensor([[1.0, 0.5]], requires_grad=True)  # a class-0 anchor near its own cluster

    def sims() -> tuple[float, float]:
        z = F.normalize(raw, dim=1)
        return float((z @ own.mean(0)).item()), float((z @ other.mean(0)).item())

    own_before, other_before = sims()
    loss = contrastive_forget_loss(
        F.normalize(raw, dim=1), torch.tensor([0]), retain_z, retain_y, 0.5, denominator
    )
    loss.backward()
    with torch.no_grad():
        raw -= 0.1 * raw.grad
    own_after, other_after = sims()
    assert other_after > other_before and own_after < own_before


@pytest.mark.parametrize("retain_y", [torch.tensor([1, 1, 1, 1]), torch.tensor([0, 0, 0, 0])])
def test_missing_class_gives_zero_loss_and_zero_gradient(retain_y: torch.Tensor) -> None:
    anchor = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss, skipped = contrastive_forget_terms(anchor, torch.tensor([0]), RETAIN_Z, retain_y, 0.1)
    loss.backward()
    assert skipped == 1 and loss.item() == 0.0
    assert torch.equal(anchor.grad, torch.zeros_like(anchor)) and not torch.isnan(anchor.grad).any()


def test_supcon_is_lower_for_tight_clusters() -> None:
    y = torch.tensor([0, 0, 1, 1])
    tight = F.normalize(torch.tensor([[1.0, 0.01], [1.0, -0.01], [-1.0, 0.01], [-1.0, -0.01]]), dim=1)
    mixed = F.normalize(torch.tensor([[1.0, 0.01], [-1.0, -0.01], [-1.0, 0.01], [1.0, -0.01]]), dim=1)
    assert supervised_contrastive_loss(tight, y, 0.1) < supervised_contrastive_loss(mixed, y, 0.1)


def _module(make_cfg, *overrides: str) -> tuple[DeepCut, dict]:
    cfg = make_cfg("method=deepcut", *overrides)
    method_cls, params, data = prepare(cfg)
    from unlearnbench.models import build_pretrained

    model = build_pretrained(cfg.model, data.num_labels, len(data.tokenizer), task=data.task)
    module = method_cls(model, params, data)
    batch = next(iter(module.train_loader(seed=0)))
    return module, batch


def test_views_differ_with_dropout_and_agree_without(make_cfg) -> None:
    module, batch = _module(make_cfg, "method.views=2")
    ids, mask = batch["input_ids"][:1].repeat(2, 1), batch["attention_mask"][:1].repeat(2, 1)

    def views() -> torch.Tensor:
        states = module.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        pair = {"is_forget": torch.ones(2, dtype=torch.bool), "index": torch.zeros(2)}
        pair["labels"] = torch.zeros(2)
        return module.unit_z(states, mask, module.task.units(pair, 1))

    module.model.train()
    z = views()
    assert not torch.allclose(z[0], z[1])
    module.model.eval()
    z = views()
    assert torch.allclose(z[0], z[1])


def test_gamma_zero_is_exactly_the_retain_cross_entropy_step(make_cfg) -> None:
    module, batch = _module(make_cfg, "method.gamma=0", "method.views=2")
    for m in module.model.modules():  # no dropout, so both sides see the same numbers
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    reference = copy.deepcopy(module.model)
    retain = ~batch["is_forget"]

    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    terms = module.loss_terms(batch)
    (terms["ce"] + 0.0 * terms["forget"] + 0.0 * terms["keep"]).backward()
    opt.step()

    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    logits = reference(
        input_ids=batch["input_ids"][retain], attention_mask=batch["attention_mask"][retain]
    ).logits
    F.cross_entropy(logits, batch["labels"][retain]).backward()
    ref_opt.step()
    for (name, p), q in zip(module.model.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_deep_variant_and_projection_head_run(make_cfg) -> None:
    module, batch = _module(
        make_cfg, "method.layers=[-1,-2]", "method.projection_dim=16", "method.lambda_keep=0.5"
    )
    terms = module.loss_terms(batch)
    assert all(torch.isfinite(t) for t in terms.values()) and terms["forget"] > 0 and terms["keep"] > 0
    loss = terms["ce"] + terms["forget"] + terms["keep"]
    loss.backward()
    assert module.projection[0].weight.grad is not None


def test_bad_layer_index_is_refused(make_cfg) -> None:
    from unlearnbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"method\.layers"):
        _module(make_cfg, "method.layers=[7]")


def test_extra_negatives_give_whole_class_anchors_a_loss() -> None:
    anchors = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1]]), dim=1)  # two forget samples, class 0
    retain_y = torch.tensor([1, 1, 1, 1])  # the retain set lacks class 0
    alone, skipped = contrastive_forget_terms(anchors, torch.tensor([0, 0]), RETAIN_Z, retain_y, 0.5)
    assert skipped == 2 and alone.item() == 0.0
    mask = torch.tensor([[False, True], [True, False]])  # each anchor's negative: the other forget sample
    loss, skipped = contrastive_forget_terms(
        anchors, torch.tensor([0, 0]), RETAIN_Z, retain_y, 0.5, "all", anchors, mask
    )
    s = anchors @ RETAIN_Z.T / 0.5
    s_other = (anchors[0] @ anchors[1]) / 0.5
    by_hand = -(s[0] - torch.logsumexp(torch.cat([s[0], s_other.view(1)]), 0)).mean()
    assert skipped == 0 and loss.item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_whole_class_forgetting_needs_forget_negatives(make_cfg) -> None:
    from unlearnbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"negatives_from=retain_and_forget"):
        prepare(
            make_cfg(
                "method=deepcut",
                "forget=class",
                "forget.class_name=tech",
                "forget.ratio=1.0",
                "method.negatives_from=retain",
            )
        )
    module, batch = _module(
        make_cfg,
        "forget=class",
        "forget.class_name=tech",
        "forget.ratio=1.0",
        "method.negatives_from=retain_and_forget",
    )
    module.loss_terms(batch)
    assert module.skipped_anchors == 0 and module.anchors_seen > 0


def test_auto_negatives_equal_the_spec_when_retain_has_every_class(make_cfg) -> None:
    module, batch = _module(make_cfg)  # random forgetting: the stratified B_r holds every forget class
    module.model.eval()  # identical views in both calls
    module.params.negatives_from = "retain"
    spec = module.loss_terms(batch)["forget"]
    module.params.negatives_from = "auto"
    assert torch.equal(module.loss_terms(batch)["forget"], spec) and spec > 0

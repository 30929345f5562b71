"""Forget quality (the NeurIPS 2023 unlearning competition's metric) and the leave-one-out U-LiRA attack,
on synthetic confidences: the epsilon of each example against a plain enumeration of its decision
rules, the cap and the discarded rules, the buckets, the scores' behaviour as the pools separate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from unlearnbench.evaluation.forget_quality import (
    DELTA,
    EPS_CAP,
    GRID_STEP,
    ForgetQuality,
    example_epsilon,
    final_score,
    forget_quality,
    forget_score,
    logit_scaled_confidence,
    n_buckets,
    per_example_epsilons,
    points,
)
from unlearnbench.evaluation.ulira import ulira_auc, ulira_per_example_auc, ulira_scores

# ----------------------------------------------------------------------------- a plain reference


def _rule_eps(fpr: np.ndarray, fnr: np.ndarray, discard_one_sided: bool = True) -> float:
    """Max epsilon over rules given by their rates, as the specification says: both rates 0 is a perfect
    split (inf), exactly one 0 is discarded, the rest give max(log((1-d-FPR)/FNR), log((1-d-FNR)/FPR))."""
    fpr, fnr = np.ravel(fpr), np.ravel(fnr)
    if np.any((fpr == 0) & (fnr == 0)):
        return math.inf
    if discard_one_sided:
        fpr, fnr = fpr[(fpr > 0) & (fnr > 0)], fnr[(fpr > 0) & (fnr > 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log((1 - DELTA - fpr) / fnr), np.log((1 - DELTA - fnr) / fpr))
    eps = eps[~np.isnan(eps)]
    return max(0.0, float(eps.max())) if eps.size else 0.0


def _reference_eps(u: np.ndarray, r: np.ndarray, rules: str, discard_one_sided: bool = True) -> float:
    """Every rule of one example enumerated on its grid (no cumulative-count tricks): thresholds
    ``value >= min + k*h`` for the larger-median pool, and intervals ``lo <= value <= hi`` for the
    peakier (smaller range) pool: ``"all"``: both ends on the threshold grid; ``"competition"``: the
    upper end within 2 of the peakier pool's max, the width within 2 of its range."""
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    rp, rn = np.ptp(pos), np.ptp(neg)
    if min(rp, rn) < 0.01 * max(rp, rn):
        return EPS_CAP
    both = np.r_[pos, neg]
    grid = both.min() + np.arange(int(np.ptp(both) / GRID_STEP) + 2) * GRID_STEP
    fpr = [(neg >= grid[:, None]).mean(1)]
    fnr = [(pos < grid[:, None]).mean(1)]
    peaky, other = (pos, neg) if rp < rn else (neg, pos)
    if rules == "all":
        lo, hi = grid[:, None], grid[None, :]
    else:
        k = np.arange(-200, 201)
        hi = peaky.max() + k[:, None] * GRID_STEP
        lo = peaky.min() + (k[:, None] + np.arange(-200, 201)[None, :]) * GRID_STEP
    for x, is_peaky in ((peaky, True), (other, False)):
        share = ((lo[..., None] <= x) & (x <= hi[..., None])).mean(-1)
        (fnr if is_peaky else fpr).append(1 - share if is_peaky else share)
    eps = _rule_eps(
        np.concatenate([np.ravel(f) for f in fpr]),
        np.concatenate([np.ravel(f) for f in fnr]),
        discard_one_sided,
    )
    return min(eps, EPS_CAP)


def _pools(n: int, e: int, shift: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, e)) + shift, rng.normal(size=(n, e))


# ----------------------------------------------------------------------------- confidences


def test_logit_scaled_confidence_matches_the_naive_formula_on_moderate_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6, 4)).astype(np.float32)
    targets = rng.integers(0, 4, size=6)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    p_y = p[np.arange(6), targets]
    got = logit_scaled_confidence(logits, targets)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.log(p_y / (1 - p_y)), rtol=1e-10, atol=1e-10)


def test_logit_scaled_confidence_stays_finite_and_ordered_for_extreme_logits():
    # 1 - p_y = 2 exp(-700) ~ 1e-304 for the first row: the naive log(p / (1 - p)) is inf there
    logits = np.array([[700.0, 0.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1000.0, 0.0, 0.0]])
    got = logit_scaled_confidence(logits, np.zeros(4, dtype=int))
    assert np.all(np.isfinite(got))
    assert np.all(np.diff(got) < 0)  # more confident in the target class: larger
    np.testing.assert_allclose(got, [700 - math.log(2), 40 - math.log(2), -math.log(2), -1000 - math.log(2)])
    with np.errstate(divide="ignore"):
        p = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()
        assert np.isinf(np.log(p[0] / (1 - p[0])))  # what the stable form avoids


def test_logit_scaled_confidence_on_models_examples_classes_with_per_example_targets():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5, 7))
    targets = rng.integers(0, 7, size=5)
    got = logit_scaled_confidence(logits, targets)
    assert got.shape == (3, 5)
    for m in range(3):
        np.testing.assert_allclose(got[m], logit_scaled_confidence(logits[m], targets))
    with pytest.raises(ValueError, match="lie in"):
        logit_scaled_confidence(logits, np.full(5, 7))
    with pytest.raises(ValueError, match="broadcast"):
        logit_scaled_confidence(logits, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="integer"):
        logit_scaled_confidence(logits, np.zeros(5))


# ----------------------------------------------------------------------------- epsilon per example


@pytest.mark.parametrize("rules", ["competition", "all"])
def test_epsilons_equal_a_plain_enumeration_of_the_rules(rules):
    rng = np.random.default_rng(2)
    cases = []
    for _ in range(6):
        n = int(rng.integers(3, 8))
        u = rng.normal(rng.normal(), rng.choice([0.3, 1.0, 2.0]), n)
        r = rng.normal(0.0, rng.choice([0.3, 1.0, 2.0]), n)
        cases.append((u, r))
    u = rng.normal(size=4)
    cases.append((rng.choice(u, 6), rng.choice(u + 0.3, 6)))  # repeated values (ties)
    # ties across the pools in one grid cell: no rule may split the cell
    cases.append((np.array([0.19, 0.19, -0.91]), np.array([1.13, 0.19, 1.13])))
    # the best threshold is not the lowest one above a retrained value: it keeps all unlearned values
    # (FNR = 0, discarded), so the best rule lies one unlearned value higher (eps = log 3)
    cases.append((np.array([0.7, 7.8, 3.8, -0.9]), np.array([-1.9, -1.3, 3.0, -2.6])))
    for u, r in cases:
        assert example_epsilon(u, r, rules=rules) == pytest.approx(_reference_eps(u, r, rules), abs=1e-12)


def test_batched_epsilons_equal_one_example_at_a_time_and_ignore_which_pool_is_which():
    u, r = _pools(12, 20, shift=0.4, seed=3)
    batched = per_example_epsilons(u, r)
    single = [example_epsilon(u[:, j], r[:, j]) for j in range(20)]
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(per_example_epsilons(r, u), batched)  # roles come from medians, ranges


def test_perfect_separation_and_a_near_constant_pool_hit_the_cap():
    rng = np.random.default_rng(4)
    apart = rng.normal(size=32), rng.normal(20.0, 1.0, size=32)
    assert example_epsilon(*apart) == EPS_CAP
    assert example_epsilon(*apart, rules="all") == EPS_CAP
    # the unlearned values span 1e-4, under 1 % of the retrained range. A retrained value among them
    # leaves no rule with FPR = FNR = 0 and no grid cell splits them: without the range rule eps is 0
    retrained = rng.normal(size=32)
    retrained[0] = 0.10005
    unlearned = 0.1 + 1e-4 * np.linspace(0.0, 1.0, 32)
    assert example_epsilon(unlearned, retrained) == EPS_CAP
    assert example_epsilon(unlearned, retrained, rules="all") == EPS_CAP
    # both pools constant and equal: nothing tells them apart; constant and different: separated
    assert example_epsilon(np.ones(8), np.ones(8)) == 0.0
    assert example_epsilon(np.ones(8), np.full(8, 2.0)) == EPS_CAP


def test_rules_with_exactly_one_zero_rate_are_discarded():
    """Construction: retrained = 0, 1, ..., 7 and unlearned = the same + 3.5 (same range, so not the
    near-constant cap; no rule separates them perfectly). Any threshold in (0, 3.5] keeps every
    unlearned value (FNR = 0) and some retrained ones (0 < FPR < 1): log((1 - delta - FPR) / FNR) is
    infinite there, so keeping such rules would give the cap. Discarded, the best two-sided rule is
    "at or above 6.5": TPR = 5/8, FPR = 1/8, eps = log(5)."""
    retrained = np.arange(8.0)
    unlearned = retrained + 3.5
    assert _reference_eps(unlearned, retrained, "competition", discard_one_sided=False) == EPS_CAP
    for rules in ("competition", "all"):
        eps = example_epsilon(unlearned, retrained, rules=rules)
        assert eps == pytest.approx(math.log((5 / 8 - DELTA) / (1 / 8)))
        assert eps == pytest.approx(_reference_eps(unlearned, retrained, rules))


# ----------------------------------------------------------------------------- buckets and points


@pytest.mark.parametrize(("n", "expected"), [(2, 0), (3, 2), (8, 4), (16, 6), (32, 8), (64, 10), (512, 14)])
def test_n_buckets_is_twice_ceil_ln_n_minus_one(n, expected):
    assert n_buckets(n) == expected == 2 * math.ceil(math.log(n - 1))


def test_points_halve_per_bucket_and_vanish_past_the_last():
    # N = 16: ceil(ln 15) = 3, buckets [0, 0.5), ..., [2.5, 3)
    eps = np.array([0.0, 0.49, 0.5, 0.99, 1.0, 1.5, 2.0, 2.5, 2.99, 3.0, 10.0, EPS_CAP])
    expected = [1, 1, 0.5, 0.5, 0.25, 0.125, 1 / 16, 1 / 32, 1 / 32, 0, 0, 0]
    np.testing.assert_array_equal(points(eps, 16), expected)
    assert points(3.0, 64) == 1 / 64  # more models, more buckets: [3, 3.5) scores at N = 64
    assert points(0.0, 2) == 0.0  # with 2 models per pool no bucket exists
    with pytest.raises(ValueError):
        points(np.array([-0.1]), 16)
    with pytest.raises(ValueError):
        n_buckets(1)


# ----------------------------------------------------------------------------- scores


def test_identical_pools_score_well_above_separated_ones():
    fq = forget_quality(*_pools(32, 40, shift=0.0))
    assert isinstance(fq, ForgetQuality)
    # sampling noise alone gives eps ~ ln 5 at N = 32: the competition's rule scores ~0.18 there
    assert 0.1 < fq.score < 0.35
    apart = forget_quality(*_pools(32, 40, shift=10.0))
    assert apart.score == 0.0
    assert apart.share_capped == 1.0
    assert np.all(apart.per_example_eps == EPS_CAP)


def test_forget_score_does_not_rise_as_the_pools_separate():
    scores = [forget_score(*_pools(32, 40, shift=s, seed=5)) for s in (0.0, 0.5, 1.5, 4.0)]
    assert all(a >= b for a, b in itertools.pairwise(scores)), scores
    assert scores[0] > 0.1 > scores[-1]


def test_identical_pools_score_higher_with_more_models():
    # a small effect under the competition's rule (~0.175 at N = 16, ~0.185 at N = 128: the extra
    # buckets let eps in [3, 5) score), so many examples
    assert forget_score(*_pools(128, 1000, seed=0)) > forget_score(*_pools(16, 1000, seed=0))


def test_forget_quality_fields_agree():
    u, r = _pools(16, 30, shift=0.7, seed=6)
    fq = forget_quality(u, r)
    np.testing.assert_array_equal(fq.per_example_points, points(fq.per_example_eps, 16))
    assert fq.score == pytest.approx(fq.per_example_points.mean()) == forget_score(u, r)
    assert fq.eps_mean == pytest.approx(fq.per_example_eps.mean())
    assert fq.eps_median == pytest.approx(np.median(fq.per_example_eps))
    assert (fq.n_models, fq.n_examples, fq.n_buckets) == (16, 30, 6)
    assert fq.summary()["forget_score"] == fq.score


def test_forget_score_rejects_bad_shapes_and_values():
    u, r = _pools(8, 5)
    with pytest.raises(ValueError, match="same number of models"):
        forget_score(u, r[:6])
    with pytest.raises(ValueError, match="different examples"):
        forget_score(u, r[:, :4])
    with pytest.raises(ValueError, match=r"\[models, examples\]"):
        forget_score(u[:, 0], r[:, 0])
    with pytest.raises(ValueError, match="at least 2 models"):
        forget_score(u[:1], r[:1])
    with pytest.raises(ValueError, match="finite"):
        forget_score(np.where(u > 1, np.nan, u), r)
    with pytest.raises(ValueError, match="rules"):
        forget_score(u, r, rules="every")  # type: ignore[arg-type]


def test_final_score_multiplies_the_accuracy_ratios():
    assert final_score(0.5, 0.9, 0.95, 0.8, 0.85) == pytest.approx(0.5 * (0.9 / 0.95) * (0.8 / 0.85))
    assert final_score(0.5, 1.0, 0.5, 1.0, 1.0) == pytest.approx(1.0)  # a ratio above 1 is kept
    with pytest.raises(ValueError, match="undefined"):
        final_score(0.5, 0.9, 0.0, 0.8, 0.85)
    with pytest.raises(ValueError, match="finite"):
        final_score(float("nan"), 0.9, 0.9, 0.8, 0.85)


# ----------------------------------------------------------------------------- U-LiRA


def test_ulira_cannot_tell_identical_pools_apart_and_always_tells_separated_ones():
    u, r = _pools(32, 50, seed=7)
    assert abs(ulira_auc(u, r) - 0.5) < 0.1
    assert abs(ulira_per_example_auc(u, r).mean() - 0.5) < 0.1
    u, r = _pools(32, 50, shift=4.0, seed=7)
    assert ulira_auc(u, r) > 0.99
    per_example = ulira_per_example_auc(u, r)
    assert per_example.shape == (50,)
    assert per_example.mean() > 0.99


def test_ulira_scores_are_leave_one_out_gaussian_likelihood_ratios():
    u, r = _pools(6, 3, shift=0.5, seed=8)
    s_u, s_r = ulira_scores(u, r)
    m, j = 2, 1
    keep = np.arange(6) != m

    def logpdf(x: float, sample: np.ndarray) -> float:
        mu, sd = sample.mean(), max(sample.std(ddof=1), 1e-3)
        return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd)

    for x, s in ((u[m, j], s_u[m, j]), (r[m, j], s_r[m, j])):
        assert s == pytest.approx(logpdf(x, u[keep, j]) - logpdf(x, r[keep, j]))
    labels = np.r_[np.ones(18), np.zeros(18)]
    assert ulira_auc(u, r) == pytest.approx(roc_auc_score(labels, np.r_[s_u.ravel(), s_r.ravel()]))
    # a constant pool: the std floor keeps the fit finite; identical constant pools score all 0
    s_u, s_r = ulira_scores(np.ones((5, 2)), np.ones((5, 2)))
    assert np.all(s_u == 0) and np.all(s_r == 0)
    assert ulira_auc(np.ones((5, 2)), np.ones((5, 2))) == 0.5
    with pytest.raises(ValueError, match="at least 3 models"):
        ulira_auc(u[:2], r[:2])

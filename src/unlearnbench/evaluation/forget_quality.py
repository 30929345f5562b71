"""Forget quality as the NeurIPS 2023 machine-unlearning competition scores it (Triantafillou et al. 2024,
arXiv 2406.09073), from pools of unlearned and retrained models: logit-scaled confidences, a per-example
(epsilon, delta) estimate from the best simple decision rule telling the pools apart, the bucketed points
and the forget score F, the competition's final score (the leave-one-out attack over the same pools is in
:mod:`unlearnbench.evaluation.ulira`). Arrays in, numbers out: the caller computes the
logits (one forward pass of every model over the forget set) and the accuracies.

The rules behind an example's epsilon, with N models per pool and ``h = GRID_STEP = 0.01``:

* single thresholds: "at or above t: the pool with the larger median", for t on the grid
  ``min + k*h`` (k = 0, 1, ...) over the range of both pools together;
* intervals: "inside [lo, hi]: the peakier pool" (the one with the smaller range w, as the competition
  has it). ``rules="competition"`` (the default) takes, like the competition, the intervals around that
  pool: ``hi = max + k*h``, ``lo = min + m*h`` with ``|k| <= 200`` and ``|k - m| <= 200``, i.e. the upper
  end within ``BUFFER = 2`` of the pool's max and the width within 2 of w. ``rules="all"`` takes every
  interval with both ends on the threshold grid: a stronger attacker, but with O(N^2) rules the
  maximum over them grows with N even for identical pools (F of identical pools falls as N grows), so
  it is not the competition's number.

A rule's rates only change where a grid line passes a value, so rules are never enumerated grid point
by grid point (a wide range would make that O(G^2) for G grid points). Thresholds and ``"all"``
intervals work on the grid cells that hold a value, with sorted arrays and cumulative counts: among the
intervals holding the same run of the other pool's values, the widest holds the most of the peakier
pool's, which leaves O(N) thresholds and O(N^2) intervals per example. The competition's 401 x 401
intervals are merged into runs of equal counts, at most min(401, 2N+1) x min(801, 2N+1) pairs. Every
outcome's epsilon comes from one lookup table per N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import logsumexp

DELTA = 1e-5
EPS_CAP = 50.0
GRID_STEP = 0.01
BUFFER = 2.0  # the competition's intervals: how far the ends / the width may move from the peakier pool's
PEAKY_RATIO = 0.01  # one pool's range under this share of the other's: epsilon = EPS_CAP outright
BUCKET_WIDTH = 0.5

Rules = Literal["competition", "all"]
RULES = ("competition", "all")

_OFFSETS = round(BUFFER / GRID_STEP)  # 200 grid steps either way
_CHUNK = 1 << 16  # elements per array in the loops over rules, sized to stay in the cache
_PAIR_BUDGET = 1 << 18  # the same for the (upper run, lower run) pairs of the competition's intervals


# ----------------------------------------------------------------------------- confidences


def logit_scaled_confidence(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``log p_y - log(1 - p_y)`` with ``p = softmax(logits)`` over the last axis, in float64.

    ``logits``: ``[..., C]`` (e.g. ``[models, examples, C]``), C >= 2, finite; ``targets``: integer class
    indices broadcastable to ``logits.shape[:-1]`` (e.g. ``[examples]``). Since both log-probabilities
    share the normaliser, the value is ``z_y - logsumexp(z without y)``: finite for any finite logits,
    also when p_y rounds to 1 (a naive ``log(p / (1 - p))`` gives inf there).
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must have a class axis of at least 2 classes last, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits must be finite")
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise ValueError(f"targets must be integer class indices, got dtype {t.dtype}")
    try:
        t = np.broadcast_to(t, z.shape[:-1])
    except ValueError:
        raise ValueError(
            f"targets of shape {t.shape} do not broadcast to the logits' leading shape {z.shape[:-1]}"
        ) from None
    n_classes = z.shape[-1]
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"targets must lie in [0, {n_classes}), got [{t.min()}, {t.max()}]")
    index = t[..., None].astype(np.intp)
    z_y = np.take_along_axis(z, index, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, index, -np.inf, axis=-1)
    return z_y - logsumexp(others, axis=-1)


# ----------------------------------------------------------------------------- epsilon per example


def check_pools(unlearned_confs: np.ndarray, retrained_confs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(unlearned_confs, dtype=np.float64)
    r = np.asarray(retrained_confs, dtype=np.float64)
    for name, x in (("unlearned_confs", u), ("retrained_confs", r)):
        if x.ndim != 2:
            raise ValueError(f"{name} must be [models, examples], got shape {x.shape}")
        if x.shape[0] < 2 or x.shape[1] < 1:
            raise ValueError(f"{name} needs at least 2 models and 1 example, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be finite")
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"the pools cover different examples: {u.shape[1]} vs {r.shape[1]} columns")
    if u.shape[0] != r.shape[0]:
        raise ValueError(
            f"the pools need the same number of models (the buckets and the epsilon's resolution depend "
            f"on it): {u.shape[0]} unlearned vs {r.shape[0]} retrained; subsample the larger pool"
        )
    return u, r


def _eps_table(n: int) -> np.ndarray:
    """``table[a, b]``: epsilon of a rule that predicts the inside pool for a of its n values and for b
    of the other pool's n values (FNR = 1 - a/n, FPR = b/n); ``inf`` for a perfect split (a = n, b = 0),
    0 for the discarded rules (exactly one of FPR, FNR is 0) since epsilon is clipped at 0 anyway."""
    fnr = 1.0 - np.arange(n + 1)[:, None] / n
    fpr = np.arange(n + 1)[None, :] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log((1.0 - DELTA - fpr) / fnr), np.log((1.0 - DELTA - fnr) / fpr))
    eps = np.nan_to_num(np.clip(eps, 0.0, None), nan=0.0, posinf=np.inf)
    eps[(fnr == 0) != (fpr == 0)] = 0.0  # these are the rules whose epsilon would be inf
    eps[n, 0] = np.inf
    return eps


def _grid_cells(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's cell ``[min + k*h, min + (k+1)*h)`` of the threshold grid (min: of both pools), as
    its rank among the row's occupied cells (only their order and equality matter; ranks stay < 2N
    however wide the range). Sorted rows stay sorted."""
    n = pos.shape[1]
    both = np.concatenate([pos, neg], axis=1)
    cells = np.floor((both - both.min(axis=1, keepdims=True)) / GRID_STEP)
    order = np.argsort(cells, axis=1, kind="stable")
    ordered = np.take_along_axis(cells, order, axis=1)
    sorted_ranks = np.zeros(both.shape, np.int64)
    sorted_ranks[:, 1:] = np.cumsum(np.diff(ordered, axis=1) > 0, axis=1)
    ranks = np.empty_like(sorted_ranks)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks[:, :n], ranks[:, n:]


def _row_counts(sorted_values: np.ndarray, queries: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """Per row: how many of that row's sorted values lie below (``left``) / at or below (``right``) each
    query. Integer cells of every row go into one sorted array by offsetting each row past the last."""
    n_rows, n = sorted_values.shape
    span = int(max(sorted_values.max(), queries.max())) + 2
    rows = np.arange(n_rows, dtype=np.int64)[:, None]
    flat = (sorted_values + rows * span).ravel()
    found = np.searchsorted(flat, (queries + rows * span).ravel(), side=side).reshape(queries.shape)
    return found - rows * n


def _cell_rule_eps(inside: np.ndarray, other: np.ndarray, table: np.ndarray, top_only: bool) -> np.ndarray:
    """Best epsilon over blocks of consecutive grid cells that predict the ``inside`` pool, per row.

    ``inside``, ``other``: ``[examples, n]`` sorted integer cell indices. ``top_only``: blocks that reach
    the top cell (single thresholds), else any block (intervals). Among blocks holding the same run
    other[k..l] of the other pool, the widest one (from just above other[k-1]'s cell to just below
    other[l+1]'s) holds the most inside values, and epsilon rises with them at a fixed FPR; if it holds
    all n (FNR = 0, discarded), the next best drops its outermost cell that holds only inside values."""
    n_rows, n = inside.shape
    none = n + 1  # "nothing to drop": n - none = -1 marks an impossible block
    le_other, lt_other = _row_counts(inside, other, "right"), _row_counts(inside, other, "left")
    first = np.zeros((n_rows, 1), np.int64)
    left = np.concatenate([first, le_other[:, :-1]], axis=1)  # inside values in cells up to other[k-1]'s
    right = np.concatenate([lt_other[:, 1:], first + n], axis=1)  # inside values below other[l+1]'s cell
    new_cell = np.diff(other, axis=1) > 0  # a block may not split a cell
    ones = np.ones((n_rows, 1), bool)
    starts_ok, ends_ok = np.concatenate([ones, new_cell], axis=1), np.concatenate([new_cell, ones], axis=1)
    at = np.minimum(left, n - 1)
    cell = np.take_along_axis(inside, at, axis=1)
    own_count = np.take_along_axis(_row_counts(inside, inside, "right"), at, axis=1) - left
    drop_low = np.where((left < n) & (cell < other), own_count, none)
    if top_only:
        a = n - left
        a = np.where(a == n, n - drop_low, a)
        b = n - np.arange(n)
        ok = starts_ok & (a >= 0)
        best = np.where(ok, table[np.maximum(a, 0), b], 0.0).max(axis=1)
        perfect = inside[:, 0] > other[:, -1]
        return np.where(perfect, np.inf, best)
    at = np.maximum(right - 1, 0)
    cell = np.take_along_axis(inside, at, axis=1)
    own_count = right - np.take_along_axis(_row_counts(inside, inside, "left"), at, axis=1)
    drop_high = np.where((right >= 1) & (cell > other), own_count, none)
    left = np.where(starts_ok, left, 3 * n)  # a block starting inside a cell: a < 0, no block
    right = np.where(ends_ok, right, -3 * n)
    column = np.zeros(n + 2)  # column[a] = table[a, b]; column[n + 1] = 0 for "no block"
    best = np.zeros(n_rows)
    for s in range(n):  # blocks holding s + 1 of the other pool's values: other[k..k+s]
        lows, highs = slice(0, n - s), slice(s, n)
        column[: n + 1] = table[:, s + 1]
        for rows in _chunks(n_rows, n):
            a = right[rows, highs] - left[rows, lows]
            a = np.where(a == n, n - np.minimum(drop_low[rows, lows], drop_high[rows, highs]), a)
            best[rows] = np.maximum(best[rows], column[np.where(a >= 0, a, n + 1)].max(axis=1))
    lo, hi = inside[:, :1], inside[:, -1:]
    perfect = ~((other >= lo) & (other <= hi)).any(axis=1)  # a block with all inside values, no other
    return np.where(perfect, np.inf, best)


def _chunks(n_rows: int, width: int) -> list[slice]:
    """Row slices of about _CHUNK elements at ``width`` per row: arrays that stay in the cache."""
    step = max(1, _CHUNK // max(width, 1))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def _runs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of grid indices over which both count arrays ``[rows, G]`` stay constant: first and last
    index, the counts, and which of the padded ``[rows, R]`` entries are runs at all."""
    n_rows, g = x.shape
    change = np.ones((n_rows, g), bool)
    change[:, 1:] = (np.diff(x, axis=1) != 0) | (np.diff(y, axis=1) != 0)
    index = np.where(change, np.arange(g), g)
    index.sort(axis=1)
    index = index[:, : int(change.sum(axis=1).max())]
    valid = index < g
    following = np.concatenate([index[:, 1:], np.full((n_rows, 1), g)], axis=1)
    last = np.minimum(following, g) - 1
    at = np.minimum(index, g - 1)
    return index, last, np.take_along_axis(x, at, 1), np.take_along_axis(y, at, 1), valid


def _competition_interval_eps(peaky: np.ndarray, other: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Best epsilon over the competition's intervals "inside [lo, hi]: the peakier pool", per row.

    ``hi_i = max + (i - 200) h`` (i = 0..400), ``lo_p = min + (p - 400) h`` (p = 0..800) of the peakier
    pool, with ``0 <= p - i <= 400`` (width within BUFFER of its range). Counts are constant over runs
    of i and of p; a pair of runs is one outcome, possible if some i, p in them satisfy the band."""
    n_rows, n = peaky.shape
    hi = peaky[:, -1:] + (np.arange(2 * _OFFSETS + 1) - _OFFSETS) * GRID_STEP
    lo = peaky[:, :1] + (np.arange(4 * _OFFSETS + 1) - 2 * _OFFSETS) * GRID_STEP
    counts = [np.empty(g.shape, np.int32) for g in (hi, hi, lo, lo)]  # peaky <= hi, other <= hi, ... < lo
    for row in range(n_rows):
        counts[0][row] = np.searchsorted(peaky[row], hi[row], side="right")
        counts[1][row] = np.searchsorted(other[row], hi[row], side="right")
        counts[2][row] = np.searchsorted(peaky[row], lo[row], side="left")
        counts[3][row] = np.searchsorted(other[row], lo[row], side="left")
    hi_first, hi_last, hi_p, hi_o, hi_ok = _runs(counts[0], counts[1])
    lo_first, lo_last, lo_p, lo_o, lo_ok = _runs(counts[2], counts[3])
    hi_last = np.where(hi_ok, hi_last + 2 * _OFFSETS, -1)  # the band: p <= i + 400; no run: no pair
    lo_last = np.where(lo_ok, lo_last, -1)
    flat = np.append(table.ravel(), 0.0)  # the last entry stands for "no such pair"
    nothing = flat.size - 1
    best = np.empty(n_rows)
    chunk = max(1, _PAIR_BUDGET // (hi_first.shape[1] * lo_first.shape[1]))  # small enough for the cache
    for start in range(0, n_rows, chunk):
        c = slice(start, start + chunk)
        a = np.maximum(hi_p[c, :, None] - lo_p[c, None, :], 0)  # an empty interval holds nothing
        b = np.maximum(hi_o[c, :, None] - lo_o[c, None, :], 0)
        ok = (lo_last[c, None, :] >= hi_first[c, :, None]) & (lo_first[c, None, :] <= hi_last[c, :, None])
        best[c] = flat[np.where(ok, a * (n + 1) + b, nothing)].max(axis=(1, 2))
    return best


def per_example_epsilons(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, rules: Rules = "competition"
) -> np.ndarray:
    """Epsilon of every forget example, ``[examples]`` in ``[0, EPS_CAP]``, from ``[models, examples]``
    confidences of N unlearned and N retrained models (see the module docstring for the rules).

    Per rule: FPR = share of the negative pool predicted positive, FNR = share of the positive pool
    predicted negative, ``eps = max(log((1 - DELTA - FPR) / FNR), log((1 - DELTA - FNR) / FPR))``
    clipped at 0; a rule with exactly one of FPR, FNR zero is discarded (too few samples to trust it),
    one with both zero separates the pools perfectly (EPS_CAP). An example's epsilon is the maximum
    over its rules, capped at EPS_CAP, and EPS_CAP outright when one pool's range is under PEAKY_RATIO
    of the other's. With no surviving rule it is 0.
    """
    if rules not in RULES:
        raise ValueError(f"rules must be one of {RULES}, got {rules!r}")
    u, r = check_pools(unlearned_confs, retrained_confs)
    n = u.shape[0]
    retrained_pos = np.median(r, axis=0) > np.median(u, axis=0)  # a tie: the unlearned pool is positive
    pos = np.sort(np.where(retrained_pos, r, u).T, axis=1)  # [examples, N]
    neg = np.sort(np.where(retrained_pos, u, r).T, axis=1)
    pos_range, neg_range = pos[:, -1] - pos[:, 0], neg[:, -1] - neg[:, 0]
    peaky_outright = np.minimum(pos_range, neg_range) < PEAKY_RATIO * np.maximum(pos_range, neg_range)
    pos_is_peakier = (pos_range < neg_range)[:, None]  # a tie: the negative pool, as the competition
    peaky, other = np.where(pos_is_peakier, pos, neg), np.where(pos_is_peakier, neg, pos)

    table = _eps_table(n)
    pos_cells, neg_cells = _grid_cells(pos, neg)
    eps = _cell_rule_eps(pos_cells, neg_cells, table, top_only=True)
    if rules == "competition":
        intervals = _competition_interval_eps(peaky, other, table)
    else:
        peaky_cells = np.where(pos_is_peakier, pos_cells, neg_cells)
        other_cells = np.where(pos_is_peakier, neg_cells, pos_cells)
        intervals = _cell_rule_eps(peaky_cells, other_cells, table, top_only=False)
    eps = np.maximum(eps, intervals)
    eps[peaky_outright] = EPS_CAP
    return np.minimum(eps, EPS_CAP)


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, *, rules: Rules = "competition") -> float:
    """Epsilon of one forget example from its N unlearned and N retrained confidences (1-D each)."""
    u, r = np.asarray(unlearned, dtype=np.float64), np.asarray(retrained, dtype=np.float64)
    if u.ndim != 1 or r.ndim != 1:
        raise ValueError(f"one example's confidences must be 1-D, got shapes {u.shape} and {r.shape}")
    return float(per_example_epsilons(u[:, None], r[:, None], rules=rules)[0])


# ----------------------------------------------------------------------------- points and scores


def n_buckets(n_models: int) -> int:
    """How many 0.5-wide buckets score points with N models per pool: those ending at or below
    ``ceil(ln(N - 1))``, the largest epsilon N samples can resolve (N = 16: 3, six buckets; N = 2: none)."""
    if int(n_models) != n_models or n_models < 2:
        raise ValueError(f"n_models must be an integer >= 2, got {n_models!r}")
    top = math.ceil(math.log(n_models - 1))
    return math.floor(top / BUCKET_WIDTH)


def points(eps: np.ndarray | float, n_models: int) -> np.ndarray:
    """Points of each epsilon: 1 in [0, 0.5), 0.5 in [0.5, 1), 0.25 in [1, 1.5), ... halving per bucket,
    and 0 beyond the last of the ``n_buckets(n_models)`` buckets."""
    e = np.asarray(eps, dtype=np.float64)
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError("epsilons must be >= 0 and not NaN")
    bucket = np.floor(e / BUCKET_WIDTH)
    inside = bucket < n_buckets(n_models)
    return np.where(inside, 0.5 ** np.where(inside, bucket, 0), 0.0)


@dataclass(frozen=True, eq=False)  # array fields: compare the fields, not the objects
class ForgetQuality:
    """The forget score and what it is made of. ``score``: mean points over the examples (1: as if
    retrained, 0: every example separable); ``share_capped``: share of examples at EPS_CAP."""

    score: float
    per_example_eps: np.ndarray
    per_example_points: np.ndarray
    eps_mean: float
    eps_median: float
    share_capped: float
    n_models: int
    n_examples: int
    n_buckets: int
    rules: str = "competition"

    def summary(self) -> dict[str, float | int | str]:
        """The scalar fields, e.g. for a results table."""
        return {
            "forget_score": self.score,
            "eps_mean": self.eps_mean,
            "eps_median": self.eps_median,
            "share_capped": self.share_capped,
            "n_models": self.n_models,
            "n_examples": self.n_examples,
            "n_buckets": self.n_buckets,
            "rules": self.rules,
        }


def forget_quality(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, rules: Rules = "competition"
) -> ForgetQuality:
    """Forget quality of ``[models, examples]`` logit-scaled confidences of the forget set under N
    unlearned and N retrained models (the same N; ValueError otherwise)."""
    eps = per_example_epsilons(unlearned_confs, retrained_confs, rules=rules)
    n_models, n_examples = np.shape(unlearned_confs)
    pts = points(eps, n_models)
    return ForgetQuality(
        score=float(pts.mean()),
        per_example_eps=eps,
        per_example_points=pts,
        eps_mean=float(eps.mean()),
        eps_median=float(np.median(eps)),
        share_capped=float(np.mean(eps >= EPS_CAP)),
        n_models=int(n_models),
        n_examples=int(n_examples),
        n_buckets=n_buckets(n_models),
        rules=rules,
    )


def forget_score(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, rules: Rules = "competition"
) -> float:
    """The forget score F in [0, 1] (:func:`forget_quality`'s ``score``)."""
    return forget_quality(unlearned_confs, retrained_confs, rules=rules).score


def final_score(
    forget_score: float,
    retain_acc_unlearned: float,
    retain_acc_retrained: float,
    test_acc_unlearned: float,
    test_acc_retrained: float,
) -> float:
    """The competition's final score: F x (retain accuracy unlearned / retrained) x (test accuracy
    unlearned / retrained). Each accuracy is the caller's mean over the models of its pool; a ratio may
    exceed 1 when the unlearned models beat the retrained ones, and is kept so."""
    values = {
        "forget_score": forget_score,
        "retain_acc_unlearned": retain_acc_unlearned,
        "retain_acc_retrained": retain_acc_retrained,
        "test_acc_unlearned": test_acc_unlearned,
        "test_acc_retrained": test_acc_retrained,
    }
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name in ("retain_acc_retrained", "test_acc_retrained"):
        if values[name] == 0:
            raise ValueError(f"{name} is 0: the ratio to the retrained models is undefined")
    return float(
        forget_score
        * (retain_acc_unlearned / retain_acc_retrained)
        * (test_acc_unlearned / test_acc_retrained)
    )

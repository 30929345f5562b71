"""A per-example likelihood-ratio attack over model pools, in the style of U-LiRA (Hayes et al. 2024,
arXiv 2403.01218): leave one model of each pool out, fit a Gaussian per forget example to the others'
logit-scaled confidences, and ask which pool the held-out models look like. 0.5 is ideal."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from unlearnbench.evaluation.forget_quality import check_pools

STD_FLOOR = 1e-3  # the smallest std of a fitted Gaussian, in logit-scaled confidence units


def ulira_scores(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, std_floor: float = STD_FLOOR
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out likelihood-ratio scores, ``[models, examples]`` for each pool.

    For held-out index m (model m of each pool) and example j: Gaussians fitted to example j's
    confidences under the other N-1 unlearned and the other N-1 retrained models (mean, std with
    ddof=1, the std floored at ``std_floor``); the score of a held-out confidence x is
    ``log N(x; unlearned fit) - log N(x; retrained fit)``, high = "looks unlearned". Dropping model m
    from both pools keeps the two fits equally sized, so identical pools give no edge to either side.
    """
    if not std_floor > 0:
        raise ValueError(f"std_floor must be > 0, got {std_floor!r}")
    u, r = check_pools(unlearned_confs, retrained_confs)
    n = u.shape[0]
    if n < 3:
        raise ValueError(f"the leave-one-out attack needs at least 3 models per pool, got {n}")

    def fits(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = x - x.mean(axis=0)
        mean = x.mean(axis=0) - centred / (n - 1)  # mean of the others
        ss = (centred**2).sum(axis=0) - centred**2 * n / (n - 1)  # their sum of squared deviations
        return mean, np.maximum(np.sqrt(np.maximum(ss, 0.0) / (n - 2)), std_floor)

    (mu_u, sd_u), (mu_r, sd_r) = fits(u), fits(r)

    def llr(x: np.ndarray) -> np.ndarray:
        return -0.5 * ((x - mu_u) / sd_u) ** 2 - np.log(sd_u) + 0.5 * ((x - mu_r) / sd_r) ** 2 + np.log(sd_r)

    return llr(u), llr(r)


def ulira_auc(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, std_floor: float = STD_FLOOR
) -> float:
    """ROC AUC of the attack over all (example, held-out model) pairs, unlearned = 1, retrained = 0:
    0.5 = it cannot tell the unlearned models from retrained ones, 1 = it always can."""
    s_u, s_r = ulira_scores(unlearned_confs, retrained_confs, std_floor=std_floor)
    labels = np.r_[np.ones(s_u.size), np.zeros(s_r.size)]
    return float(roc_auc_score(labels, np.r_[s_u.ravel(), s_r.ravel()]))


def ulira_per_example_auc(
    unlearned_confs: np.ndarray, retrained_confs: np.ndarray, *, std_floor: float = STD_FLOOR
) -> np.ndarray:
    """The attack's AUC per forget example, ``[examples]``: over the N held-out pairs (model m of each
    pool, scored by the same fits), the share in which the unlearned one scores higher (ties half).

    Only pairs that share their fits are compared: within one example, comparing a held-out score with
    one computed from fits that include it makes the leave-one-out AUC biased low (about 0.45 instead
    of 0.5 for identical pools at N = 32); held out together, the two are exchangeable under "no
    difference", so the expectation is exactly 0.5 there."""
    s_u, s_r = ulira_scores(unlearned_confs, retrained_confs, std_floor=std_floor)
    return np.mean((s_u > s_r) + 0.5 * (s_u == s_r), axis=0)

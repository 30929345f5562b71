"""The report's statistics over seeds: the half-width of the two-sided 95 % t-interval of a mean, and
the one-sided Welch t-test that decides whether the best method of a column is bold."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # the confidence level of the interval shown beside each mean
ALPHA = 0.05  # bold only where the one-sided Welch test gives p < ALPHA


def ci95(std: pd.Series | np.ndarray | float, n: pd.Series | np.ndarray | int) -> np.ndarray:
    """``t_{0.975, n-1} * std / sqrt(n)``, the half-width of the two-sided 95 % t-interval of a mean
    of ``n`` values whose sample std (ddof=1) is ``std``; NaN where ``n < 2``."""
    std = np.asarray(pd.to_numeric(std, errors="coerce"), dtype=float)
    n = np.asarray(n, dtype=float)
    enough = n >= 2
    dof = np.where(enough, n - 1, 1.0)
    half = stats.t.ppf(0.5 + LEVEL / 2, dof) * std / np.sqrt(np.where(enough, n, 1.0))
    return np.where(enough, half, np.nan)


def mean_ci(values: pd.Series | Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    """``mean ± half-width of the 95 % t-interval`` of the finite values, times ``scale``; the mean
    alone for one value, ``-`` for none."""
    values = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna().astype(float)
    if values.empty:
        return "-"
    mean = values.mean() * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    half = float(ci95(values.std(ddof=1), len(values))) * scale
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def significantly_better(best: np.ndarray, other: np.ndarray, better: str, alpha: float = ALPHA) -> bool:
    """Whether the per-seed values ``best`` beat ``other`` in the ``better`` direction (``max`` or
    ``min``): a one-sided Welch t-test (``scipy.stats.ttest_ind``, ``equal_var=False``) gives
    p < ``alpha``. False with fewer than 2 finite values on either side or equal means (a tie).
    Seeds that agree exactly on both sides and differ between them give t = +-inf, so p = 0 or 1."""
    if better not in ("max", "min"):
        raise ValueError(f"better must be 'max' or 'min', not {better!r}")
    best = np.asarray(best, dtype=float)
    other = np.asarray(other, dtype=float)
    best, other = best[np.isfinite(best)], other[np.isfinite(other)]
    if len(best) < 2 or len(other) < 2:
        return False
    if math.isclose(best.mean(), other.mean(), rel_tol=1e-9, abs_tol=1e-12):
        return False
    with warnings.catch_warnings():  # identical seeds: scipy warns of precision loss, then gives +-inf
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(
            best, other, equal_var=False, alternative="greater" if better == "max" else "less"
        )
    p = float(result.pvalue)
    return bool(np.isfinite(p) and p < alpha)

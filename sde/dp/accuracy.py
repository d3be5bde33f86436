"""Confidence intervals for released values, and epsilon for a requested accuracy.

Half-widths are at ``1 - alpha``: with probability at least ``1 - alpha`` the released
value lies within the half-width of the value the exact query would have returned on the
truncated, clamped data (the bias of clamping and truncation is reported separately, as the
noisy count of clamped values). Counts and sums use OpenDP's exact tail bounds for its
samplers; means and variances combine those by a union bound and interval arithmetic on
the noisy values (post-processing: free, and conservative).

>>> round(count_half_width(10.0, "discrete_laplace", 0.05), 2)
30.44
>>> round(epsilon_for_count(30.45, sensitivity=1, alpha=0.05), 3)
0.1
"""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp


def count_half_width(scale: float, mechanism: str, alpha: float) -> float:
    """Half-width at ``1 - alpha`` of one integer cell noised at ``scale`` (in grid units)."""
    if mechanism == "discrete_laplace":
        return float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))
    if mechanism == "discrete_gaussian":
        return float(dp.discrete_gaussian_scale_to_accuracy(scale, alpha))
    raise ValueError(f"no accuracy for {mechanism}")


def scale_for_half_width(half_width: float, mechanism: str, alpha: float) -> float:
    """The largest scale whose half-width at ``1 - alpha`` is at most ``half_width``."""
    if mechanism == "discrete_laplace":
        return float(dp.accuracy_to_discrete_laplacian_scale(half_width, alpha))
    if mechanism == "discrete_gaussian":
        return float(dp.accuracy_to_discrete_gaussian_scale(half_width, alpha))
    raise ValueError(f"no accuracy for {mechanism}")


def epsilon_for_count(half_width: float, sensitivity: float, alpha: float) -> float:
    """Epsilon that gives a Laplace count/sum this half-width (sensitivity in grid units)."""
    return sensitivity / scale_for_half_width(half_width, "discrete_laplace", alpha)


def mean_half_width(n: np.ndarray, t_n: float, t_s: float, half_range: float) -> np.ndarray:
    """Half-width of ``mid + s / n`` where |noise(s)| <= t_s and |noise(n)| <= t_n.

    With the centred sum s (|s| <= n * half_range): |s'/n' - s/n| <= (t_s + half_range *
    t_n) / n'' for n'' the smallest count consistent with the noisy one. Each tail is taken
    at ``alpha / 2`` by the caller (union bound). Where the noisy count cannot rule out an
    empty cell the interval is the whole range.
    """
    low = np.asarray(n, dtype=float) - t_n
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = (t_s + half_range * t_n) / low
    return np.where(low >= 1, np.minimum(hw, 2 * half_range), 2 * half_range)


def variance_interval(
    n: np.ndarray,
    s: np.ndarray,
    ss: np.ndarray,
    *,
    t_n: float,
    t_s: float,
    t_ss: float,
    half_range: float,
    sample: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the variance from noisy (n, centred sum, centred sum of squares).

    Interval arithmetic over the box n +- t_n, s +- t_s, ss +- t_ss (each at ``alpha / 3``),
    clipped to the possible range [0, half_range^2].
    """
    n = np.asarray(n, dtype=float)
    lo_n = np.maximum(n - t_n, 1.0)
    hi_n = np.maximum(n + t_n, 1.0)
    s_abs_hi = np.abs(s) + t_s
    s_abs_lo = np.maximum(np.abs(s) - t_s, 0.0)
    mean_sq_hi = (s_abs_hi / lo_n) ** 2
    mean_sq_lo = (s_abs_lo / hi_n) ** 2
    second_hi = np.maximum(ss + t_ss, 0.0) / lo_n
    second_lo = np.maximum(ss - t_ss, 0.0) / hi_n
    var_hi = second_hi - mean_sq_lo
    var_lo = second_lo - mean_sq_hi
    if sample:
        var_hi = var_hi * lo_n / np.maximum(lo_n - 1, 1.0)
        var_lo = var_lo * hi_n / np.maximum(hi_n - 1, 1.0)
    cap = half_range**2 * (2.0 if sample else 1.0)
    return np.clip(var_lo, 0.0, cap), np.clip(var_hi, 0.0, cap)


def quantile_rank_error(scale: float, candidates: int, den: int, alpha: float) -> float:
    """Rows by which a released quantile may miss its target rank, at ``1 - alpha``.

    Report-noisy-max with Gumbel noise of scale b picks a candidate whose score is within
    ``b * ln(C / alpha)`` of the best with probability >= 1 - alpha; a score step of ``den``
    is one row.
    """
    return scale * math.log(candidates / alpha) / den

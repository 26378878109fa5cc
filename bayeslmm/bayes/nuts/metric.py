"""The metric M⁻¹ from a window of draws: Welford moments, Stan's regularisation, a
robust fallback for short windows, and a checked Cholesky factor."""

from __future__ import annotations

import math

from numba import njit

from ..compiled import chol as cholesky

#: Stan's shrinkage: the window covariance is pulled towards 10⁻³ (times the parameters'
#: own squared scales here, so the adaptation does not depend on the units of y) with the
#: weight 5 / (n + 5)
SHRINK_TARGET, SHRINK_PRIOR_N = 1e-3, 5.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def welford(window, n, q):
    """Add draw q to the window (``n`` draws with it): running mean and summed
    outer products (the diagonal only for a diagonal metric)."""
    d = q.shape[0]
    for i in range(d):
        window.mean[i] += (q[i] - window.mean[i]) / n
    c = n / max(n - 1.0, 1.0)  # (q − mean_old) = (q − mean_new)·n/(n − 1)
    dense = window.m2.shape[0] == d
    for i in range(d):
        di = q[i] - window.mean[i]
        window.m2_diag[i] += c * di * di
        if dense:
            for j in range(d):
                window.m2[i, j] += c * di * (q[j] - window.mean[j])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def reset(window):
    d = window.mean.shape[0]
    for i in range(d):
        window.mean[i] = 0.0
        window.m2_diag[i] = 0.0
    for i in range(window.m2.shape[0]):
        for j in range(window.m2.shape[1]):
            window.m2[i, j] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def regularised(window, n, scale2, i, j, diagonal_only):
    """Entry (i, j) of Stan's regularised window covariance (0 off the diagonal when
    ``diagonal_only``)."""
    scale = n / ((n + SHRINK_PRIOR_N) * (n - 1.0))
    if i == j:
        shrink = SHRINK_TARGET * SHRINK_PRIOR_N / (n + SHRINK_PRIOR_N)
        return scale * window.m2_diag[i] + shrink * scale2[i]
    return 0.0 if diagonal_only else scale * window.m2[i, j]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def update(metric, window, n, scale2, robust_min, inv_tmp, chol_tmp):
    """M⁻¹ from the window's ``n`` draws, as Stan regularises it.  A dense metric takes the
    window's full covariance only when n >= robust_min·d; a shorter window (rank-deficient
    or nearly so once d approaches n) gives its diagonal instead.  The new metric replaces
    the old one only if it is positive definite: returns False (old metric kept)
    otherwise."""
    d = window.mean.shape[0]
    if not metric.dense:
        for i in range(d):
            v = regularised(window, n, scale2, i, i, True)
            if not (v > 0.0 and v < math.inf):
                return False
            inv_tmp[i, 0] = v
        for i in range(d):
            metric.diag[i] = inv_tmp[i, 0]
        return True
    diagonal_only = n < robust_min * d
    for i in range(d):
        for j in range(d):
            inv_tmp[i, j] = regularised(window, n, scale2, i, j, diagonal_only)
    if not cholesky(inv_tmp, chol_tmp):
        return False
    for i in range(d):
        metric.diag[i] = inv_tmp[i, i]
        for j in range(d):
            metric.inv[i, j] = inv_tmp[i, j]
            metric.chol[i, j] = chol_tmp[i, j]
    return True

"""The compiled core of :func:`bayeslmm.bayes.summary.diagnose` (numba): R̂, bulk and tail
ESS of one parameter at a time, as ArviZ 1.x computes them (see :mod:`.summary`).

Per parameter: one sort of its split chains (numpy's, outside) gives the ranks (average
ranks for ties), the median and, by merging the two sides of the median, the ranks of the
folded draws |x − median|; Φ⁻¹ of the ranks comes from a table (ranks are multiples of ½).
Autocovariances are summed lag by lag only as far as Geyer's initial positive sequence
goes (the same sums the FFT gives, without computing the lags it never reads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: numpy's ``finfo(float).resolution``: ESS of a constant sequence is its size
RESOLUTION = 1e-15


@njit(cache=True, nogil=True, error_model="numpy")
def _ranks_from_order(values, order, ztab, z):
    """z[order[j]] = Φ⁻¹ of the average rank of sorted value j (``ztab[2r − 2]`` for rank
    r = 1, 1.5, ..., S)."""
    S = len(order)
    i = 0
    while i < S:
        j = i
        while j + 1 < S and values[order[j + 1]] == values[order[i]]:
            j += 1
        zi = ztab[i + j]  # 2·((i + j)/2 + 1) − 2
        for m in range(i, j + 1):
            z[order[m]] = zi
        i = j + 1


@njit(cache=True, nogil=True, error_model="numpy", forceinline=True)
def _chain_means(y, M, h):
    """The M chain means of ``y`` (M chains of h, chain-major) and their variance (ddof 1;
    0 for one chain)."""
    means = np.zeros(M)
    for c in range(M):
        s = 0.0
        for i in range(h):
            s += y[c * h + i]
        means[c] = s / h
    if M < 2:
        return means, 0.0
    grand = 0.0
    for c in range(M):
        grand += means[c]
    grand /= M
    v = 0.0
    for c in range(M):
        v += (means[c] - grand) ** 2
    return means, v / (M - 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _rhat_raw(y, M, h):
    """Split-R̂ of ``y`` (M chains of h, chain-major): sqrt((B/W + h − 1)/h)."""
    means, var_means = _chain_means(y, M, h)
    within = 0.0
    for c in range(M):
        v = 0.0
        for i in range(h):
            v += (y[c * h + i] - means[c]) ** 2
        within += v / (h - 1)
    within /= M
    return np.sqrt((h * var_means / within + h - 1) / h)


@njit(cache=True, nogil=True, error_model="numpy", forceinline=True)
def _acov(centred, M, h, t):
    """Mean over the M chains (of h, chain-major, centred) of the lag-t autocovariance
    Σᵢ xᵢxᵢ₊ₜ / h."""
    s = 0.0
    for c in range(M):
        o = c * h
        for i in range(h - t):
            s += centred[o + i] * centred[o + i + t]
    return s / (h * M)


@njit(cache=True, nogil=True, error_model="numpy")
def _ess(y, M, h, centred, rho):
    """ESS of ``y`` (M chains of h, chain-major) by Geyer's initial positive and monotone
    sequences (ArviZ's loop), with the autocovariances it reads summed directly."""
    S = M * h
    lo, hi = y[0], y[0]
    for i in range(S):
        lo = min(lo, y[i])
        hi = max(hi, y[i])
    if hi - lo < RESOLUTION:
        return float(S)
    means, var_means = _chain_means(y, M, h)
    for c in range(M):
        for i in range(h):
            centred[c * h + i] = y[c * h + i] - means[c]
    mean_var = _acov(centred, M, h, 0) * h / (h - 1.0)
    var_plus = mean_var * (h - 1.0) / h + var_means
    for t in range(h):
        rho[t] = 0.0
    even = 1.0
    rho[0] = even
    odd = 1.0 - (mean_var - _acov(centred, M, h, 1)) / var_plus
    rho[1] = odd
    t = 1
    while t < h - 3 and even + odd > 0.0:
        even = 1.0 - (mean_var - _acov(centred, M, h, t + 1)) / var_plus
        odd = 1.0 - (mean_var - _acov(centred, M, h, t + 2)) / var_plus
        if even + odd >= 0:
            rho[t + 1] = even
            rho[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    tau = -1.0
    for i in range(max_t + 1):
        tau += 2.0 * rho[i]
    if max_t + 1 < h:
        tau += rho[max_t + 1]
    for i in range(h):
        if np.isnan(rho[i]):
            return np.nan
    return S / max(tau, 1.0 / np.log10(S))


@njit(cache=True, nogil=True, error_model="numpy")
def _tail_ess(split, M, h, q, work, centred, rho):
    """ESS of the indicator split ≤ q."""
    for i in range(M * h):
        work[i] = 1.0 if split[i] <= q else 0.0
    return _ess(work, M, h, centred, rho)


@njit(cache=True, nogil=True, error_model="numpy")
def diagnose_block(split, order, quantiles, chains, ztab, out):
    """R̂, bulk ESS and tail ESS (columns of ``out`` (P, 3)) of each parameter's split
    chains ``split`` (P, 2·chains·h: each chain's first halves, then its second halves),
    given ``order`` (P, S), each row's argsort, and ``quantiles`` (P, 2), the 5 % and 95 %
    quantiles of all its draws.  ``ztab``: Φ⁻¹((r − 3/8)/(S + 1/4)) for r = 1, 1.5, ..., S.
    Rows with a non-finite draw are skipped (NaN)."""
    P, S = split.shape
    M = 2 * chains
    h = S // M
    z = np.empty(S)
    work = np.empty(S)
    centred = np.empty(S)
    folded_order = np.empty(S, dtype=np.int64)
    rho = np.empty(max(h, 1))
    for p in range(P):
        out[p, 0] = np.nan
        out[p, 1] = np.nan
        out[p, 2] = np.nan
        x = split[p]
        finite = True
        for i in range(S):
            if not np.isfinite(x[i]):
                finite = False
        if not finite or h < 2:
            continue
        o = order[p]
        _ranks_from_order(x, o, ztab, z)
        out[p, 1] = _ess(z, M, h, centred, rho)
        low = _tail_ess(x, M, h, quantiles[p, 0], work, centred, rho)
        high = _tail_ess(x, M, h, quantiles[p, 1], work, centred, rho)
        out[p, 2] = min(low, high)
        if chains < 2:
            continue
        rhat = _rhat_raw(z, M, h)
        # folded draws |x − median|: merge the sorted draws outwards from the median
        median = (x[o[S // 2 - 1]] + x[o[S // 2]]) / 2.0
        for i in range(S):
            work[i] = abs(x[i] - median)
        a, b = S // 2 - 1, S // 2
        for m in range(S):
            if b >= S or (a >= 0 and work[o[a]] <= work[o[b]]):
                folded_order[m] = o[a]
                a -= 1
            else:
                folded_order[m] = o[b]
                b += 1
        _ranks_from_order(work, folded_order, ztab, z)
        out[p, 0] = max(rhat, _rhat_raw(z, M, h))

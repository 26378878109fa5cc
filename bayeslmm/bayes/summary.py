"""Posterior summaries of draws: one function behind every summary table of the package.

The diagnostics are Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), computed as
ArviZ 1.x computes them (a test holds the two to rounding), vectorised over parameters in
numpy (ArviZ loops over them in Python, and importing it costs 2 s):

* rank normalisation: z = Φ⁻¹((r − 3/8)/(S + 1/4)) of the ranks r of all S draws;
* split chains: each chain's first and last halves;
* r_hat: the larger of the split R̂ of the rank-normalised draws and of their folded
  version |x − median|;
* ess_bulk: the effective sample size of the rank-normalised split chains (autocorrelations
  by FFT, Geyer's initial positive and monotone sequences);
* ess_tail: the smaller of the ESS of the indicators x ≤ q₀.₀₅ and x ≤ q₀.₉₅, the paper's
  quantiles (``az.ess(method="tail")`` defaults to the 0.11 and 0.89 of its interval
  probability; pass ``prob=(0.05, 0.95)`` to reproduce these).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import fft, special, stats

from .. import names

#: every statistic :func:`summarize` knows, in column order ("ci" gives two columns)
STATS = ("mean", "median", "sd", "ci", "r_hat", "ess_bulk", "ess_tail")


def summarize(
    draws: xr.DataArray,
    index: pd.Index,
    *,
    kind: str,
    prob: float,
    stats: Sequence[str] = STATS,
) -> pd.DataFrame:
    """One row per parameter of ``draws`` (dims chain, draw and any others, flattened in
    order into ``index``), one column per statistic in ``stats``.

    ``mean``, ``median``, ``sd`` (ddof 1) over all draws; ``ci``: the ``kind`` ("eti" or
    "hdi") interval of probability ``prob``, columns :func:`names.ci_columns`; ``r_hat``,
    ``ess_bulk``, ``ess_tail``: the rank-normalised diagnostics (module docstring).
    """
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {STATS}")
    da = draws.transpose(*names.SAMPLE_DIMS, ...)
    values = da.to_numpy().reshape(da.shape[0], da.shape[1], -1)
    flat = values.reshape(-1, values.shape[2])
    columns: dict[str, np.ndarray] = {}
    for stat in stats:
        if stat == "mean":
            columns["mean"] = flat.mean(axis=0)
        elif stat == "median":
            columns["median"] = np.median(flat, axis=0)
        elif stat == "sd":
            columns["sd"] = flat.std(axis=0, ddof=1)
        elif stat == "ci":
            lb, ub = names.ci_columns(kind, prob)
            columns[lb], columns[ub] = interval(flat, kind, prob)
        elif stat == "r_hat":
            columns["r_hat"] = rhat(values)
        elif stat == "ess_bulk":
            columns["ess_bulk"] = ess_bulk(values)
        else:
            columns["ess_tail"] = ess_tail(values)
    return pd.DataFrame(columns, index=index)


def interval(flat: np.ndarray, kind: str, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) per column of ``flat`` (draws, parameters): the equal-tailed interval
    (quantiles (1 ∓ prob)/2, linear interpolation) or the highest-density one (the shortest
    interval between two draws holding ⌊prob·S⌋ further draws)."""
    if kind == "eti":
        edge = (1.0 - prob) / 2.0
        lower, upper = np.quantile(flat, [edge, 1.0 - edge], axis=0)
        return lower, upper
    s = np.sort(flat, axis=0)
    n = s.shape[0]
    inc = min(int(np.floor(prob * n)), n - 1)
    widths = s[inc:] - s[: n - inc]
    best = np.argmin(widths, axis=0)
    cols = np.arange(s.shape[1])
    return s[best, cols], s[best + inc, cols]


def _split(values: np.ndarray) -> np.ndarray:
    """(chains, draws, P) -> (2·chains, ⌊draws/2⌋, P): first and last halves of each chain."""
    half = values.shape[1] // 2
    return np.concatenate([values[:, :half], values[:, values.shape[1] - half :]], axis=0)


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Rank-normalise (M, n, P) over all M·n draws of each parameter."""
    M, n, P = values.shape
    ranks = stats.rankdata(values.reshape(M * n, P), method="average", axis=0)
    return np.asarray(special.ndtri((ranks - 0.375) / (M * n + 0.25))).reshape(M, n, P)


def _rhat_raw(x: np.ndarray) -> np.ndarray:
    """Split-R̂ of (M, n, P) chains: sqrt((B/W + n − 1)/n)."""
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R̂ (the larger of bulk and folded) of (chains, draws, P);
    NaN with fewer than 2 chains or 4 draws, or non-finite draws."""
    chains, ndraw, P = values.shape
    out = np.full(P, np.nan)
    ok = np.isfinite(values).all(axis=(0, 1))
    if chains < 2 or ndraw < 4 or not ok.any():
        return out
    split = _split(values[..., ok])
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    out[ok] = np.maximum(_rhat_raw(_z_scale(split)), _rhat_raw(_z_scale(folded)))
    return out


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of (M, n, P) chains (Geyer's initial monotone sequence)."""
    M, n, P = x.shape
    size = M * n
    flat = x.reshape(size, P)
    constant = (flat.max(axis=0) - flat.min(axis=0)) < np.finfo(float).resolution
    m = fft.next_fast_len(2 * n)
    centred = x - x.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centred, n=m, axis=1)
    acov = np.fft.irfft(spec * np.conjugate(spec), n=m, axis=1)[:, :n] / n  # (M, n, P)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if M > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (n, P), lag by lag
    rho[0] = 1.0
    # pairs Γ_k = ρ_2k + ρ_2k+1; Geyer's loop visits k = 1, 2, ... while Γ_{k−1} > 0 and
    # 2k − 1 < n − 3: K is the first k it does not visit
    npairs = max((n - 3) // 2, 0)
    kmax = max(npairs, 1)
    pairs = np.zeros((kmax + 1, P))
    pairs[0] = rho[0] + rho[1]
    for k in range(1, kmax + 1):
        if 2 * k + 1 < n:
            pairs[k] = rho[2 * k] + rho[2 * k + 1]
    K = np.ones(P, dtype=int)
    alive = pairs[0] > 0
    for k in range(1, npairs + 1):
        K = np.where(alive, k + 1, K)
        alive = alive & (pairs[k] > 0)
    # stored values: pairs 1..K−2 always, pair K−1 when Γ_{K−1} >= 0; ρ_{2(K−1)} when > 0
    tau = np.full(P, -1.0)
    prev = pairs[0].copy()
    cols = np.arange(P)
    total = pairs[0].copy()  # Σ of the stored ρ over indices 0..2K−3
    for k in range(1, kmax + 1):
        active = k <= K - 2
        mono = np.minimum(pairs[k], prev)  # the monotone sequence: Γ'_k = min(Γ_k, Γ'_{k−1})
        total = np.where(active, total + mono, total)
        prev = np.where(active, mono, prev)
    last = K - 1  # index of the last visited pair
    even = rho[np.minimum(2 * last, n - 1), cols]
    last_sum = pairs[np.minimum(last, kmax), cols]
    tail = np.where((last >= 1) & ((last_sum >= 0) | (even > 0)), even, 0.0)
    tail = np.where(last == 0, 1.0, tail)  # no visit: ρ₀ = 1 is the last term
    tau = -1.0 + 2.0 * np.where(K >= 2, total, 0.0) + tail
    tau = np.maximum(tau, 1.0 / np.log10(size))
    out = size / tau
    out[np.isnan(rho).any(axis=0)] = np.nan
    out[constant] = size
    return out


def ess_bulk(values: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of (chains, draws, P): ESS of the rank-normalised split
    chains; NaN with fewer than 4 draws or non-finite draws."""
    out = np.full(values.shape[2], np.nan)
    ok = np.isfinite(values).all(axis=(0, 1))
    if values.shape[1] < 4 or not ok.any():
        return out
    out[ok] = _ess(_z_scale(_split(values[..., ok])))
    return out


def ess_tail(values: np.ndarray) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the indicators x ≤ q₀.₀₅ and
    x ≤ q₀.₉₅ over the split chains."""
    out = np.full(values.shape[2], np.nan)
    ok = np.isfinite(values).all(axis=(0, 1))
    if values.shape[1] < 4 or not ok.any():
        return out
    v = values[..., ok]
    q = np.quantile(v.reshape(-1, v.shape[2]), [0.05, 0.95], axis=0)
    low = _ess(_split((v <= q[0]).astype(float)))
    high = _ess(_split((v <= q[1]).astype(float)))
    out[ok] = np.minimum(low, high)
    return out

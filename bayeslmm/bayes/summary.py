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

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import xarray as xr
from scipy import fft, special

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
    diagnosed: dict[str, np.ndarray] | None = None
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
        else:
            if diagnosed is None:
                diagnosed = dict(
                    zip(("r_hat", "ess_bulk", "ess_tail"), diagnose(values), strict=True)
                )
            columns[stat] = diagnosed[stat]
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


#: parameters per block in the diagnostics (bounds their working memory)
_BLOCK = 512
#: statistics per parameter of :func:`diagnose`
_NSTAT = 3


def _blockwise(fn: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """``fn`` of (P, chains, draws) draws (parameter-major: each parameter's draws are
    contiguous) -> (P, k) statistics, applied in blocks of parameters to (chains, draws, P)
    ``values``, two blocks at a time in threads (numpy's sorts and FFTs release the GIL);
    NaN for parameters with non-finite draws."""
    P = values.shape[2]
    starts = list(range(0, P, _BLOCK))

    def run(start: int) -> np.ndarray:
        block = np.ascontiguousarray(np.moveaxis(values[:, :, start : start + _BLOCK], 2, 0))
        ok = np.isfinite(block).all(axis=(1, 2))
        res = np.full((block.shape[0], _NSTAT), np.nan)
        if ok.any():
            res[ok] = fn(block[ok])
        return res

    if len(starts) == 1:
        return run(0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return np.concatenate(list(pool.map(run, starts)))


def _split(x: np.ndarray) -> np.ndarray:
    """(P, chains, draws) -> (P, 2·chains, ⌊draws/2⌋): first and last halves of each chain."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of each row of (P, N) ``x``, ties given their average rank (scipy's
    ``rankdata(method="average")``, vectorised over rows)."""
    P, N = x.shape
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    pos = np.broadcast_to(np.arange(N), (P, N))
    first = np.ones((P, N), dtype=bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones((P, N), dtype=bool)
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, pos, N - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((P, N))
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise (P, M, n) over all M·n draws of each parameter."""
    P, M, n = x.shape
    ranks = _ranks(x.reshape(P, M * n))
    return np.asarray(special.ndtri((ranks - 0.375) / (M * n + 0.25))).reshape(P, M, n)


def _rhat_raw(x: np.ndarray) -> np.ndarray:
    """Split-R̂ of (P, M, n) chains: sqrt((B/W + n − 1)/n)."""
    n = x.shape[2]
    between = n * np.var(x.mean(axis=2), axis=1, ddof=1)
    within = np.mean(np.var(x, axis=2, ddof=1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _diagnose(x: np.ndarray) -> np.ndarray:
    """(P, chains, draws) -> (P, 3): R̂, bulk ESS, tail ESS (module docstring), sharing the
    rank normalisation of the split chains."""
    P, chains, ndraw = x.shape
    out = np.full((P, _NSTAT), np.nan)
    if ndraw < 4:
        return out
    split = _split(x)
    z = _z_scale(split)
    out[:, 1] = _ess(z)
    q = np.quantile(x.reshape(P, -1), [0.05, 0.95], axis=1)  # (2, P)
    low = _ess((split <= q[0][:, None, None]).astype(float))
    high = _ess((split <= q[1][:, None, None]).astype(float))
    out[:, 2] = np.minimum(low, high)
    if chains >= 2:
        folded = np.abs(split - np.median(split.reshape(P, -1), axis=1)[:, None, None])
        out[:, 0] = np.maximum(_rhat_raw(z), _rhat_raw(_z_scale(folded)))
    return out


def diagnose(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R̂, bulk ESS, tail ESS) of every parameter of (chains, draws, P) draws; NaN with
    fewer than 4 draws (R̂: 2 chains) or non-finite draws."""
    res = _blockwise(_diagnose, values)
    return res[:, 0], res[:, 1], res[:, 2]


def rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R̂ (the larger of bulk and folded) of (chains, draws, P)."""
    return diagnose(values)[0]


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of (P, M, n) chains (Geyer's initial monotone sequence)."""
    P, M, n = x.shape
    size = M * n
    flat = x.reshape(P, size)
    constant = (flat.max(axis=1) - flat.min(axis=1)) < np.finfo(float).resolution
    m = fft.next_fast_len(2 * n)
    centred = x - x.mean(axis=2, keepdims=True)
    spec = np.fft.rfft(centred, n=m, axis=2)
    acov = np.fft.irfft(spec * np.conjugate(spec), n=m, axis=2)[:, :, :n] / n  # (P, M, n)
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if M > 1:
        var_plus = var_plus + np.var(x.mean(axis=2), axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]).T  # (n, P)
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
    chains."""
    return diagnose(values)[1]


def ess_tail(values: np.ndarray) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the indicators x ≤ q₀.₀₅ and
    x ≤ q₀.₉₅ over the split chains."""
    return diagnose(values)[2]

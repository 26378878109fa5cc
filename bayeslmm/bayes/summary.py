"""Posterior summaries of draws: one function behind every summary table of the package.

The diagnostics are Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), computed as
ArviZ 1.x computes them (a test holds the two to rounding), compiled, one pass per parameter
(ArviZ loops over parameters in Python, and importing it costs 2 s):

* rank normalisation: z = Φ⁻¹((r − 3/8)/(S + 1/4)) of the ranks r of all S draws;
* split chains: each chain's first and last halves;
* r_hat: the larger of the split R̂ of the rank-normalised draws and of their folded
  version |x − median|;
* ess_bulk: the effective sample size of the rank-normalised split chains (Geyer's initial
  positive and monotone sequences of autocorrelations);
* ess_tail: the smaller of the ESS of the indicators x ≤ q₀.₀₅ and x ≤ q₀.₉₅, the paper's
  quantiles (``az.ess(method="tail")`` defaults to the 0.11 and 0.89 of its interval
  probability; pass ``prob=(0.05, 0.95)`` to reproduce these).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

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


def diagnose(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R̂, bulk ESS, tail ESS) of every parameter of (chains, draws, P) draws; NaN with
    fewer than 4 draws (R̂: 2 chains) or non-finite draws.

    Compiled (:mod:`.compiled_diagnostics`), in blocks of parameters transposed so that each
    parameter's draws are contiguous, two blocks at a time in threads.
    """
    from .compiled_diagnostics import diagnose_block

    chains, ndraw, P = values.shape
    half = ndraw // 2
    S = 2 * chains * half
    ztab = special.ndtri((np.arange(max(2 * S - 1, 1)) / 2.0 + 1.0 - 0.375) / (S + 0.25))
    out = np.full((P, 3), np.nan)
    if half < 2:
        return out[:, 0], out[:, 1], out[:, 2]

    def run(start: int) -> None:
        block = np.moveaxis(values[:, :, start : start + _BLOCK], 2, 0).astype(float)
        split = np.ascontiguousarray(
            np.concatenate([block[:, :, :half], block[:, :, ndraw - half :]], axis=1).reshape(
                len(block), S
            )
        )
        with np.errstate(invalid="ignore"):
            quantiles = np.ascontiguousarray(
                np.quantile(block.reshape(len(block), -1), [0.05, 0.95], axis=1).T
            )
        order = np.argsort(split, axis=1)
        diagnose_block(split, order, quantiles, chains, ztab, out[start : start + _BLOCK])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, range(0, P, _BLOCK)))
    return out[:, 0], out[:, 1], out[:, 2]


def rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R̂ (the larger of bulk and folded) of (chains, draws, P)."""
    return diagnose(values)[0]


def ess_bulk(values: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of (chains, draws, P): ESS of the rank-normalised split
    chains."""
    return diagnose(values)[1]


def ess_tail(values: np.ndarray) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the indicators x ≤ q₀.₀₅ and
    x ≤ q₀.₉₅ over the split chains."""
    return diagnose(values)[2]

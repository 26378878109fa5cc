"""Posterior summaries of draws: one function behind every summary table of the package."""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

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
    ``ess_bulk``, ``ess_tail``: ArviZ's rank-normalised diagnostics.
    """
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {STATS}")
    da = draws.transpose(*names.SAMPLE_DIMS, ...)
    values = da.to_numpy().reshape(da.shape[0], da.shape[1], -1)
    flat = values.reshape(-1, values.shape[2])
    plain = xr.DataArray(values, dims=(*names.SAMPLE_DIMS, "param"))
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
            interval = (az.eti if kind == "eti" else az.hdi)(plain, prob=prob)
            columns[lb] = interval.sel(ci_bound="lower").to_numpy()
            columns[ub] = interval.sel(ci_bound="upper").to_numpy()
        elif stat == "r_hat":
            columns["r_hat"] = az.rhat(plain).to_numpy()
        else:
            columns[stat] = az.ess(plain, method=stat.removeprefix("ess_")).to_numpy()
    return pd.DataFrame(columns, index=index)

"""Estimated marginal means and contrasts over posterior draws (emmeans for Bayesian
models: the same reference grid as a REML fit's, :mod:`bayeslmm.emgrid`, evaluated at
every draw of β).

Columns: ``emmean`` (``estimate`` for contrasts), the posterior median of ℓᵀβ (+ offset),
as emmeans reports it for brms; ``sd``; the posterior's credible interval at its
``ci_prob`` and ``ci_kind`` (``eti89_lb``, ``eti89_ub``: the package's names, not
emmeans' ``lower.HPD``, since the kind is a setting); ``r_hat`` and ``ess_bulk``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .. import names
from ..emgrid import EmmeansError, EmmeansTable, reference_grid
from .summary import summarize

_STATS = ("median", "sd", "ci", "r_hat", "ess_bulk")


def posterior_emmeans(
    post: Any,
    specs: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
) -> EmmeansTable:
    """emmeans' grid of ``post``'s model (a Posterior) at every posterior draw (module
    doc)."""
    grid = reference_grid(post.design, specs, by, at)
    fixef = post.draws(names.FIXEF).transpose(*names.SAMPLE_DIMS, ...)
    beta = fixef.to_numpy()  # (chain, draw, p)

    def evaluate(
        L: np.ndarray, offset: np.ndarray, index: pd.Index, kind: str, **options: Any
    ) -> pd.DataFrame:
        if options:
            raise EmmeansError(
                f"posterior contrasts take no {sorted(options)} (no p-values to adjust)"
            )
        values = beta @ L.T + offset
        da = xr.DataArray(values, dims=(*names.SAMPLE_DIMS, "cell"))
        table = summarize(da, index, kind=post.ci_kind, prob=post.ci_prob, stats=_STATS)
        return table.rename(columns={"median": "emmean" if kind == "emmeans" else "estimate"})

    return EmmeansTable.build(grid, evaluate)

"""Estimated marginal means and contrasts of a REML fit, as emmeans 1.8 for ``lmer``.

The reference grid and the rows L averaging it are :mod:`bayeslmm.emgrid`'s; here each
row's estimate ℓᵀβ̂ (plus the offset there), its SE and df come from
:class:`~bayeslmm.reml.ddf.Contrasts`: Kenward–Roger (emmeans' default for lmer: SE from
pbkrtest's adjusted covariance, df from ``Lb_ddf``) or Satterthwaite (lmerTest's).

Columns are emmeans' names, so tables read the same as R's: ``emmean``, ``SE``, ``df``,
``lower.CL``, ``upper.CL`` for means; ``estimate``, ``SE``, ``df``, ``t.ratio``,
``p.value`` for contrasts (and ``lower.CL``/``upper.CL``).  A Posterior's
``emmeans`` uses the package's interval names instead, since its interval is not a
confidence interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..design import Design
from ..emgrid import EmmeansError, EmmeansTable, reference_grid
from .ddf import Contrasts
from .inference import Estimates

#: p-value adjustments of contrast families
ADJUST = ("none", "tukey", "bonferroni", "holm", "sidak")


def adjust_p(p: np.ndarray, t: np.ndarray, df: np.ndarray, method: str, k: int) -> np.ndarray:
    """emmeans' ``adjust``: ``"none"``, ``"tukey"`` (studentized range over the ``k``
    means), ``"bonferroni"``, ``"holm"``, ``"sidak"`` over the family of len(p) tests."""
    m = len(p)
    if method == "none" or m <= 1:
        return p
    if method == "tukey":
        return np.array(
            [
                stats.studentized_range.sf(abs(ti) * np.sqrt(2), k, d)
                for ti, d in zip(t, df, strict=True)
            ]
        )
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    if method == "sidak":
        return 1 - (1 - p) ** m
    if method == "holm":
        order = np.argsort(p)
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, adj)
        return out
    raise EmmeansError(f"adjust must be one of {ADJUST}, got {method!r}")


def emmeans(
    design: Design,
    work: Estimates,
    specs: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
    *,
    ddf: str = "kenward-roger",
    level: float = 0.95,
) -> EmmeansTable:
    """emmeans' ``emmeans(fit, specs, by, at)`` (module doc): the grid of ``design`` (the
    model's), the algebra of ``work`` (the fit on its working design, ``LmerFit.working``)."""
    if not 0 < level < 1:
        raise EmmeansError(f"level must be in (0, 1), got {level!r}")
    grid = reference_grid(design, specs, by, at)
    return EmmeansTable.build(grid, _Evaluator(work, ddf, level))


class _Evaluator:
    """The REML path's table of contrasts L (one :class:`Contrasts` for all)."""

    def __init__(self, fit: Estimates, ddf: str, level: float):
        self.contrasts = Contrasts(fit, ddf)
        self.level = level

    def __call__(
        self,
        L: np.ndarray,
        offset: np.ndarray,
        index: pd.Index,
        kind: str,
        adjust: str = "none",
    ) -> pd.DataFrame:
        est, se, df = self.contrasts.rows(L)
        est = est + offset
        half = stats.t.ppf(0.5 + self.level / 2, df) * se
        if kind == "emmeans":
            cols = {"emmean": est, "SE": se, "df": df, "lower.CL": est - half}
            return pd.DataFrame({**cols, "upper.CL": est + half}, index=index)
        t = est / se
        p = 2 * stats.t.sf(np.abs(t), df)
        nmeans = round((1 + np.sqrt(1 + 8 * len(est))) / 2)
        out = {"estimate": est, "SE": se, "df": df, "t.ratio": t}
        out["p.value"] = adjust_p(np.asarray(p), t, df, adjust, nmeans)
        return pd.DataFrame(out, index=index)

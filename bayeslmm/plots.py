"""Figures for the REML/posterior comparison (matplotlib; every function returns the Figure).

- :func:`plot_compare`: forest plot of the shared parameters, REML beside posterior.
- :func:`plot_shrinkage`: the partial-pooling picture (T. J. Mahr, 2017): each group's
  no-pooling estimate with an arrow to its partial-pooling estimate, the population
  estimate and contours of the estimated random-effect distribution N(β, Σ̂).
- :func:`plot_group_fits`: one panel per group with its data and the no-pooling,
  partial-pooling and complete-pooling lines.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state): save them with
``fig.savefig(path)``; notebooks display them inline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch
from matplotlib.ticker import MaxNLocator
from scipy import stats

from . import names
from .compare import (
    ComparisonError,
    Pooling,
    check_inputs,
    ci_settings,
    compare,
    pooling,
    posterior_population,
    reml_population,
    resolve_factor,
    sdcor_by_key,
)
from .design import Design

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

    from .bayes.posterior import Posterior
    from .reml.fit import LmerFit

#: plot_shrinkage names the groups when there are at most this many.
_MAX_LABELLED = 12

#: Line style of each estimate in plot_group_fits.
_LINESTYLE = {"no_pooling": ":", "complete_pooling": "--", "reml": "-", "posterior": "-."}

#: One colour / marker per estimate, shared by the three figures.
_STYLE = {
    "no_pooling": {"color": "0.45", "marker": "o", "label": "no pooling"},
    "complete_pooling": {"color": "tab:green", "marker": "s", "label": "complete pooling"},
    "reml": {"color": "tab:blue", "marker": "o", "label": "partial pooling (REML)"},
    "posterior": {"color": "tab:orange", "marker": "D", "label": "partial pooling (posterior)"},
}


# --------------------------------------------------------------------------------------
# plot_compare
# --------------------------------------------------------------------------------------


def plot_compare(
    fit: LmerFit | None = None,
    posterior: Posterior | None = None,
    *,
    ci_kind: str | None = None,
    ci_prob: float | None = None,
    reml_ci: str | None = "profile",
) -> Figure:
    """Forest plot of :func:`~bayeslmm.compare`: one row per parameter, each on its own scale.

    REML: the estimate with its confidence interval of the same probability as the
    posterior's (``reml_ci``: the profile interval of every row by default, which is of
    the ML likelihood as lme4's and may exclude a REML estimate; ``"wald"``: fixed effects
    only, the variance parameters are points).  Posterior: the mean and the
    credible interval (ArviZ's default kind and probability unless given).
    """
    table = compare(fit, posterior, ci_kind=ci_kind, ci_prob=ci_prob, reml_ci=reml_ci)
    kind, prob = ci_settings(ci_kind, ci_prob, posterior)
    lb, ub = names.ci_columns(kind, prob)
    est = next((c for c in ("reml", "ml") if c in table.columns), None)
    # the REML interval compare() gave (Wald where the model is too large for a profile)
    shown = [m for m in ("profile", "wald") if names.ci_columns(m, prob)[0] in table.columns]
    method = shown[0] if shown else None
    rlb, rub = names.ci_columns(method or "", prob)
    nrow = len(table)
    fig = Figure(figsize=(7.0, 0.9 + 0.42 * nrow), layout="constrained")
    axes = fig.subplots(nrow, 1, squeeze=False)[:, 0]
    for ax, (label, row) in zip(axes, table.iterrows(), strict=True):
        if est is not None:  # a profile is of the ML likelihood: it may exclude REML's point
            if method is not None and np.isfinite(row[rlb]):
                ax.plot([row[rlb], row[rub]], [0.18, 0.18], lw=2.5, **_color("reml"))
            ax.plot(row[est], 0.18, "o", ms=5, **_color("reml"))
        if "mean" in table.columns:
            ax.plot([row[lb], row[ub]], [-0.18, -0.18], lw=2.5, **_color("posterior"))
            ax.plot(row["mean"], -0.18, "D", ms=5, **_color("posterior"))
        ax.set_ylim(-0.6, 0.6)
        ax.set_yticks([0.0], [label], fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="0.9")
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    handles = []
    if est is not None:
        name = "REML" if est == "reml" else "ML"
        interval = "" if method is None else f" and {names.ci_percent(prob)}% {method} CI"
        handles.append(_handle("reml", f"{name} estimate{interval}"))
    if "mean" in table.columns:
        interval = names.ci_legend(kind, prob)
        handles.append(_handle("posterior", f"posterior mean and {interval}"))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=9)
    return fig


def _color(which: str) -> dict[str, Any]:
    return {"color": _STYLE[which]["color"]}


def _handle(which: str, label: str | None = None, **kw: Any) -> Line2D:
    style = _STYLE[which]
    kw = {"marker": style["marker"], "color": style["color"], "ls": "none"} | kw
    return Line2D([], [], label=label or style["label"], **kw)


# --------------------------------------------------------------------------------------
# plot_shrinkage
# --------------------------------------------------------------------------------------


def plot_shrinkage(
    fit: LmerFit | None = None,
    posterior: Posterior | None = None,
    *,
    factor: str | None = None,
    terms: Sequence[str] | None = None,
    contours: Sequence[float] = (0.5, 0.9),
) -> Figure:
    """The partial-pooling picture for two random-effect columns of one grouping factor.

    Each group's no-pooling estimate (its own least squares fit) has an arrow to its
    partial-pooling estimate (REML ``coef``, and the posterior mean when a posterior is
    given); the population estimate β̂ sits in the middle of the contours of
    N(β̂, Σ̂) that hold ``contours`` of the mass (Mahalanobis radius √χ²₂(p)).  Σ̂ is the REML
    covariance of the two columns (the posterior mean of Σ without a fit).

    ``terms`` defaults to the factor's first two columns, e.g. ("(Intercept)", "Days").
    For a factor with a single column (random intercept) the figure is one-dimensional:
    one row per group, no pooling → partial pooling, the posterior interval, and the group
    size in the label.
    """
    design = check_inputs(fit, posterior)
    factor = resolve_factor(design, factor)
    pool = pooling(design, factor)
    if terms is None:
        terms = pool.terms[:2]
    terms = list(terms)
    unknown = [t for t in terms if t not in pool.terms]
    if unknown or len(terms) not in (1, 2) or len(set(terms)) != len(terms):
        raise ComparisonError(
            f"terms must be one or two distinct random-effect columns of {factor!r} "
            f"({pool.terms}), got {terms}"
        )
    est = _group_estimates(fit, posterior, pool, terms)
    if len(terms) == 1:
        return _shrinkage_1d(est, pool, factor, terms[0])
    cov = _covariance(fit, posterior, design, factor, terms)
    return _shrinkage_2d(est, pool, factor, terms, cov, contours)


@dataclass(frozen=True)
class _Estimates:
    """A factor's per-level estimates over some columns (levels x columns).

    ``partial`` and ``population``: per partial-pooling estimate ("reml" first, then
    "posterior"), the levels' coefficients and the population β.  With a posterior:
    ``lower``/``upper`` its interval and ``draws`` its coefficient draws (chain, draw,
    level, column).
    """

    no_pooling: pd.DataFrame
    complete_pooling: np.ndarray
    partial: dict[str, pd.DataFrame]
    population: dict[str, np.ndarray]
    lower: pd.DataFrame | None = None
    upper: pd.DataFrame | None = None
    draws: xr.DataArray | None = None

    @property
    def first(self) -> str:
        """The estimate arrows point to: REML when there is a fit, else the posterior."""
        return next(iter(self.partial))


def _group_estimates(
    fit: LmerFit | None, posterior: Posterior | None, pool: Pooling, columns: list[str]
) -> _Estimates:
    """No, complete and partial pooling over ``columns`` for the levels of ``pool``."""
    partial, population = {}, {}
    lower = upper = draws = None
    if fit is not None:
        partial["reml"] = fit.coef[pool.factor][columns]
        population["reml"] = reml_population(fit, columns)
    if posterior is not None:
        from .bayes.summary import summarize

        draws = posterior.coef_draws(pool.factor).sel(term=columns)
        kind, prob = ci_settings(None, None, posterior)
        cells = pd.MultiIndex.from_product([pool.levels, columns])
        stats = summarize(draws, cells, kind=kind, prob=prob, stats=("mean", "ci"))
        mean, lower, upper = (
            pd.DataFrame(v, index=pool.no_pooling.index, columns=columns)
            for v in stats.to_numpy().reshape(len(pool.levels), len(columns), 3).transpose(2, 0, 1)
        )
        partial["posterior"] = mean
        population["posterior"] = posterior_population(posterior, columns)
    return _Estimates(
        no_pooling=pool.no_pooling[columns],
        complete_pooling=pool.complete_pooling[columns].to_numpy(),
        partial=partial,
        population=population,
        lower=lower,
        upper=upper,
        draws=draws,
    )


def _covariance(
    fit: LmerFit | None,
    posterior: Posterior | None,
    design: Design,
    factor: str,
    terms: list[str],
) -> np.ndarray:
    """Σ̂ of the factor's columns ``terms`` (0 across different terms of the factor): the
    REML estimate, else the posterior mean of Σ."""
    cov = np.zeros((len(terms), len(terms)))
    if fit is not None:
        sdcor = sdcor_by_key(fit.varcorr)
    else:
        assert posterior is not None
        draws = posterior.parameter_draws()
    for t in design.factor_terms(factor):
        for i, a in enumerate(terms):
            for j, b in enumerate(terms):
                if a not in t.cnames or b not in t.cnames:
                    continue
                var1, var2 = sorted((a, b), key=t.cnames.index)
                if fit is not None:
                    rho = 1.0 if a == b else sdcor[(t.group, var1, var2)]
                    cov[i, j] += sdcor[(t.group, a, None)] * sdcor[(t.group, b, None)] * rho
                    continue
                prod = draws.sel(parameter=names.sd_label(t.group, a)) * draws.sel(
                    parameter=names.sd_label(t.group, b)
                )
                if a != b:
                    prod = prod * draws.sel(parameter=names.corr_label(t.group, var1, var2))
                cov[i, j] += float(prod.mean())
    return cov


def _shrinkage_2d(
    est: _Estimates,
    pool: Pooling,
    factor: str,
    terms: list[str],
    cov: np.ndarray,
    contours: Sequence[float],
) -> Figure:
    fig = Figure(figsize=(7.0, 6.2), layout="constrained")
    ax = fig.subplots()
    nopool = est.no_pooling.to_numpy()
    centre = est.population[est.first]
    # contours of N(β, Σ): Mahalanobis radius r with P(χ²₂ ≤ r²) = p
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    for p in sorted(contours):
        r = math.sqrt(stats.chi2.ppf(p, df=2))
        ax.add_patch(
            Ellipse(
                (float(centre[0]), float(centre[1])),
                2 * r * math.sqrt(max(vals[-1], 0.0)),
                2 * r * math.sqrt(max(vals[0], 0.0)),
                angle=angle,
                fill=False,
                color="0.6",
                lw=1,
                ls="--",
            )
        )
        top = centre + r * vecs[:, -1] * math.sqrt(max(vals[-1], 0.0))
        ax.annotate(f"{names.ci_percent(p)}%", _xy(top), fontsize=8, color="0.45", ha="center")
    # arrows to the REML estimates (to the posterior means when there is no fit)
    partial = est.partial[est.first].to_numpy()
    for a, b in zip(nopool, partial, strict=True):
        if np.all(np.isfinite(a)):
            _arrow(ax, a, b, est.first)
    if "posterior" in est.partial:
        post = est.partial["posterior"].to_numpy().T
        ax.plot(*post, ls="none", ms=8, mfc="none", **_marker("posterior"))
    if "reml" in est.partial:
        ax.plot(*est.partial["reml"].to_numpy().T, ls="none", ms=4.5, **_marker("reml"))
    ax.plot(*nopool.T, ls="none", ms=6, mfc="white", **_marker("no_pooling"))
    if len(pool.levels) <= _MAX_LABELLED:
        for level, a, b in zip(pool.levels, nopool, partial, strict=True):
            start = a if np.all(np.isfinite(a)) else b
            ax.annotate(level, _xy(start), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.plot(*centre, "*", color="black", ms=14, mec="white", zorder=5)
    ax.set_xlabel(terms[0])
    ax.set_ylabel(terms[1])
    ax.set_title(f"{factor}: no pooling → partial pooling, toward the population β")
    handles = [_handle("no_pooling", mfc="white")]
    handles += [_handle(w, mfc="none" if w == "posterior" else None) for w in est.partial]
    handles += [
        Line2D([], [], marker="*", color="black", ls="none", ms=12, label="population β"),
        Line2D([], [], color="0.6", ls="--", label=f"N(β, Σ) contours {_pct(contours)}"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.autoscale_view()
    return fig


def _shrinkage_1d(est: _Estimates, pool: Pooling, factor: str, term: str) -> Figure:
    nopool = est.no_pooling[term].to_numpy()
    order = np.argsort(nopool, kind="stable")
    nl = len(pool.levels)
    fig = Figure(figsize=(7.0, 1.4 + 0.28 * nl), layout="constrained")
    ax = fig.subplots()
    y = np.empty(nl)
    y[order] = np.arange(nl)
    shift = 0.14 if len(est.partial) == 2 else 0.0
    offset = {"reml": shift, "posterior": -shift}
    if est.lower is not None and est.upper is not None:
        lo, hi = est.lower[term].to_numpy(), est.upper[term].to_numpy()
        ax.hlines(y + offset["posterior"], lo, hi, lw=2, alpha=0.45, **_color("posterior"))
    for which, table in est.partial.items():
        partial = table[term].to_numpy()
        for yi, a, b in zip(y, nopool, partial, strict=True):
            if np.isfinite(a):
                _arrow(ax, (a, yi), (b, yi + offset[which]), which)
        ax.plot(partial, y + offset[which], ls="none", ms=5, **_marker(which))
    ax.plot(nopool, y, ls="none", ms=6, mfc="white", **_marker("no_pooling"))
    ax.axvline(est.population[est.first][0], color="black", lw=1)
    ax.axvline(est.complete_pooling[0], color=_STYLE["complete_pooling"]["color"], lw=1, ls="--")
    ax.set_yticks(np.arange(nl), [f"{pool.levels[i]} (n={pool.n[i]})" for i in order], fontsize=8)
    ax.set_ylim(-0.7, nl - 0.3)
    ax.set_xlabel(term)
    ax.set_ylabel(factor)
    ax.set_title(f"{factor}: {term}, no pooling → partial pooling")
    handles = [_handle("no_pooling", mfc="white")] + [_handle(w) for w in est.partial]
    handles += [
        Line2D([], [], color="black", lw=1, label="population β"),
        Line2D(
            [], [], color=_STYLE["complete_pooling"]["color"], ls="--", label="complete pooling"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    return fig


def _arrow(ax: Axes, start: ArrayLike, end: ArrayLike, which: str) -> None:
    """An arrow from a no-pooling estimate to a partial-pooling one."""
    style = {"arrowstyle": "->", "color": _STYLE[which]["color"], "lw": 0.9}
    ax.annotate("", xy=_xy(end), xytext=_xy(start), arrowprops=style | {"shrinkA": 3, "shrinkB": 3})


def _xy(point: ArrayLike) -> tuple[float, float]:
    """A point as matplotlib's annotations take it."""
    x, y = np.asarray(point, dtype=float)
    return float(x), float(y)


def _marker(which: str) -> dict[str, Any]:
    style = _STYLE[which]
    return {"marker": style["marker"], "color": style["color"]}


def _pct(contours: Sequence[float]) -> str:
    return "/".join(names.ci_percent(p) for p in sorted(contours)) + " %"


# --------------------------------------------------------------------------------------
# plot_group_fits
# --------------------------------------------------------------------------------------


def plot_group_fits(
    fit: LmerFit | None = None,
    posterior: Posterior | None = None,
    *,
    factor: str | None = None,
    x: str | None = None,
) -> Figure:
    """One panel per group: its data and the no-, partial- and complete-pooling lines.

    ``x`` is a model-matrix column (default: the factor's first random slope, else the
    first fixed-effect covariate; for an intercept-only model the observations are
    plotted in data order).  Each line is the fitted value of that estimate at the
    group's mean of every other column, e.g. ``ŷ = b₀ + b₁·x`` for sleepstudy.  With a
    posterior the band is its pointwise credible interval of the group's line.
    """
    design = check_inputs(fit, posterior)
    factor = resolve_factor(design, factor)
    pool = pooling(design, factor)
    covariates = [c for c in pool.terms + pool.columns if c != "(Intercept)"]
    if x is None:
        x = covariates[0] if covariates else None
    elif x not in covariates:
        raise ComparisonError(
            f"x must be a covariate column of the model ({list(dict.fromkeys(covariates))}), "
            f"got {x!r}"
        )
    est = _group_estimates(fit, posterior, pool, pool.columns)
    prob = ci_settings(None, None, posterior)[1]
    tail = (1 - prob) / 2
    nl = len(pool.levels)
    ncols = min(nl, 6)
    nrows = math.ceil(nl / ncols)
    width = max(1.9, 6.4 / ncols)  # panel width (inches): few groups get bigger panels
    fig = Figure(figsize=(width * ncols + 0.6, 0.9 * width * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    j = pool.columns.index(x) if x is not None else None
    y = design.y
    for i, ax in enumerate(axes):
        if i >= nl:
            ax.set_visible(False)
            continue
        rows = pool.codes == i
        Xg = pool.X[rows]
        xg = Xg[:, j] if j is not None else np.arange(1, rows.sum() + 1, dtype=float)
        grid = np.linspace(xg.min(), xg.max(), 20) if len(xg) > 1 else xg
        design_grid = np.tile(Xg.mean(axis=0), (len(grid), 1))
        if j is not None:
            design_grid[:, j] = grid
        ax.plot(xg, y[rows], "o", ms=3, color="black", alpha=0.7, label="data")
        if est.draws is not None:
            coef = est.draws.isel({factor: i}).to_numpy()
            band = np.einsum("cdk,gk->cdg", coef, design_grid)
            lo, hi = np.quantile(band.reshape(-1, len(grid)), [tail, 1 - tail], axis=0)
            ax.fill_between(grid, lo, hi, alpha=0.2, lw=0, **_color("posterior"))
        lines = {
            "complete_pooling": est.complete_pooling,
            "no_pooling": est.no_pooling.to_numpy()[i],
        }
        # dash-dot posterior on top of the solid REML line
        lines.update({w: table.to_numpy()[i] for w, table in est.partial.items()})
        for w, coef in lines.items():
            # aliased columns (NaN) drop out of the fitted values, as in predict.lm
            yhat = design_grid @ np.nan_to_num(coef)
            ax.plot(grid, yhat, ls=_LINESTYLE[w], lw=1.5, label=_STYLE[w]["label"], **_color(w))
        ax.set_title(f"{pool.levels[i]} (n={pool.n[i]})", fontsize=8, pad=2)
        ax.tick_params(labelsize=7)
        if j is None:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.supxlabel(x if x is not None else "observation", fontsize=9)
    fig.supylabel(design.response, fontsize=9)
    shown = {"no_pooling", "complete_pooling", *est.partial}
    handles: list[Artist] = [
        Line2D([], [], color=_STYLE[w]["color"], ls=_LINESTYLE[w], lw=1.5, label=_STYLE[w]["label"])
        for w in _LINESTYLE
        if w in shown
    ]
    if est.draws is not None:
        label = f"posterior {names.ci_percent(prob)}% band"
        handles.append(Patch(alpha=0.2, lw=0, label=label, **_color("posterior")))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8)
    return fig

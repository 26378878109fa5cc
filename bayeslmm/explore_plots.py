"""Figures for exploring a fit or a posterior, as brms's ``pp_check``, ``conditional_effects``
and ArviZ's trace and posterior plots (every function returns a matplotlib Figure).

- :func:`plot_ppc`: posterior predictive check: the data's density (or ECDF) over those
  of replicated data sets (ArviZ's ``plot_ppc_dist``), or a statistic per group: the
  replicated statistic's intervals beside the observed one.
- :func:`plot_predictions`: fitted lines against a covariate with REML or posterior bands,
  for the population and per group (:meth:`LmerFit.predict` / :meth:`Posterior.predict`).
- :func:`plot_trace`, :func:`plot_posterior`: ArviZ's ``plot_trace_dist`` and ``plot_dist``
  on the parameters, labelled as :func:`~bayeslmm.compare` labels them.

matplotlib (and ArviZ, for the ArviZ-based figures) load on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from . import names
from .bayes import is_posterior
from .design import Design
from .errors import BayesLMMError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from .bayes.posterior import Posterior
    from .reml.fit import LmerFit

#: the statistics ``plot_ppc`` knows by name
_STATS: dict[str, Callable[[np.ndarray], Any]] = {
    "mean": lambda a: a.mean(axis=-1),
    "median": lambda a: np.median(a, axis=-1),
    "sd": lambda a: a.std(axis=-1, ddof=1),
    "min": lambda a: a.min(axis=-1),
    "max": lambda a: a.max(axis=-1),
}
#: panels of plot_predictions at most (a larger factor: pass ``levels``)
_MAX_PANELS = 36
_POPULATION = "tab:green"
_GROUP = "tab:blue"
_NEW = "tab:orange"


def _figure(pc: Any) -> Figure:
    """The matplotlib Figure of an ArviZ PlotCollection, detached from pyplot's state (so
    a notebook shows it once, as the returned value)."""
    import matplotlib.pyplot as plt

    fig: Figure = pc.viz["figure"].item()
    plt.close(fig)
    return fig


def _check_posterior(post: Any, what: str) -> Posterior:
    if not is_posterior(post):
        raise BayesLMMError(f"{what} needs a Posterior (model.sample()), got {type(post).__name__}")
    return cast("Posterior", post)


# --------------------------------------------------------------------------------------
# plot_ppc
# --------------------------------------------------------------------------------------


def plot_ppc(
    post: Posterior,
    kind: str = "density",
    *,
    stat: str | Callable[[np.ndarray], Any] | None = None,
    group: str | None = None,
    num_draws: int = 100,
    seed: int | None = None,
) -> Figure:
    """Posterior predictive check (brms's ``pp_check``).

    Replicated data sets y_rep,s = Xβ_s + Zb_s + ε_s, ε_s ~ N(0, σ_s²), one per draw
    (:meth:`Posterior.predict` with ``kind="response"``).  Without ``stat``: the data's
    distribution over ``num_draws`` replicated ones, ``kind`` "density" (KDE) or "ecdf"
    (ArviZ's ``plot_ppc_dist``).  With ``stat`` ("mean", "median", "sd", "min", "max" or
    a function of an array's last axis) and optionally ``group`` (a grouping factor):
    per group, the interval of T(y_rep) over all draws (thin: the posterior's interval,
    thick: 50%) and the observed T(y) (a dot, red where outside the interval).
    """
    post = _check_posterior(post, "plot_ppc")
    if kind not in ("density", "ecdf"):
        raise BayesLMMError(f"kind must be 'density' or 'ecdf', got {kind!r}")
    if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 1:
        raise BayesLMMError(f"num_draws must be a positive integer, got {num_draws!r}")
    design = post.design
    yrep = post.predict(kind="response", seed=seed, summary=False)
    assert not isinstance(yrep, pd.DataFrame)
    if stat is None and group is None:
        return _ppc_dist(design, yrep, kind, num_draws)
    fn = _statistic(stat if stat is not None else "mean")
    return _ppc_stat(post, yrep, fn, stat if isinstance(stat, str) else "T", group)


def _ppc_dist(design: Design, yrep: xr.DataArray, kind: str, num_draws: int) -> Figure:
    import arviz as az
    import xarray as xr

    var = design.response
    tree = xr.DataTree.from_dict(
        {
            "posterior_predictive": xr.Dataset({var: yrep.drop_vars(names.OBS)}),
            "observed_data": xr.Dataset({var: ((names.OBS,), design.y)}),
        }
    )
    pc = az.plot_ppc_dist(
        tree,
        kind="kde" if kind == "density" else "ecdf",
        num_samples=min(num_draws, yrep.sizes["chain"] * yrep.sizes["draw"]),
        figure_kwargs={"figsize": (6.4, 3.6), "layout": "constrained"},
    )
    return _figure(pc)


def _statistic(stat: str | Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    if callable(stat):
        return stat
    if stat not in _STATS:
        raise BayesLMMError(f"stat must be one of {', '.join(_STATS)} or a function, got {stat!r}")
    return _STATS[stat]


def _ppc_stat(
    post: Posterior, yrep: xr.DataArray, fn: Callable, label: str, group: str | None
) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    design = post.design
    if group is None:
        levels, codes = ["all"], np.zeros(design.nobs, dtype=np.intp)
    else:
        terms = design.factor_terms(group)
        if not terms:
            raise BayesLMMError(
                f"unknown grouping factor {group!r}; have {', '.join(design.group_factors)}"
            )
        levels, codes = list(terms[0].levels), terms[0].codes
    draws = yrep.transpose(*names.SAMPLE_DIMS, names.OBS).to_numpy().reshape(-1, design.nobs)
    tail = (1 - post.ci_prob) / 2
    rows = []
    for j in range(len(levels)):
        sel = codes == j
        t_rep = np.asarray(fn(draws[:, sel]), dtype=float)
        t_obs = float(fn(design.y[sel][None, :])[0])
        lo, q25, q75, hi = np.quantile(t_rep, [tail, 0.25, 0.75, 1 - tail])
        rows.append((t_obs, lo, q25, q75, hi))
    table = np.array(rows)
    n = len(levels)
    fig = Figure(figsize=(6.4, 1.2 + 0.24 * n), layout="constrained")
    ax = fig.subplots()
    ypos = np.arange(n)[::-1]
    ax.hlines(ypos, table[:, 1], table[:, 4], color="0.55", lw=1.2)
    ax.hlines(ypos, table[:, 2], table[:, 3], color="0.3", lw=4)
    outside = (table[:, 0] < table[:, 1]) | (table[:, 0] > table[:, 4])
    ax.scatter(table[:, 0], ypos, c=np.where(outside, "tab:red", "black"), s=18, zorder=3)
    ax.set_yticks(ypos, levels, fontsize=8 if n > 12 else 9)
    ax.set_xlabel(f"{label}({design.response})")
    if group is not None:
        ax.set_ylabel(group)
    ax.grid(axis="x", color="0.9")
    interval = names.ci_legend(post.ci_kind, post.ci_prob)
    handles = [
        Line2D([], [], color="0.55", lw=1.2, label=f"replicated, {interval}"),
        Line2D([], [], color="0.3", lw=4, label="replicated, 50%"),
        Line2D([], [], color="black", marker="o", ls="none", label="observed"),
    ]
    if outside.any():
        handles.append(
            Line2D([], [], color="tab:red", marker="o", ls="none", label="observed, outside")
        )
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8)
    return fig


# --------------------------------------------------------------------------------------
# plot_predictions
# --------------------------------------------------------------------------------------


def plot_predictions(
    fit_or_post: LmerFit | Posterior,
    x: str | None = None,
    by: str | None = None,
    *,
    levels: Sequence[str] | None = None,
    new_group: bool = True,
    points: int = 40,
) -> Figure:
    """Fitted lines against the numeric column ``x`` (brms's ``conditional_effects``).

    Other predictor columns are held at their mean (numeric) or first level (factors),
    within each group for the group panels.  ``by=None``: one panel with the population
    line (``group_effects="none"``) and its band and, with ``new_group``, the band of a
    new group's line ("new"); the data in grey.  ``by`` a grouping factor: one panel per
    level (``levels`` to choose; at most 36) with its data, its line ("observed") and
    band, and the population line dashed.  Bands: a posterior's interval of the line per
    draw, or a REML fit's normal interval conditional on θ̂ (:meth:`LmerFit.predict` with
    ``summary=True``), at the posterior's (or the default 0.89) probability.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    design, predict, ci = _predictor(fit_or_post)
    x = _covariate(design, x)
    predictors = [c for c in design.frame.columns if c != design.response]
    frame = design.frame
    fig: Figure
    if by is None:
        grid = np.linspace(frame[x].min(), frame[x].max(), points)
        new = _held(frame, predictors, x, grid)
        pop = predict(new, "none")
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.subplots()
        ax.plot(frame[x], design.y, "o", ms=3, color="0.6", zorder=1)
        if new_group:
            wide = predict(new, "new")
            ax.fill_between(grid, wide[ci[0]], wide[ci[1]], color=_NEW, alpha=0.15, lw=0)
        ax.fill_between(grid, pop[ci[0]], pop[ci[1]], color=_POPULATION, alpha=0.3, lw=0)
        ax.plot(grid, pop["mean"], color=_POPULATION, lw=2)
        ax.set_xlabel(x)
        ax.set_ylabel(design.response)
        legend = ci[2]
        handles: list[Any] = [
            Line2D([], [], color="0.6", marker="o", ls="none", ms=3, label="data"),
            Line2D([], [], color=_POPULATION, lw=2, label="population line"),
            Patch(color=_POPULATION, alpha=0.3, lw=0, label=f"its {legend}"),
        ]
        if new_group:
            handles.append(Patch(color=_NEW, alpha=0.15, lw=0, label=f"a new group's {legend}"))
        fig.legend(handles=handles, loc="outside upper center", ncols=2, fontsize=8)
        return fig
    terms = design.factor_terms(by)
    if not terms:
        raise BayesLMMError(
            f"unknown grouping factor {by!r}; have {', '.join(design.group_factors)}"
        )
    term = terms[0]
    chosen = list(term.levels) if levels is None else [str(v) for v in levels]
    unknown = [v for v in chosen if v not in term.levels]
    if unknown:
        raise BayesLMMError(f"levels {unknown} are not levels of {by!r}")
    if len(chosen) > _MAX_PANELS:
        raise BayesLMMError(
            f"{by!r} has {len(chosen)} levels: choose at most {_MAX_PANELS} with levels="
        )
    ncols = min(len(chosen), 6)
    nrows = math.ceil(len(chosen) / ncols)
    width = max(1.9, 6.4 / ncols)
    fig = Figure(figsize=(width * ncols + 0.6, 0.9 * width * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, level in zip(axes, chosen, strict=False):
        rows = term.codes == term.levels.index(level)
        sub = frame.loc[rows]
        grid = np.linspace(sub[x].min(), sub[x].max(), points)
        new = _held(sub, predictors, x, grid)
        own, pop = predict(new, "observed"), predict(new, "none")
        ax.plot(sub[x], design.y[rows], "o", ms=3, color="black", alpha=0.7)
        ax.fill_between(grid, own[ci[0]], own[ci[1]], color=_GROUP, alpha=0.25, lw=0)
        ax.plot(grid, own["mean"], color=_GROUP, lw=1.5)
        ax.plot(grid, pop["mean"], color=_POPULATION, lw=1.2, ls="--")
        ax.set_title(f"{level} (n={int(rows.sum())})", fontsize=8, pad=2)
        ax.tick_params(labelsize=7)
    for ax in axes[len(chosen) :]:
        ax.set_visible(False)
    fig.supxlabel(x, fontsize=9)
    fig.supylabel(design.response, fontsize=9)
    legend = ci[2]
    handles = [
        Line2D([], [], color="black", marker="o", ls="none", ms=3, label="data"),
        Line2D([], [], color=_GROUP, lw=1.5, label=f"the {by}'s line"),
        Patch(color=_GROUP, alpha=0.25, lw=0, label=f"its {legend}"),
        Line2D([], [], color=_POPULATION, lw=1.2, ls="--", label="population line"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=4, fontsize=8)
    return fig


def _predictor(
    fit_or_post: Any,
) -> tuple[Design, Callable[[pd.DataFrame, str], pd.DataFrame], tuple[str, str, str]]:
    """The source's design, ``predict(newdata, group_effects)`` returning the summary
    table, and its interval (lb column, ub column, legend text)."""
    from .reml.fit import LmerFit

    if is_posterior(fit_or_post):
        post = fit_or_post

        def predict(new: pd.DataFrame, ge: str) -> pd.DataFrame:
            out = post.predict(new, ge, seed=0)
            assert isinstance(out, pd.DataFrame)
            return out

        kind, prob = post.ci_kind, post.ci_prob
        legend = names.ci_legend(kind, prob)
    elif isinstance(fit_or_post, LmerFit):
        fit = fit_or_post

        def predict(new: pd.DataFrame, ge: str) -> pd.DataFrame:
            out = fit.predict(new, ge, summary=True)
            assert isinstance(out, pd.DataFrame)
            return out

        kind, prob = names.DEFAULT_CI_KIND, names.DEFAULT_CI_PROB
        legend = f"{names.ci_percent(prob)}% normal interval (REML, given θ̂)"
    else:
        raise BayesLMMError(
            f"plot_predictions needs a REML fit or a Posterior, got {type(fit_or_post).__name__}"
        )
    lb, ub = names.ci_columns(kind, prob)
    return fit_or_post.design, predict, (lb, ub, legend)


def _covariate(design: Design, x: str | None) -> str:
    """``x``, or the first numeric predictor column of the model frame."""
    frame = design.frame
    grouping = {f for t in design.terms for f in t.factor.split(":")}
    numeric = [
        c
        for c in frame.columns
        if c != design.response
        and c not in grouping
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    if x is None:
        if not numeric:
            raise BayesLMMError("the model has no numeric predictor column to plot against")
        return str(numeric[0])
    if x not in numeric:
        raise BayesLMMError(f"x must be a numeric predictor column ({numeric}), got {x!r}")
    return x


def _held(frame: pd.DataFrame, predictors: list[str], x: str, grid: np.ndarray) -> pd.DataFrame:
    """Rows along ``grid`` for ``x``, every other predictor at its typical value in
    ``frame``: the mean of a numeric column, else the first level (R's order)."""
    out = {}
    for c in predictors:
        if c == x:
            out[c] = grid
            continue
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = np.full(len(grid), s.mean())
        elif isinstance(s.dtype, pd.CategoricalDtype):
            present = s.cat.remove_unused_categories()
            out[c] = np.repeat(present.cat.categories[0], len(grid))
        else:
            out[c] = np.repeat(sorted(s.unique())[0], len(grid))
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------
# ArviZ's trace and posterior plots, in the package's labels
# --------------------------------------------------------------------------------------


def _labelled(post: Posterior, var_names: Sequence[str] | str | None) -> xr.DataTree:
    """The parameter draws as one variable per label (``fixef[Days]``, ...), those named
    or starting with a name given (``"fixef"``, ``"sd_Subject"``), and the sampler's
    statistics (divergences) when there are any."""
    import xarray as xr

    draws = post.parameter_draws()
    labels = [str(v) for v in draws.coords["parameter"].values]
    if var_names is not None:
        wanted = [var_names] if isinstance(var_names, str) else list(var_names)
        chosen = [lab for lab in labels if any(lab == w or lab.startswith(f"{w}[") for w in wanted)]
        if not chosen:
            raise BayesLMMError(f"var_names {wanted} match no parameter; labels: {labels}")
        labels = chosen
    data = {lab: draws.sel(parameter=lab, drop=True) for lab in labels}
    groups: dict[str, Any] = {"posterior": xr.Dataset(data)}
    if "sample_stats" in post.idata.children:
        stats = post.idata["sample_stats"].to_dataset()
        if "diverging" in stats:
            groups["sample_stats"] = stats[["diverging"]]
    return xr.DataTree.from_dict(groups)


def plot_trace(post: Posterior, var_names: Sequence[str] | str | None = None) -> Figure:
    """ArviZ's ``plot_trace_dist``: per parameter, its density per chain and its trace
    (divergent draws marked).  ``var_names``: labels or their prefixes ("fixef",
    "sd_Subject", "corr_Subject", "sigma"); default every parameter."""
    import arviz as az

    post = _check_posterior(post, "plot_trace")
    tree = _labelled(post, var_names)
    n = len(tree["posterior"].data_vars)
    size = {"figsize": (9.0, 1.0 + 1.3 * n), "layout": "constrained"}
    pc = az.plot_trace_dist(tree, figure_kwargs=size)
    return _figure(pc)


def plot_posterior(post: Posterior, var_names: Sequence[str] | str | None = None) -> Figure:
    """ArviZ's ``plot_dist``: per parameter, its marginal density with the posterior mean and
    the posterior's interval (``ci_kind``, ``ci_prob``).  ``var_names`` as
    :func:`plot_trace`'s."""
    import arviz as az

    post = _check_posterior(post, "plot_posterior")
    tree = _labelled(post, var_names)
    n = len(tree["posterior"].data_vars)
    ncols = min(n, 3)
    size = {"figsize": (3.0 * ncols, 0.4 + 2.5 * math.ceil(n / ncols)), "layout": "constrained"}
    pc = az.plot_dist(
        tree,
        point_estimate="mean",
        ci_kind=post.ci_kind,
        ci_prob=post.ci_prob,
        col_wrap=ncols,
        figure_kwargs=size,
    )
    return _figure(pc)

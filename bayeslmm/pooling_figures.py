"""The pooling explorer's pictures (matplotlib Figures, no pyplot state).

Both draw a :class:`~bayeslmm.pooling_explorer.View`: the shrinkage picture (arrows from
each group's own fit to its partial-pooling estimate, inside contours of N(β̂, Σ)) and the
per-group lines (no, partial and complete pooling over the group's data).  The colours
and line styles are those of ``blm.plot_shrinkage`` and ``blm.plot_group_fits``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from .design import Design
from .pooling import Setting, View, first_rows


class Shown(Protocol):
    """What the pictures read of the explorer (:class:`~.pooling_explorer.Shown`)."""

    design: Design
    factor: str
    kept: int
    y: np.ndarray
    setting: Setting
    view: View

    @property
    def codes(self) -> np.ndarray: ...

    @property
    def pooling_matrix(self) -> np.ndarray: ...

    def view_at(self, setting: Setting) -> tuple[View, np.ndarray]: ...


#: colour and line style per estimate (as bayeslmm.plots)
STYLE = {
    "no_pooling": ("0.45", ":", "no pooling (own fit)"),
    "complete_pooling": ("tab:green", "--", "complete pooling"),
    "partial": ("tab:blue", "-", "partial pooling at these Σ, σ"),
}
CONTOURS = (0.5, 0.9)
MAX_PANELS = 12


def _contours(ax: Axes, centre: np.ndarray, cov: np.ndarray, span: float) -> None:
    """The contours of N(centre, cov) holding 50 % and 90 %; one far larger than the frame
    (τ → ∞) is left out, as matplotlib would take seconds to clip it."""
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    for p in CONTOURS:
        r = math.sqrt(-2.0 * math.log(1.0 - p))  # P(χ²₂ ≤ r²) = p
        width, height = (2 * r * math.sqrt(max(v, 0.0)) for v in (vals[-1], vals[0]))
        if np.isfinite(span) and width <= 50 * max(span, 1e-12):
            ax.add_patch(
                Ellipse(tuple(centre), width, height, angle=angle, fill=False, color="0.6", ls="--")
            )


def draw_shrinkage(ax: Axes, view: View, title: str = "") -> None:
    """Arrows no pooling → partial pooling in the factor's first two columns (a dot plot
    for one column), with the contours of N(β̂, Σ) that hold 50 % and 90 % of it."""
    arrows = view.arrows().to_numpy()
    centre, cov = view.ellipse()
    k = len(centre)
    start, end = arrows[:, :k], arrows[:, k:]
    if k == 1:  # one column: levels on y
        y = np.arange(len(start))
        start, end = np.column_stack([start[:, 0], y]), np.column_stack([end[:, 0], y])
        ax.axvline(centre[0], color="black", lw=1)
        ax.set_yticks(y, list(view.coefficients.index), fontsize=7)
    else:
        both = np.vstack([start, end])
        _contours(ax, centre, cov, span=float(np.nanmax(both) - np.nanmin(both)))
        ax.plot(*centre, "*", color="black", ms=13, mec="white", zorder=5)
    color = STYLE["partial"][0]
    for a, b in zip(start, end, strict=True):
        if np.all(np.isfinite(a)):
            ax.annotate(
                "", xy=tuple(b), xytext=tuple(a), arrowprops={"arrowstyle": "->", "color": color}
            )
    ax.plot(*start.T, "o", color=STYLE["no_pooling"][0], mfc="white", ms=5, ls="none")
    ax.plot(*end.T, "o", color=color, ms=4, ls="none")
    points = np.vstack([start[np.isfinite(start).all(1)], end, *([centre[None]] if k == 2 else [])])
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.08 * np.where(hi > lo, hi - lo, 1.0)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])  # the points set the frame, not the contours
    if k == 2:
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_xlabel(view.terms[0], fontsize=8)
    ax.set_ylabel(view.terms[1] if k == 2 else str(view.coefficients.index.name), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _line_setup(ex: Shown) -> tuple[int | None, list[str]]:
    """The x column (first covariate, None for intercept-only) and the pooling columns."""
    columns = list(ex.view.coefficients.columns)
    covariates = [c for c in ex.view.terms + columns if c != "(Intercept)"]
    return (columns.index(covariates[0]) if covariates else None), columns


def draw_lines(ax: Axes, ex: Shown, view: View, level: int) -> None:
    """One group's data (rows dropped in grey) and its three lines."""
    pool_X = ex.pooling_matrix
    codes = ex.codes
    j, _ = _line_setup(ex)
    rows = codes == level
    kept = first_rows(codes, ex.kept)[rows]
    Xg, yg = pool_X[rows], ex.y[rows]
    xg = Xg[:, j] if j is not None else np.arange(1.0, rows.sum() + 1)
    grid = np.linspace(xg.min(), xg.max(), 12)
    design = np.tile(Xg.mean(axis=0), (len(grid), 1))
    if j is not None:
        design[:, j] = grid
    ax.plot(xg[kept], yg[kept], "o", ms=2.5, color="black")
    ax.plot(xg[~kept], yg[~kept], "o", ms=2.5, color="0.7", mfc="none")
    lines = {
        "complete_pooling": view.complete_pooling.to_numpy(),
        "no_pooling": view.no_pooling.to_numpy()[level],
        "partial": view.coefficients.to_numpy()[level],
    }
    for kind, coef in lines.items():
        color, ls, _ = STYLE[kind]
        ax.plot(grid, design @ np.nan_to_num(coef), color=color, ls=ls, lw=1.4)
    ax.set_title(f"{view.coefficients.index[level]} (n={view.n[level]})", fontsize=7, pad=2)
    ax.tick_params(labelsize=6)


def _legend(fig: Figure) -> None:
    handles = [Line2D([], [], color=c, ls=ls, lw=1.5, label=lab) for c, ls, lab in STYLE.values()]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)


def explorer_figure(ex: Shown) -> Figure:
    """The shrinkage picture (left) and the lines of up to 12 groups (right)."""
    view = ex.view
    nl = min(len(view.n), MAX_PANELS)
    ncols = min(nl, 4)
    nrows = math.ceil(nl / ncols)
    fig = Figure(figsize=(12.0, 5.4), layout="constrained")
    halves = fig.subfigures(1, 2, width_ratios=[1.0, 1.35])
    left, right = halves[0], halves[1]  # type: ignore[index]
    draw_shrinkage(left.subplots(), view, f"{ex.factor}: no pooling → partial pooling")
    axes = right.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i < nl:
            draw_lines(ax, ex, view, i)
        else:
            ax.set_visible(False)
    _legend(fig)
    return fig


def small_multiple(ex: Shown, scales: tuple[float, ...]) -> Figure:
    """The shrinkage picture and every group's partial-pooling line at the factor's SDs
    times each scale (the static fallback of the explorer)."""
    groups = [t.group for t in ex.design.factor_terms(ex.factor)]
    fig = Figure(figsize=(4.0 * len(scales), 7.2), layout="constrained")
    axes = fig.subplots(2, len(scales), squeeze=False, sharex="row", sharey="row")
    j, _ = _line_setup(ex)
    for col, scale in enumerate(scales):
        view, _ = ex.view_at(ex.setting.scaled(scale, groups))
        draw_shrinkage(axes[0, col], view, f"τ × {scale:g}")
        ax = axes[1, col]
        X = ex.pooling_matrix
        x = X[:, j] if j is not None else np.zeros(len(X))
        grid = np.linspace(x.min(), x.max(), 10)
        for i, coef in enumerate(view.coefficients.to_numpy()):
            rows = ex.codes == i
            design = np.tile(X[rows].mean(axis=0), (len(grid), 1))
            if j is not None:
                design[:, j] = grid
            ax.plot(grid, design @ coef, color=STYLE["partial"][0], lw=0.9, alpha=0.7)
        ax.set_xlabel(view.coefficients.columns[j] if j is not None else "", fontsize=8)
        ax.set_ylabel(ex.design.response, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"each {ex.factor}'s line, τ × {scale:g}", fontsize=9)
    return fig

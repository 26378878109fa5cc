"""``blm.explore_pooling``: move Σ and σ and watch partial pooling change, without a refit.

The explorer keeps one grouping factor's view of the model: each group's own fit (no
pooling), one fit for all (complete pooling) and the conditional modes at the current
Σ, σ (:mod:`bayeslmm.pooling`), recomputed in milliseconds on every change.  What it
shows it exposes: ``.coefficients`` (levels x columns), ``.table`` (the shrinkage table),
``.arrows`` (no pooling → partial pooling) and ``.ellipse`` (the population N(β, Σ)).

In Jupyter the explorer is an ipywidgets panel (``display(explorer)``): a log slider per
random-effect SD and for σ, a slider per correlation, the observations kept per group,
and buttons that set the REML estimates, the posterior means, simulate a new response
from the current values, or bring back the observed one.  Without widgets,
:meth:`PoolingExplorer.small_multiple` draws the same picture at three values of τ.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .compare import pooling, resolve_factor
from .design import Design
from .pooling import (
    PoolingError,
    Setting,
    View,
    check_setting,
    conditional_modes,
    covariance_factor,
    first_rows,
    own_fits,
    setting_from_varcorr,
    term_covariance,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


#: the largest rows x random effects the explorer takes (dense Z: 40 MB)
MAX_CELLS = 5_000_000


class PoolingExplorer:
    """Partial pooling of one grouping factor at adjustable Σ, σ (see the module doc)."""

    def __init__(
        self,
        design: Design,
        reml: Setting | None,
        posterior_mean: Setting | None = None,
        *,
        factor: str | None = None,
        seed: int = 0,
    ):
        start = reml if reml is not None else posterior_mean
        if start is None:
            raise PoolingError("give a REML fit or a posterior to start from")
        if design.nobs * design.q > MAX_CELLS:
            raise PoolingError(
                f"the explorer solves densely: {design.nobs} rows x {design.q} random effects "
                f"is more than {MAX_CELLS:,} cells; explore a subset of the groups"
            )
        self.design, self.reml, self.posterior_mean = design, reml, posterior_mean
        self.factor = resolve_factor(design, factor)
        self._pool = pooling(design, self.factor)
        self._Z = design.Z().toarray()
        self.y_observed = design.y.copy()
        self.y = self.y_observed
        self.max_kept = int(self._pool.n.max())
        self.kept = self.max_kept
        self._rng = np.random.default_rng(seed)
        self._widget: Any = None
        self.setting = start
        self.view = self._compute()

    # ---------------------------------------------------------------- state
    def set(self, setting: Setting | None = None, *, kept: int | None = None) -> View:
        """Move to ``setting`` (and/or keep the first ``kept`` rows per group); recompute."""
        if setting is not None:
            check_setting(self.design, setting)
            self.setting = setting
        if kept is not None:
            if not 1 <= int(kept) <= self.max_kept:
                raise PoolingError(f"kept must be between 1 and {self.max_kept}, got {kept}")
            self.kept = int(kept)
        self.view = self._compute()
        self._sync_widget()
        return self.view

    def simulate(self) -> np.ndarray:
        """Replace the response by one drawn from the current setting: y = Xβ̂ + Zb + ε,
        b ~ N(0, Σ), ε ~ N(0, σ²) (β̂ the observed data's at the current Σ, σ)."""
        lam = covariance_factor(self.design, self.setting)
        X = self.design.X  # β̂ of the observed data at this setting (no drift over draws)
        beta, _ = conditional_modes(X, self._Z @ lam, self.y_observed, self.setting.sigma)
        u = self._rng.standard_normal(lam.shape[0])
        eps = self._rng.standard_normal(len(self.y_observed))
        self.y = self.design.X @ beta + self._Z @ (lam @ u) + self.setting.sigma * eps
        self.set()
        return self.y

    def observed(self) -> None:
        """Bring back the observed response."""
        self.y = self.y_observed
        self.set()

    def _compute(self) -> View:
        return self.view_at(self.setting)[0]

    def view_at(self, setting: Setting) -> tuple[View, np.ndarray]:
        """What the explorer would show at ``setting`` (the current data and rows kept),
        and the fixed effects β̂ there; changes nothing."""
        pool, design = self._pool, self.design
        rows = first_rows(pool.codes, self.kept)
        lam = covariance_factor(design, setting)
        X, Z, y = design.X[rows], self._Z[rows], self.y[rows]
        beta, u = conditional_modes(X, Z @ lam, y, setting.sigma)
        b = lam @ u
        coef = self._coefficients(beta, b)
        own = own_fits(pool.X[rows], y, pool.codes[rows], len(pool.levels))
        complete = np.linalg.lstsq(pool.X[rows], y, rcond=None)[0]
        index = pd.Index(pool.levels, name=self.factor)
        fixed = dict(zip(design.fixef_names, beta, strict=True))
        view = View(
            coefficients=pd.DataFrame(coef, index=index, columns=pool.columns),
            no_pooling=pd.DataFrame(own, index=index, columns=pool.columns),
            complete_pooling=pd.Series(complete, index=pool.columns),
            population=pd.Series([fixed.get(c, 0.0) for c in pool.columns], index=pool.columns),
            n=np.bincount(pool.codes[rows], minlength=len(pool.levels)),
            cov=self._factor_cov(pool.terms, setting),
            terms=list(pool.terms),
        )
        return view, beta

    def _coefficients(self, beta: np.ndarray, b: np.ndarray) -> np.ndarray:
        """β̂ + b̂ per level of the factor, over the pooling columns (lme4's ``coef``)."""
        pool, design = self._pool, self.design
        fixed = dict(zip(design.fixef_names, beta, strict=True))
        coef = np.tile([fixed.get(c, 0.0) for c in pool.columns], (len(pool.levels), 1))
        start = 0
        for t in design.terms:
            if t.factor == self.factor:
                block = b[start : start + t.q].reshape(t.nl, t.nc)
                for j, c in enumerate(t.cnames):
                    coef[:, pool.columns.index(c)] += block[:, j]
            start += t.q
        return coef

    def _factor_cov(self, terms: list[str], setting: Setting) -> np.ndarray:
        cov = np.zeros((len(terms), len(terms)))
        for t in self.design.factor_terms(self.factor):
            S = term_covariance(t.group, t.cnames, setting)
            idx = [terms.index(c) for c in t.cnames]
            cov[np.ix_(idx, idx)] += S
        return cov

    # ---------------------------------------------------------------- what it shows
    @property
    def pooling_matrix(self) -> np.ndarray:
        """The columns each group's own fit uses (fixed effects, then random-only ones)."""
        return self._pool.X

    @property
    def codes(self) -> np.ndarray:
        """Each row's level index in the factor."""
        return self._pool.codes

    @property
    def coefficients(self) -> pd.DataFrame:
        """Per-group coefficients β̂ + b̂ at the current setting (levels x columns)."""
        return self.view.coefficients

    @property
    def table(self) -> pd.DataFrame:
        """The shrinkage table at the current setting (:meth:`View.table`)."""
        return self.view.table()

    @property
    def arrows(self) -> pd.DataFrame:
        """Where each level's arrow starts and ends (:meth:`View.arrows`)."""
        return self.view.arrows()

    @property
    def ellipse(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and covariance of the population distribution (:meth:`View.ellipse`)."""
        return self.view.ellipse()

    def figure(self) -> Figure:
        """The shrinkage picture and the per-group lines at the current setting."""
        from .pooling_figures import explorer_figure

        return explorer_figure(self)

    def small_multiple(self, scales: tuple[float, ...] = (0.1, 1.0, 10.0)) -> Figure:
        """The static fallback: the picture at the factor's SDs times each of ``scales``
        (τ small → complete pooling, the estimate, τ large → no pooling)."""
        from .pooling_figures import small_multiple

        return small_multiple(self, scales)

    # ---------------------------------------------------------------- the widget
    @property
    def widget(self) -> Any:
        """The ipywidgets panel (built on first use)."""
        if self._widget is None:
            from .pooling_widget import build_widget

            self._widget = build_widget(self)
        return self._widget

    @property
    def sliders(self) -> dict[str, Any]:
        """The panel's sliders by parameter label (``sd_Subject[Days]``, ``sigma``, ...)
        and ``kept``; setting a slider's ``value`` recomputes everything."""
        return self.widget.sliders

    @property
    def buttons(self) -> dict[str, Any]:
        """The panel's buttons: ``reml``, ``posterior``, ``simulate``, ``observed``."""
        return self.widget.buttons

    def _sync_widget(self) -> None:
        if self._widget is not None:
            self._widget.refresh()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget where a kernel runs it; the small multiple as PNG beside it, which a
        page of stored outputs (or a front end without widgets) shows instead."""
        import base64
        import contextlib

        bundle: dict[str, Any] = {}
        with contextlib.suppress(ImportError):  # no ipywidgets: the picture alone
            bundle |= self.widget.box._repr_mimebundle_() or {}
        bundle["text/plain"] = repr(self)
        png = self.png(self.small_multiple())
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        return (
            f"<PoolingExplorer of {self.design.formula}: {self.factor}, {len(self.view.n)} levels>"
        )

    def png(self, figure: Figure) -> bytes:
        """A figure as PNG bytes (what the panel shows)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()


def explore_pooling(
    model: Any, posterior: Any = None, *, factor: str | None = None, seed: int = 0
) -> PoolingExplorer:
    """An interactive partial-pooling explorer for ``model`` (a ``Model``, whose REML fit it
    computes, or an ``LmerFit``); ``posterior`` adds the "posterior mean" button.

    ``display`` it in Jupyter (or leave it last in a cell) for the sliders; see
    :class:`PoolingExplorer` for what it exposes.
    """
    fit = model.fit_reml() if hasattr(model, "fit_reml") else model
    if not hasattr(fit, "varcorr") or not hasattr(fit, "design"):
        raise PoolingError(
            f"explore_pooling needs a Model or a REML fit, got {type(model).__name__}"
        )
    design = fit.design
    reml = setting_from_varcorr(design, fit.varcorr)
    post = None
    if posterior is not None:
        if posterior.design.differences(design):
            raise PoolingError("the posterior is of a different model than the fit")
        post = setting_from_varcorr(design, posterior.varcorr)
    return PoolingExplorer(design, reml, post, factor=factor, seed=seed)


__all__ = ["PoolingExplorer", "explore_pooling"]

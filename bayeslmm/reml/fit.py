"""REML / ML fits of ``y = Xβ + Zb + ε`` by lme4's profiled PLS algorithm (``lmer``).

``b = Λ_θ u`` with ``u ~ N(0, σ²I)`` and ``ε ~ N(0, σ²I)``.  For fixed θ the penalised
least squares problem gives β̂(θ), û(θ) and r²(θ) (:mod:`bayeslmm.reml.pls`); the profiled
criterion is minimised over θ (:mod:`bayeslmm.reml.optimize`).  Then

    σ̂² = r²/n (ML) or r²/(n−p) (REML),   vcov(β̂) = σ̂²(R_XR_Xᵀ)⁻¹,
    Var(b | y) = σ̂²Λ(ΛᵀZᵀZΛ + I)⁻¹Λᵀ   (lme4's condVar).

Models with q + p + 1 <= :data:`DENSE_MAX` factorise densely
(:class:`~bayeslmm.reml.dense.DenseDeviance`), larger ones by blocks
(:class:`~bayeslmm.reml.blocked.BlockedDeviance`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import Design, build_design
from ..errors import BayesLMMError, ConvergenceWarning, DataError, SingularFitWarning
from .bootstrap import bootstrap
from .confint import confint
from .crossed import blocked_deviance
from .ddf import DDF, ddf_method, fixef_table
from .dense import DenseDeviance
from .io import frame_from_json, frame_to_json, from_json, to_json
from .optimize import OptResult, blas_threads, check_convergence, optimize, start_theta
from .pls import Deviance, PLSSolution, template, varcorr_values
from .summary import summary_text

#: models with q + p + 1 up to this factorise densely (with the exact gradient)
DENSE_MAX = 100
_SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance
_SINGULAR_MSG = "boundary (singular) fit: see help('isSingular')"


def make_deviance(design: Design, reml: bool = True, ratio: np.ndarray | None = None) -> Deviance:
    """The criterion of ``design``: dense for small models, blocked for larger ones.

    Weights, offsets and residual groups (at σ ratios ``ratio``) enter through the
    equivalent homoscedastic design (:meth:`Design.working`): its criterion is ``design``'s
    plus Σ log w_i (lme4 subtracts ``ldW``; :func:`fit_lmer` reports the difference)."""
    if not design.is_plain:
        design = design.working(ratio)
    if design.q + design.p + 1 <= DENSE_MAX:
        return DenseDeviance(design, reml)
    return blocked_deviance(design, reml)


def fit_lmer(design: Design, reml: bool = True) -> LmerFit:
    """Fit ``design`` by REML (``reml=True``) or ML, as lme4's ``lmer``; with residual
    groups (``sigma="~ 1 | g"``), nlme's ``lme(weights = varIdent(...))``
    (:mod:`bayeslmm.reml.varident`)."""
    if design.p == 0 and reml:
        raise BayesLMMError("REML needs at least one fixed-effect column; use reml=False")
    with blas_threads(1):
        if design.residual is None:
            fit, messages = fit_at(design, reml)
        else:
            from .varident import best_ratios

            ratio, theta, evals = best_ratios(design, reml, make_deviance)
            fit, messages = fit_at(design, reml, ratio, theta)
            fit.optinfo["n_evals"] = evals
            fit.optinfo["optimizer"] += ", within NLopt LN_BOBYQA over log σ ratios"
    warn_messages(messages)
    return fit


def fit_at(
    design: Design, reml: bool, ratio: np.ndarray | None = None, start: np.ndarray | None = None
) -> tuple[LmerFit, list[str]]:
    """The fit at fixed σ ratios (all 1 by default) from θ = ``start`` (lme4's by default),
    and lme4's convergence messages (not yet warned)."""
    dev = make_deviance(design, reml, ratio)
    lower = design.theta_lower
    opt = optimize(dev, start_theta(dev.design) if start is None else start, lower)
    theta = opt.theta
    sol = dev.solution(theta)
    messages: list[str] = []
    if _is_singular(design, theta):
        messages.append(_SINGULAR_MSG)
    elif design.nobs < 10_000 and len(theta) < 10:  # lme4 >= 1.1-35 skips larger fits
        messages = check_convergence(dev, theta, sol.fval, opt.derivs)
    # inside blas_threads too: a threaded solve of the small R_X cost ~5 ms on a busy machine
    return _assemble(design, reml, sol, opt, messages, ratio), messages


def warn_messages(messages: list[str]) -> None:
    """lme4's warnings for the messages of :func:`fit_at`."""
    for msg in messages:
        category = SingularFitWarning if msg == _SINGULAR_MSG else ConvergenceWarning
        warnings.warn(msg, category, stacklevel=4)


def _is_singular(design: Design, theta: np.ndarray) -> bool:
    """lme4's isSingular: a diagonal θ (variance parameter) within 1e-4 of 0."""
    return bool((theta[design.theta_lower == 0] < _SINGULAR_TOL).any())


def _assemble(
    design: Design,
    reml: bool,
    sol: PLSSolution,
    opt: OptResult,
    messages: list[str],
    ratio: np.ndarray | None = None,
) -> LmerFit:
    """The numbers of the fit; its tables (pandas) are built when first asked for."""
    n, p = design.nobs, design.p
    theta = opt.theta
    sigma = math.sqrt(sol.r2 / (n - p if reml else n))
    w = design.row_weights(ratio)
    fval = float(sol.fval) - (0.0 if w is None else float(np.log(w).sum()))
    Rx_inv = sla.solve_triangular(sol.Rx, np.eye(p), lower=True) if p else np.zeros((0, 0))
    u_terms = _per_term(design, sol.u)
    b_list, csd_list = [], []
    for t, sl, ui, Vi in zip(design.terms, design.theta_slices, u_terms, sol.V, strict=True):
        T = template(theta[sl], t.nc)
        b_list.append((ui @ T.T).ravel())
        if t.nc == 1:
            cv = T[0, 0] ** 2 * Vi[:, 0, 0]
        else:
            cv = np.einsum("cd,lde,ce->lc", T, Vi, T).ravel()
        csd_list.append(sigma * np.sqrt(np.clip(cv, 0, None)))
    nratio = 0 if design.residual is None else design.residual.ngroups - 1
    df_ = p + len(theta) + 1 + nratio
    loglik = -fval / 2
    return LmerFit(
        design=design,
        reml=reml,
        sigma=sigma,
        reml_criterion=fval if reml else None,
        deviance=None if reml else fval,
        loglik=float(loglik),
        aic=float(-2 * loglik + 2 * df_),
        bic=float(-2 * loglik + math.log(n) * df_),
        df=df_,
        nobs=n,
        ngroups=dict(design.ngroups),
        is_singular=_is_singular(design, theta),
        optinfo={
            "optimizer": opt.optimizer,
            "n_evals": int(opt.nevals),
            "converged": not any(m != _SINGULAR_MSG for m in messages),
            "messages": list(messages),
        },
        u=np.asarray(sol.u, dtype=float).copy(),
        b=np.concatenate(b_list),
        _beta=np.asarray(sol.beta, dtype=float).copy(),
        _vcov=sigma**2 * Rx_inv.T @ Rx_inv,
        _theta=np.asarray(theta, dtype=float),
        _conditional_sd=np.concatenate(csd_list),
        _ratio=None if ratio is None else np.asarray(ratio, dtype=float).copy(),
    )


def _per_term(design: Design, values: np.ndarray) -> list[np.ndarray]:
    """A vector in Z's column order (like b) -> per-term (ℓ, k) arrays."""
    out, offset = [], 0
    for t in design.terms:
        out.append(values[offset : offset + t.q].reshape(t.nl, t.nc))
        offset += t.q
    return out


def _by_factor(design: Design, per_term: list[np.ndarray]) -> dict[str, pd.DataFrame]:
    """Per-term (ℓ, k) arrays -> factor -> DataFrame (levels x all its terms' columns)."""
    out: dict[str, pd.DataFrame] = {}
    for t, arr in zip(design.terms, per_term, strict=True):
        df = pd.DataFrame(arr, index=pd.Index(t.levels, name=t.factor), columns=list(t.cnames))
        out[t.factor] = df if t.factor not in out else pd.concat([out[t.factor], df], axis=1)
    return out


def _varcorr(design: Design, theta: np.ndarray, sigma: float) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
    keys = [(p.grp, p.var1, p.var2) for p in design.parameters if p.kind != "fixef"]
    grp, var1, var2 = zip(*keys, strict=True)
    vcov, sdcor = varcorr_values(design, theta, sigma)
    return pd.DataFrame(
        {
            "grp": pd.Series(grp, dtype=object),
            "var1": pd.Series(var1, dtype=object),
            "var2": pd.Series(var2, dtype=object),
            "vcov": vcov,
            "sdcor": sdcor,
        }
    )


@dataclass(eq=False, repr=False)
class LmerFit:
    """A REML / ML fit of ``y = Xβ + Zb + ε`` (lme4's ``merMod``), in the model's vocabulary.

    ``fixef`` β̂, ``vcov`` σ̂²(R_XR_Xᵀ)⁻¹, ``theta`` θ̂ (lme4's names), ``sigma`` σ̂,
    ``varcorr`` (R's ``as.data.frame(VarCorr())``), ``ranef`` / ``conditional_sd``
    (factor -> levels x terms), ``coef`` = β̂ + b̂ per level, ``u`` (spherical modes) and
    ``b = Λu`` in Z's column order, ``optinfo`` (optimizer, n_evals, converged, messages).
    """

    design: Design
    reml: bool
    sigma: float
    reml_criterion: float | None
    deviance: float | None
    loglik: float
    aic: float
    bic: float
    df: int
    nobs: int
    ngroups: dict[str, int]
    is_singular: bool
    optinfo: dict[str, Any]
    u: np.ndarray
    b: np.ndarray
    _beta: np.ndarray
    _vcov: np.ndarray
    _theta: np.ndarray
    _conditional_sd: np.ndarray  # in Z's column order, like b
    data_name: str | None = field(default=None)
    _ratio: np.ndarray | None = field(default=None)  # σ ratios of the residual groups

    @cached_property
    def sigma_ratio(self) -> pd.Series | None:
        """σ of each residual group over the reference level's σ (nlme's ``varIdent``
        coefficients, 1 for the first level); None for a model with one σ."""
        res = self.design.residual
        if res is None:
            return None
        ratio = np.ones(res.ngroups) if self._ratio is None else self._ratio
        return pd.Series(ratio, index=pd.Index(list(res.levels), name=res.factor), name="ratio")

    @property
    def sigma_by_group(self) -> pd.Series | None:
        """Each residual group's σ (``sigma * sigma_ratio``); None for one σ."""
        ratio = self.sigma_ratio
        return None if ratio is None else (self.sigma * ratio).rename("sigma")

    @property
    def design_options(self) -> dict[str, str | None]:
        """How the model frame gives the weights, offset and residual groups (``weights``,
        ``offset``, ``sigma`` as ``Model`` takes them; None for none)."""
        return design_options(self.design)

    @property
    def working(self) -> LmerFit:
        """This fit on its homoscedastic design (:meth:`Design.working` at the fitted σ
        ratios): the same β, θ, σ and b, for the algebra that assumes ε ~ N(0, σ²I)."""
        if self.design.is_plain:
            return self
        return replace(self, design=self.design.working(self._ratio), _ratio=None)

    # -- the tables, built on first use ------------------------------------------------
    @cached_property
    def fixef(self) -> pd.Series:
        """β̂ by lme4's column names."""
        return pd.Series(self._beta, index=list(self.design.fixef_names), name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """σ̂²(R_XR_Xᵀ)⁻¹, the covariance of β̂."""
        names = list(self.design.fixef_names)
        return pd.DataFrame(self._vcov, index=names, columns=names)

    @cached_property
    def theta(self) -> pd.Series:
        """θ̂ with lme4's names (column-wise lower triangles of the templates)."""
        return pd.Series(self._theta, index=list(self.design.theta_names), name="theta")

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor; with residual
        groups the ``Residual`` row is the reference level's σ and one ``Residual`` row per
        other level (var1 the level) follows."""
        table = _varcorr(self.design, self._theta, self.sigma)
        groups = self.sigma_by_group
        if groups is None:
            return table
        extra = pd.DataFrame(
            {
                "grp": "Residual",
                "var1": pd.Series(groups.index[1:], dtype=object),
                "var2": pd.Series([None] * (len(groups) - 1), dtype=object),
                "vcov": groups.to_numpy()[1:] ** 2,
                "sdcor": groups.to_numpy()[1:],
            }
        )
        return pd.concat([table, extra], ignore_index=True)

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes b̂: factor -> levels x terms (lme4's ``ranef``)."""
        return _by_factor(self.design, _per_term(self.design, self.b))

    @cached_property
    def conditional_sd(self) -> dict[str, pd.DataFrame]:
        """sqrt(diag Var(b | y)), same layout as ``ranef`` (lme4's ``condVar``)."""
        return _by_factor(self.design, _per_term(self.design, self._conditional_sd))

    @cached_property
    def coef(self) -> dict[str, pd.DataFrame]:
        """β̂ + b̂ per level, every fixed column (lme4's ``coef``)."""
        names = list(self.design.fixef_names)
        out = {}
        for factor, df in self.ranef.items():
            values = np.tile(self._beta, (len(df), 1))
            extra = [c for c in df.columns if c not in names]
            for j, col in enumerate(df.columns):
                if col in names:
                    values[:, names.index(col)] += df.iloc[:, j].to_numpy()
            if extra:
                values = np.column_stack([values, df[extra].to_numpy()])
            out[factor] = pd.DataFrame(values, index=df.index, columns=names + extra)
        return out

    @cached_property
    def fitted(self) -> np.ndarray:
        """Xβ̂ + Zb̂ (+ the offset)."""
        design = self.design
        fitted = design.X @ self._beta
        if design.offset is not None:
            fitted = fitted + design.offset
        for t, bi in zip(design.terms, _per_term(design, self.b), strict=True):
            fitted = fitted + np.einsum("nk,nk->n", t.X, bi[t.codes])
        return fitted

    @cached_property
    def residuals(self) -> np.ndarray:
        """y − Xβ̂ − Zb̂."""
        return self.design.y - self.fitted

    @property
    def fixef_se(self) -> pd.Series:
        """Standard errors of β̂: sqrt(diag(vcov))."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.vcov.index)

    @property
    def converged(self) -> bool:
        return bool(self.optinfo["converged"])

    @property
    def Lambda(self) -> sp.csc_matrix:
        """Relative covariance factor Λ_θ (q x q, block diagonal I_ℓ ⊗ T_i)."""
        blocks = []
        for t, sl in zip(self.design.terms, self.design.theta_slices, strict=True):
            T = template(self._theta[sl], t.nc)
            blocks.append(sp.kron(sp.identity(t.nl), sp.csr_matrix(T)))
        return sp.csc_matrix(sp.block_diag(blocks))

    # -- prediction ------------------------------------------------------------------
    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        group_effects: str | bool | dict[str, str] = "observed",
        kind: str = "mean",
        seed: int | None = None,
        summary: bool = False,
        *,
        ci_prob: float | None = None,
        ci_kind: str | None = None,
        random_effects: bool | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Predictions for the data's rows or those of ``newdata`` (checked as data).

        ``group_effects``: "observed" x β̂ + z b̂ (conditional modes; a level the data lack
        gets b = 0, lme4's ``allow.new.levels``), "none" x β̂ (lme4's ``re.form = NA``),
        "new" x β̂ with a new group's variance z Σ̂ zᵀ in ``sd``; a dict sets it per
        grouping factor (others "observed").  ``kind="response"`` adds σ̂² to the variance.
        ``summary=False`` (default, lme4's ``predict``): the point predictions, ndarray (m).
        ``summary=True``: a DataFrame indexed like ``newdata`` with ``mean``, ``sd`` and
        the normal interval of probability ``ci_prob`` (default 0.89, as a Posterior's),
        conditional on θ̂ and σ̂ (:mod:`bayeslmm.reml.explore`).  ``seed`` is there for the
        Posterior's signature (nothing here is random).  ``random_effects`` (True/False)
        is the older spelling of "observed"/"none".
        """
        if random_effects is not None or isinstance(group_effects, bool | np.bool_):
            flag = group_effects if random_effects is None else random_effects
            group_effects = "observed" if flag else "none"
        plain = self.design.is_plain or not summary
        out = self._predict_with(
            self.design if plain else self.working.design,
            newdata if plain or newdata is not None else self.design.frame,
            group_effects=group_effects,
            kind=kind if plain else "mean",
            summary=summary,
            ci_prob=ci_prob,
            ci_kind=ci_kind,
        )
        if plain or not isinstance(out, pd.DataFrame):
            return out
        return self._with_residual(out, newdata, kind, group_effects)

    def _predict_with(self, design: Design, newdata: Any, **options: Any) -> Any:
        """:func:`~bayeslmm.reml.explore.predict_fit` of ``design`` at this fit's estimates."""
        from .explore import predict_fit

        return predict_fit(
            design,
            newdata,
            beta=self._beta,
            b=self.b,
            theta=self._theta,
            sigma=self.sigma,
            vcov=self._vcov,
            **options,
        )

    def _with_residual(
        self, table: pd.DataFrame, newdata: pd.DataFrame | None, kind: str, group_effects: Any
    ) -> pd.DataFrame:
        """A prediction summary of a weighted / heteroscedastic fit: the working design's
        SDs (the algebra of Var(β̂, b̂) needs it), the point predictions (with the offset)
        of the model's own design and, for ``kind="response"``, each row's residual
        variance σ̂²·δ_g² / w (weight 1 for new rows; δ from newdata's group column)."""
        lb, ub = table.columns[2], table.columns[3]
        z = (table[ub] - table["mean"]) / table["sd"].where(table["sd"] > 0)
        point = self._predict_with(self.design, newdata, group_effects=group_effects)
        var = table["sd"].to_numpy() ** 2
        if kind == "response":
            var = var + (self.sigma * self._row_scale(newdata)) ** 2
        sd = np.sqrt(var)
        zz = float(np.nanmax(z)) if np.isfinite(z).any() else 0.0
        out = {"mean": point, "sd": sd, lb: point - zz * sd, ub: point + zz * sd}
        return pd.DataFrame(out, index=table.index if newdata is not None else None)

    def _row_scale(self, newdata: pd.DataFrame | None) -> np.ndarray:
        """Each row's residual SD over σ̂: the design's own rows, or newdata's (weight 1,
        its residual group's ratio)."""
        d = self.design
        if newdata is None:
            scale = d.residual_scale(self._ratio)
            return np.ones(d.nobs) if scale is None else scale
        res = d.residual
        if res is None:
            return np.ones(len(newdata))
        if res.factor not in newdata.columns:
            raise DataError(
                f"newdata lacks column '{res.factor}': a response prediction needs each "
                "row's residual group (sigma=)"
            )
        ratio = self.sigma_ratio
        assert ratio is not None
        labels = newdata[res.factor].astype(str)
        unknown = sorted(set(labels) - set(ratio.index))
        if unknown:
            raise DataError(
                f"newdata's column '{res.factor}' has residual groups {unknown} the data lack"
            )
        return ratio.reindex(labels).to_numpy()

    def r2(self) -> pd.Series:
        """Nakagawa–Johnson–Schielzeth R², ``marginal`` (fixed effects) and
        ``conditional`` (fixed and random), as ``performance::r2_nakagawa``:
        σ²_f = var(Xβ̂), σ²_r = Σ_t mean_i z_t,i Σ̂_t z_t,iᵀ (random slopes over the observed
        design, Johnson 2014), R²_m = σ²_f / (σ²_f + σ²_r + σ̂²), R²_c = (σ²_f + σ²_r) / (…).
        """
        from .explore import nakagawa_r2

        return nakagawa_r2(self.working.design, self._beta, self._theta, self.sigma)

    # -- inference -------------------------------------------------------------------
    def confint(
        self,
        method: str = "profile",
        level: float = 0.95,
        parm: str | Sequence[str] | None = None,
        *,
        nsim: int = 500,
        seed: int | np.random.Generator | None = None,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals of every parameter (lme4's ``confint.merMod``).

        ``method``: ``"profile"`` (likelihood ratio: {x : D_prof(x) − D̂ ≤ z²} on the ML
        profile, as lme4 whatever the fit; an SD's interval may reach 0 and a
        correlation's ±1), ``"wald"`` (β̂ ± z·SE; NaN for the variance parameters, as
        lme4) or ``"boot"`` (percentile intervals of ``nsim`` parametric bootstrap
        refits, reproducible with ``seed``; ``progress`` draws a bar on stderr, by
        default when stderr is a terminal).  ``parm``: labels as ``compare()`` writes
        them (``fixef[Days]``, ``sd_Subject[(Intercept)]``,
        ``corr_Subject[(Intercept), Days]``, ``sigma``), None for all.  Returns a
        DataFrame indexed by label with columns ``lower`` and ``upper``.
        """
        return confint(self.working, method, level, parm, nsim=nsim, seed=seed, progress=progress)

    def bootstrap(
        self,
        nsim: int = 500,
        seed: int | np.random.Generator | None = None,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """Parametric bootstrap (lme4's ``bootMer``): the estimates of ``nsim`` refits to
        responses simulated from the fit, one row per refit, one column per parameter
        label; reproducible with ``seed``."""
        return bootstrap(self.working, nsim, seed, progress)

    def fixef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """t-tests of the fixed effects as lmerTest's ``summary(m, ddf=...)``: columns
        ``estimate``, ``se``, ``df``, ``t``, ``p`` (two-sided), one row per fixed effect.

        ``ddf="satterthwaite"``: df = 2·Var(β̂_j)²/(∇Vᵀ C ∇V), ∇V the exact derivatives
        of Var(β̂_j) in (θ, σ) and C twice the inverse Hessian of the deviance there.
        ``ddf="kenward-roger"`` (REML fits): Kenward & Roger's adjusted covariance and df.
        """
        return fixef_table(self.working, ddf)

    def anova(self, type: int = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
        """F tests of the fixed terms as lmerTest's ``anova(m, type = 3)`` (``type=2``:
        type II), indexed by term: ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
        ``F value``, ``Pr(>F)``.  ``ddf``: ``"satterthwaite"`` (lmerTest's default) or
        ``"kenward-roger"``.  For likelihood-ratio tests between models see
        :func:`bayeslmm.anova`."""
        from .ftests import f_tests

        return f_tests(self.design, self.working, type, ddf)

    def emmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: dict[str, Any] | None = None,
        *,
        ddf: str = "kenward-roger",
        level: float = 0.95,
    ) -> Any:
        """Estimated marginal means as emmeans 1.8's ``emmeans(fit, specs, by = , at = )``:
        the model's predictions on the reference grid (every combination of the fixed
        part's factors, numeric variables at their mean or at ``at``), averaged with equal
        weights over the factors not in ``specs``/``by``.  A DataFrame indexed by the
        levels, with emmeans' columns ``emmean``, ``SE``, ``df``, ``lower.CL``,
        ``upper.CL`` (level ``level``); ``ddf`` "kenward-roger" (emmeans' default for
        lmer) or "satterthwaite".  ``.pairs()`` and ``.contrast(method)`` give
        contrasts (``estimate``, ``SE``, ``df``, ``t.ratio``, ``p.value``; ``adjust=``
        "none" by default, or "tukey", "bonferroni", "holm", "sidak")."""
        from .emmeans import emmeans

        return emmeans(self.design, self.working, specs, by, at, ddf=ddf, level=level)

    # -- text ------------------------------------------------------------------------
    def summary(self, ddf: str | None = None) -> str:
        """lme4's ``summary(fit)`` text; with ``ddf`` ("satterthwaite" or
        "kenward-roger") lmerTest's, whose fixed-effect table adds df and p-values.
        Weighted fits scale the residuals as lme4 (Pearson residuals); a line names the
        weights and the offset, and residual groups get nlme's "Variance function"
        block (the σ ratios)."""
        work = self.working
        if ddf is None:
            text = summary_text(work)
        else:
            text = summary_text(work, self.fixef_table(ddf), DDF[ddf_method(ddf)])
        extra = self._breadth_lines()
        if not extra:
            return text
        head, sep, tail = text.partition("\nFixed effects:")
        return head + "\n" + "\n".join(extra) + "\n" + sep + tail

    def _breadth_lines(self) -> list[str]:
        """The summary's lines on weights, offset and residual groups (none for a plain
        model)."""
        lines = self.design.weight_offset_note
        ratio = self.sigma_ratio
        if ratio is not None:
            labels = [str(v) for v in ratio.index]
            width = [max(len(lab), 9) for lab in labels]
            lines += [
                "Variance function:",
                " Structure: Different standard deviations per stratum",
                f" Formula: ~1 | {ratio.index.name}",
                " Parameter estimates:",
                " " + " ".join(f"{lab:>{w}}" for lab, w in zip(labels, width, strict=True)),
                " " + " ".join(f"{v:>{w}.7f}" for v, w in zip(ratio, width, strict=True)),
            ]
        return lines

    def __repr__(self) -> str:
        return self.summary()

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (the model frame included)."""
        out: dict[str, Any] = {
            "formula": self.design.formula,
            "frame": frame_to_json(self.design.frame),
            "design_options": self.design_options,
        }
        for name in _SAVED:
            out[name] = to_json(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LmerFit:
        """Rebuild a fit from :meth:`to_dict`'s output (no refitting)."""
        frame = frame_from_json(d["frame"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            design = build_design(d["formula"], frame, **saved_options(d))
        saved = {name: from_json(d[name]) for name in _SAVED if name in d}
        ratio = saved.pop("sigma_ratio", None)
        for key in ("fitted", "residuals", "u", "b"):
            saved[key] = np.asarray(saved[key], dtype=float)
        csd = saved["conditional_sd"]
        fit = cls(
            design=design,
            _beta=saved["fixef"].to_numpy(),
            _vcov=saved["vcov"].to_numpy(),
            _theta=saved["theta"].to_numpy(),
            _conditional_sd=np.concatenate(
                [csd[t.factor][list(t.cnames)].to_numpy().ravel() for t in design.terms]
            ),
            _ratio=None if ratio is None else np.asarray(ratio, dtype=float),
            **{k: v for k, v in saved.items() if k in _FIELDS},
        )
        fit.__dict__.update({k: v for k, v in saved.items() if k not in _FIELDS})
        return fit

    def save(self, path: str | Path) -> None:
        """Write the fit as JSON (:func:`load_fit` reads it back)."""
        Path(path).write_text(json.dumps(self.to_dict()))


def design_options(design: Design) -> dict[str, str | None]:
    """How ``design``'s frame gives its weights, offset and residual groups back."""
    res = design.residual
    col = design.offset_column
    return {
        "weights": None if design.weights is None else "(weights)",
        "offset": None if col is None else col or "(offset)",
        "sigma": None if res is None else f"~ 1 | {res.factor}",
    }


def saved_options(d: dict[str, Any]) -> dict[str, Any]:
    """:func:`design_options` read back (none for files written before they existed)."""
    return {k: v for k, v in d.get("design_options", {}).items() if v is not None}


#: what :meth:`LmerFit.to_dict` writes, in order
_SAVED = (
    "reml", "fixef", "vcov", "theta", "sigma", "varcorr", "reml_criterion", "deviance",
    "loglik", "aic", "bic", "df", "nobs", "ngroups", "ranef", "conditional_sd", "coef",
    "fitted", "residuals", "is_singular", "optinfo", "u", "b", "data_name", "sigma_ratio",
)  # fmt: skip
_FIELDS = {f.name for f in fields(LmerFit)}


def load_fit(path: str | Path) -> LmerFit:
    """Read a fit written by :meth:`LmerFit.save`."""
    try:
        return LmerFit.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read a saved fit from {path}: {exc}") from None

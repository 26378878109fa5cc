"""REML / ML fits of ``y = Xβ + Zb + ε`` by lme4's profiled PLS algorithm (``lmer``).

``b = Λ_θ u`` with ``u ~ N(0, σ²I)`` and ``ε ~ N(0, σ²I)``.  For fixed θ the penalised
least squares problem gives β̂(θ), û(θ) and r²(θ); the profiled criteria

    ML deviance  d(θ)  = log|L_θ|² + n·(1 + log(2π r²/n))
    REML         d_R(θ) = log|L_θ|² + log|R_X|² + (n−p)·(1 + log(2π r²/(n−p)))

are minimised over θ (diagonal of each term's template ≥ 0).  Small models
(q + p + 1 <= 100) and models with one random-effect term have the exact gradient
(:meth:`Deviance.value_and_grad`) and use BFGS from a finite-difference Hessian at lme4's
start (θ unbounded, then mapped back: see :func:`_quasi_newton`); the others, and any
model where BFGS gives up, use lme4's ``optimizeLmer``: NLopt's BOBYQA at lme4's
settings, then a short BOBYQA polish.  lme4's convergence check follows (on the exact
gradient where there is one).
σ̂² = r²/n (ML) or r²/(n−p) (REML), vcov(β̂) = σ̂²(R_XR_Xᵀ)⁻¹ and
Var(b | y) = σ̂²Λ(ΛᵀZᵀZΛ + I)⁻¹Λᵀ (lme4's condVar).  The linear algebra is in
:mod:`bayeslmm._pls`.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import nlopt
import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from ._pls import Deviance, _template, _tril
from ._rformat import abbreviate, print_matrix, print_named, r_format, zapsmall
from .design import Design, build_design
from .errors import BayesLMMError, ConvergenceWarning, DataError, SingularFitWarning

#: lme4's ``nloptwrap`` defaults (``lmerControl()``), plus nloptr's default xtol_rel
_OPT_SETTINGS = {"xtol_abs": 1e-8, "ftol_abs": 1e-8, "xtol_rel": 1e-4, "maxeval": 100_000}
#: a second, short BOBYQA run from lme4's optimum with a small trust region: flat optima
#: (iris, Penicillin) stop early at lme4's settings
_POLISH_SETTINGS = {"xtol_abs": 1e-8, "ftol_abs": 1e-9, "xtol_rel": 1e-6, "maxeval": 100_000}
_SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance
_BOUNDARY_TOL = 1e-5  # lme4's boundary.tol
_GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance
_SINGULAR_MSG = "boundary (singular) fit: see help('isSingular')"
_THREADPOOLS: list[ThreadpoolController] = []  # scanning for BLAS libraries costs ~3 ms


def _blas_threads(n: int):
    """Limit BLAS threads (threadpoolctl), scanning the loaded libraries only once."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=n)


# --------------------------------------------------------------------------------------
# Optimisation (lme4's optimizeLmer + checkConv)
# --------------------------------------------------------------------------------------


def _start(design: Design) -> np.ndarray:
    """lme4's start: θ = 1 on the diagonal, 0 below; for models whose terms are all
    ``(1 | f)`` on distinct factors, θ₀ = sqrt(var(ave(y, f)) / (var(y) − Σ var(ave(y, f))))."""
    theta = design.theta_start
    terms = design.terms
    if all(t.cnames == ("(Intercept)",) for t in terms) and len({t.factor for t in terms}) == len(
        terms
    ):
        y = design.y
        v = []
        for t in terms:
            means = np.bincount(t.codes, weights=y) / np.bincount(t.codes)
            v.append(np.var(means[t.codes], ddof=1))
        v_e = np.var(y, ddof=1) - sum(v)
        if v_e > 0:
            theta = np.sqrt(np.asarray(v) / v_e)
    return theta


def _bobyqa(
    dev: Deviance, x0: np.ndarray, lower: np.ndarray, polish: bool = False
) -> tuple[np.ndarray, float, int]:
    """NLopt LN_BOBYQA as lme4's ``nloptwrap``; returns (θ, criterion, evaluations)."""
    settings = _POLISH_SETTINGS if polish else _OPT_SETTINGS
    opt = nlopt.opt(nlopt.LN_BOBYQA, len(x0))
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(np.full(len(x0), np.inf))
    opt.set_xtol_abs(settings["xtol_abs"])
    opt.set_ftol_abs(settings["ftol_abs"])
    opt.set_xtol_rel(settings["xtol_rel"])
    opt.set_maxeval(settings["maxeval"])
    if polish:
        opt.set_initial_step(1e-3 * np.maximum(np.abs(x0), 0.05))
    opt.set_min_objective(lambda x, grad: dev(x))
    try:
        x = opt.optimize(np.asarray(x0, dtype=float))
        fval = opt.last_optimum_value()
    except nlopt.RoundoffLimited:
        x, fval = np.asarray(x0, float), dev(x0)
    return np.asarray(x), float(fval), int(opt.get_numevals())


def _optimize(dev: Deviance, start: np.ndarray, lower: np.ndarray) -> dict:
    """Minimise the profiled criterion over θ >= lower from lme4's start.

    Small and single-term models (exact gradient): BFGS.  Otherwise, and wherever
    that does not converge, lme4's optimizeLmer: BOBYQA, a restart from the edge and a
    polish (flat optima such as iris or Penicillin stop early at lme4's settings).
    Last, lme4's boundary snap.
    """
    out = _quasi_newton(dev, start) if dev.has_gradient else None
    if out is None:
        out = _bobyqa_path(dev, start, lower)
    near = (out["theta"] - lower > 0) & (out["theta"] - lower < _BOUNDARY_TOL)
    if near.any():
        snapped = np.where(near, lower, out["theta"])
        fsnap = dev(snapped)
        out["nevals"] += 1
        if fsnap < out["fval"]:
            out.update(theta=snapped, fval=fsnap, derivs=None)
    return out


def _bobyqa_path(dev: Deviance, start: np.ndarray, lower: np.ndarray) -> dict:
    """lme4's optimizeLmer with NLopt BOBYQA (restart_edge), then a polish."""
    theta, fval, nevals = _bobyqa(dev, start, lower)
    at_bound = np.flatnonzero(theta == lower)
    if at_bound.size:
        # restart_edge: a one-sided derivative pointing inward means restart
        d0 = dev(theta)
        step = 1e-5
        grads = []
        for i in at_bound:
            t = theta.copy()
            t[i] = lower[i] + step
            grads.append((dev(t) - d0) / step)
        nevals += 1 + len(at_bound)
        if any(g < 0 for g in grads):
            theta, fval, extra = _bobyqa(dev, theta, lower)
            nevals += extra
    polished, fpol, extra = _bobyqa(dev, theta, lower, polish=True)
    if fpol < fval:
        theta, fval = polished, fpol
    return {
        "theta": theta,
        "fval": fval,
        "nevals": nevals + extra,
        "derivs": None,
        "optimizer": "nloptwrap (NLopt LN_BOBYQA)",
    }


def _quasi_newton(dev: Deviance, x: np.ndarray, maxiter: int = 200) -> dict | None:
    """BFGS on the exact gradient, from a finite-difference Hessian at the start.

    The criterion depends on each term's TTᵀ only, so a template with a negative
    diagonal entry is the same model as the one with that column negated: θ is searched
    without bounds (no boundary traps: for a scalar term θ = 0 is always stationary) and
    mapped back to θ >= lower at the end.  Steps are backtracked (Armijo); once the Newton
    decrement −gᵀp/2 (the predicted fall) is below 1e-10·|f|, one last step is taken.
    Returns None when it does not converge (the caller then uses BOBYQA); else the
    optimum, with the gradient and a fresh Hessian there for lme4's convergence check.
    """
    x = np.asarray(x, dtype=float).copy()
    f, g = dev.value_and_grad(x)
    if not np.isfinite(f):
        return None
    Hinv = np.linalg.inv(_positive_definite(_hessian(dev, x, g)))  # BFGS on the inverse
    nevals = 1 + len(x)
    for _ in range(maxiter):
        p = -Hinv @ g
        decrement = -float(g @ p) / 2
        if decrement <= 0:  # not a descent direction: restart from steepest descent
            Hinv = np.eye(len(x)) / max(1.0, float(np.abs(g).max()))
            p = -Hinv @ g
            decrement = -float(g @ p) / 2
        last = decrement <= 1e-10 * max(1.0, abs(f))
        alpha = 1.0
        for _ in range(40):
            xn = x + alpha * p
            fn, gn = dev.value_and_grad(xn)
            nevals += 1
            if fn <= f - 2e-4 * alpha * decrement:
                break
            alpha *= 0.5
        else:
            if decrement <= 1e-8 * max(1.0, abs(f)):
                break  # at the limit of the criterion's precision
            return None
        if last:
            if fn <= f:
                x, f, g = xn, fn, gn
            break
        s, yv = xn - x, gn - g
        x, f, g = xn, fn, gn
        sy = float(s @ yv)
        if sy > 1e-12 * math.sqrt(float(s @ s) * float(yv @ yv)):
            Hy = Hinv @ yv
            Hinv = (
                Hinv
                - (np.outer(s, Hy) + np.outer(Hy, s)) / sy
                + (1.0 + float(yv @ Hy) / sy) / sy * np.outer(s, s)
            )
    else:
        return None
    canonical = _canonical(dev.design, x)
    if (canonical != x).any():
        x = canonical
        f, g = dev.value_and_grad(x)
        nevals += 1
    return {
        "theta": x,
        "fval": float(f),
        "nevals": nevals + len(x),
        "derivs": (g, _hessian(dev, x, g)),
        "optimizer": "BFGS (exact gradient)",
    }


def _canonical(design: Design, theta: np.ndarray) -> np.ndarray:
    """θ with every template column whose diagonal is negative negated (same TTᵀ)."""
    theta = theta.copy()
    for t, sl in zip(design.terms, design.theta_slices):
        T = _template(theta[sl], t.nc)
        T[:, np.diag(T) < 0] *= -1.0
        theta[sl] = T[_tril(t.nc)]
    return theta


def _positive_definite(H: np.ndarray) -> np.ndarray:
    """H with its eigenvalues replaced by their absolute values (floored)."""
    w, V = np.linalg.eigh(H)
    w = np.maximum(np.abs(w), max(1e-8, 1e-6 * float(np.max(np.abs(w)))))
    return (V * w) @ V.T


def _hessian(dev: Deviance, x: np.ndarray, g: np.ndarray, delta: float = 1e-5) -> np.ndarray:
    """Hessian by forward differences of the exact gradient g at x, symmetrised (the
    steps go up, so a θ on its bound stays feasible)."""
    H = np.empty((len(x), len(x)))
    for j in range(len(x)):
        xa = x.copy()
        xa[j] += delta
        H[:, j] = (dev.value_and_grad(xa)[1] - g) / delta
    return (H + H.T) / 2


def _deriv12(dev: Deviance, x: np.ndarray, fx: float, delta: float = 1e-4):
    """Central finite-difference gradient and Hessian (lme4's ``deriv12``)."""
    n = len(x)
    g, H = np.empty(n), np.empty((n, n))
    for j in range(n):
        xa, xs = x.copy(), x.copy()
        xa[j] += delta
        xs[j] -= delta
        fa, fs = dev(xa), dev(xs)
        g[j] = (fa - fs) / (2 * delta)
        H[j, j] = (fa - 2 * fx + fs) / delta**2
        for i in range(j):
            pts = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                xx = x.copy()
                xx[i] += si * delta
                xx[j] += sj * delta
                pts.append(dev(xx))
            H[i, j] = H[j, i] = (pts[0] - pts[1] - pts[2] + pts[3]) / (4 * delta**2)
    return g, H


def _check_convergence(
    dev: Deviance, theta: np.ndarray, fval: float, derivs: tuple | None = None
) -> list[str]:
    """lme4's checkConv gradient and Hessian checks (skipped for singular fits).

    ``derivs`` = (g, H) at θ where BFGS computed them (exact gradient); otherwise
    lme4's finite differences."""
    g, H = derivs if derivs is not None else _deriv12(dev, theta, fval)
    messages = []
    try:
        scgrad = np.linalg.solve(np.linalg.cholesky(H).T, g)
        maxmin = float(np.max(np.minimum(np.abs(scgrad), np.abs(g))))
        if maxmin > _GRAD_TOL:
            messages.append(
                f"Model failed to converge with max|grad| = {maxmin:.6g} "
                f"(tol = {_GRAD_TOL:g}, component {int(np.argmax(np.abs(g))) + 1})"
            )
    except np.linalg.LinAlgError:
        messages.append("unable to evaluate scaled gradient")
        ev = np.linalg.eigvalsh(H)
        if (ev < 0).any():
            messages.append(
                f"Model failed to converge: degenerate  Hessian with {int((ev < 0).sum())} "
                "negative eigenvalues"
            )
    return messages


# --------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------


def fit_lmer(design: Design, reml: bool = True) -> LmerFit:
    """Fit ``design`` by REML (``reml=True``) or ML, as lme4's ``lmer``."""
    if design.p == 0 and reml:
        raise BayesLMMError("REML needs at least one fixed-effect column; use reml=False")
    dev = Deviance(design, reml=reml)
    lower = design.theta_lower
    # one BLAS thread: on a busy 2-core machine threads made fits 10-40x slower
    with _blas_threads(1):
        opt = _optimize(dev, _start(design), lower)
        theta = opt["theta"]
        res = dev.result(theta)
        fval = res["fval"]
        is_singular = bool((theta[lower == 0] < _SINGULAR_TOL).any())
        messages: list[str] = []
        if is_singular:
            messages.append(_SINGULAR_MSG)
        elif design.nobs < 10_000 and len(theta) < 10:  # lme4 >= 1.1-35 skips larger fits
            messages = _check_convergence(dev, theta, fval, opt["derivs"])
    for msg in messages:
        category = SingularFitWarning if msg == _SINGULAR_MSG else ConvergenceWarning
        warnings.warn(msg, category, stacklevel=3)
    return _assemble(design, reml, theta, res, opt, messages)


def _assemble(design: Design, reml: bool, theta, res: dict, opt: dict, messages) -> LmerFit:
    """The numbers of the fit; its tables (pandas) are built when first asked for."""
    n, p = design.nobs, design.p
    fval = res["fval"]
    sigma = math.sqrt(res["r2"] / (n - p if reml else n))
    Rx_inv = sla.solve_triangular(res["Rx"], np.eye(p), lower=True) if p else np.zeros((0, 0))
    u_terms = _per_term(design, res["u"])
    b_list, csd_list = [], []
    for t, sl, ui, Vi in zip(design.terms, design.theta_slices, u_terms, res["V"]):
        T = _template(theta[sl], t.nc)
        b_list.append((ui @ T.T).ravel())
        if t.nc == 1:
            cv = T[0, 0] ** 2 * Vi[:, 0, 0]
        else:
            cv = np.einsum("cd,lde,ce->lc", T, Vi, T).ravel()
        csd_list.append(sigma * np.sqrt(np.clip(cv, 0, None)))
    df_ = p + len(theta) + 1
    loglik = -fval / 2
    return LmerFit(
        design=design,
        reml=reml,
        sigma=sigma,
        reml_criterion=float(fval) if reml else None,
        deviance=None if reml else float(fval),
        loglik=float(loglik),
        aic=float(-2 * loglik + 2 * df_),
        bic=float(-2 * loglik + math.log(n) * df_),
        df=df_,
        nobs=n,
        ngroups=dict(design.ngroups),
        is_singular=bool((theta[design.theta_lower == 0] < _SINGULAR_TOL).any()),
        optinfo={
            "optimizer": opt["optimizer"],
            "n_evals": int(opt["nevals"]),
            "converged": not any(m != _SINGULAR_MSG for m in messages),
            "messages": list(messages),
        },
        u=np.asarray(res["u"], dtype=float).copy(),
        b=np.concatenate(b_list),
        _beta=np.asarray(res["beta"], dtype=float).copy(),
        _vcov=sigma**2 * Rx_inv.T @ Rx_inv,
        _theta=np.asarray(theta, dtype=float),
        _conditional_sd=np.concatenate(csd_list),
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
    for t, arr in zip(design.terms, per_term):
        df = pd.DataFrame(arr, index=pd.Index(t.levels, name=t.factor), columns=list(t.cnames))
        out[t.factor] = df if t.factor not in out else pd.concat([out[t.factor], df], axis=1)
    return out


def _varcorr(design: Design, theta: np.ndarray, sigma: float) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
    rows = []
    for t, sl in zip(design.terms, design.theta_slices):
        T = _template(theta[sl], t.nc)
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        for c in range(t.nc):
            rows.append((t.group, t.cnames[c], None, S[c, c], sd[c]))
        for c in range(t.nc):
            for r in range(c + 1, t.nc):
                corr = S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else 0.0
                rows.append((t.group, t.cnames[c], t.cnames[r], S[r, c], corr))
    rows.append(("Residual", None, None, sigma**2, sigma))
    cols = list(zip(*rows))
    return pd.DataFrame(
        {
            "grp": pd.Series(cols[0], dtype=object),
            "var1": pd.Series(cols[1], dtype=object),
            "var2": pd.Series(cols[2], dtype=object),
            "vcov": np.asarray(cols[3], dtype=float),
            "sdcor": np.asarray(cols[4], dtype=float),
        }
    )


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


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
        """R's ``as.data.frame(VarCorr(fit))``: grp, var1, var2, vcov, sdcor."""
        return _varcorr(self.design, self._theta, self.sigma)

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
        """Xβ̂ + Zb̂."""
        design = self.design
        fitted = design.X @ self._beta
        for t, bi in zip(design.terms, _per_term(design, self.b)):
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
        for t, sl in zip(self.design.terms, self.design.theta_slices):
            T = _template(self._theta[sl], t.nc)
            blocks.append(sp.kron(sp.identity(t.nl), sp.csr_matrix(T)))
        return sp.block_diag(blocks, format="csc")

    # -- prediction ------------------------------------------------------------------
    def predict(
        self, newdata: pd.DataFrame | None = None, random_effects: bool = True
    ) -> np.ndarray:
        """Xβ̂ (+ Zb̂ with ``random_effects``); unseen levels get b = 0 (allow.new.levels).

        Rows of ``newdata`` with missing values get NaN.
        """
        design = self.design
        beta = self._beta
        if newdata is None:
            return self.fitted.copy() if random_effects else design.X @ beta
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        frame = design.frame
        missing = [c for c in frame.columns if c not in newdata.columns and c != design.response]
        if missing:
            raise DataError(
                f"newdata lacks column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(c) for c in missing)} used by the formula"
            )
        new = pd.DataFrame(index=range(len(newdata)))
        for c in frame.columns:
            if c in newdata.columns:
                new[c] = newdata[c].to_numpy()
            else:
                new[c] = 0.0  # the response is not needed for prediction
        complete = ~new.isna().any(axis=1).to_numpy()
        new = new.loc[complete]
        out = np.full(len(newdata), np.nan)
        if not len(new):
            return out
        both = pd.concat([frame, new], ignore_index=True)
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype) or isinstance(
                new[c].dtype, pd.CategoricalDtype
            ):
                both[c] = both[c].astype(str)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = build_design(design.formula, both)
        rows = slice(design.nobs, design.nobs + len(new))
        cols = list(full.fixef_names)
        absent = [c for c in design.fixef_names if c not in cols]
        if absent:
            raise DataError(f"newdata does not give the fixed-effect columns {absent}")
        X = full.X[rows][:, [cols.index(c) for c in design.fixef_names]]
        eta = X @ beta
        if random_effects:
            for t in full.terms:
                table = self.ranef[t.factor]
                cn = list(t.cnames)
                vals = table.reindex(list(t.levels))[cn].fillna(0.0).to_numpy()
                eta = eta + np.einsum("nk,nk->n", t.X[rows], vals[t.codes[rows]])
        out[complete] = eta
        return out

    # -- text ------------------------------------------------------------------------
    def summary(self) -> str:
        """lme4's ``summary(fit)`` text."""
        return _summary_text(self)

    def __repr__(self) -> str:
        return self.summary()

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (the model frame included)."""
        frame = self.design.frame
        out: dict[str, Any] = {
            "formula": self.design.formula,
            "frame": {
                "columns": list(frame.columns),
                "data": {c: frame[c].tolist() for c in frame.columns},
                "categories": {
                    c: [str(x) for x in frame[c].cat.categories]
                    for c in frame.columns
                    if isinstance(frame[c].dtype, pd.CategoricalDtype)
                },
            },
        }
        for name in _SAVED:
            out[name] = _to_json(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LmerFit:
        """Rebuild a fit from :meth:`to_dict`'s output (no refitting)."""
        fr = d["frame"]
        frame = pd.DataFrame({c: fr["data"][c] for c in fr["columns"]})
        for c, cats in fr["categories"].items():
            frame[c] = pd.Categorical(frame[c].astype(str), categories=cats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            design = build_design(d["formula"], frame)
        saved = {name: _from_json(d[name]) for name in _SAVED}
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
            **{k: v for k, v in saved.items() if k in _FIELDS},
        )
        fit.__dict__.update({k: v for k, v in saved.items() if k not in _FIELDS})
        return fit

    def save(self, path: str | Path) -> None:
        """Write the fit as JSON (:func:`load_fit` reads it back)."""
        Path(path).write_text(json.dumps(self.to_dict()))


#: what :meth:`LmerFit.to_dict` writes, in order
_SAVED = (
    "reml", "fixef", "vcov", "theta", "sigma", "varcorr", "reml_criterion", "deviance",
    "loglik", "aic", "bic", "df", "nobs", "ngroups", "ranef", "conditional_sd", "coef",
    "fitted", "residuals", "is_singular", "optinfo", "u", "b", "data_name",
)  # fmt: skip
_FIELDS = {f.name for f in fields(LmerFit)}


def load_fit(path: str | Path) -> LmerFit:
    """Read a fit written by :meth:`LmerFit.save`."""
    try:
        content = json.loads(Path(path).read_text())
        return LmerFit.from_dict(content)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read a saved fit from {path}: {exc}") from None


def _to_json(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return {"__series__": value.name, "index": list(value.index), "values": value.tolist()}
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": value.index.name,
            "index": list(value.index),
            "columns": list(value.columns),
            "data": value.astype(object).where(value.notna(), None).to_numpy().tolist(),
        }
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__series__" in value:
        return pd.Series(value["values"], index=value["index"], name=value["__series__"])
    if isinstance(value, dict) and "__frame__" in value:
        data = list(zip(*value["data"])) if value["data"] else [[]] * len(value["columns"])
        df = pd.DataFrame(
            {
                c: np.asarray(col, dtype=float)
                if all(isinstance(x, (int, float)) for x in col)
                else pd.Series(col, dtype=object)
                for c, col in zip(value["columns"], data)
            },
            index=pd.Index(value["index"], name=value["__frame__"]),
        )
        return df
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------
# lme4's summary layout (print.summary.merMod with digits = 4)
# --------------------------------------------------------------------------------------

_DIGITS = 4


def _r_formula(formula: str, cutoff: int = 60) -> list[str]:
    """R's deparse of an lme4 formula: spaced ``|``, ``(x || g)`` expanded, lines cut at 60."""

    def expand(m: re.Match) -> str:
        lhs = [t.strip() for t in m.group(1).split("+")]
        g = m.group(2).strip()
        parts = [] if {"0", "-1"} & set(lhs) else [f"(1 | {g})"]
        parts += [f"(0 + {t} | {g})" for t in lhs if t not in ("0", "-1", "1")]
        return "(" + " + ".join(parts) + ")"

    text = re.sub(r"\(([^()|]*)\|\|([^()|]*)\)", expand, " ".join(formula.split()))
    text = re.sub(r"\s*\|\s*", " | ", text)
    text = re.sub(r"\s*([~+])\s*", r" \1 ", text)
    text = " ".join(text.replace("( ", "(").replace(" )", ")").split())
    lines, line = [], ""
    for piece in re.split(r"(?<=[~+|] )", text):
        line += piece
        if len(line) > cutoff:
            lines.append(line)
            line = "    "
    if line.strip():
        lines.append(line)
    return lines


def _quantile7(x: np.ndarray) -> np.ndarray:
    """R's quantile type 7 at 0, .25, .5, .75, 1."""
    return np.quantile(x, [0, 0.25, 0.5, 0.75, 1.0], method="linear")


def _summary_text(fit: LmerFit) -> str:
    design = fit.design
    lines = [
        "Linear mixed model fit by REML ['lmerMod']"
        if fit.reml
        else "Linear mixed model fit by maximum likelihood  ['lmerMod']",
        "Formula: " + " \n".join(_r_formula(design.formula)),
    ]
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {round(fit.reml_criterion, 1):.7g}")
    else:
        vals = [round(v, 1) for v in (fit.aic, fit.bic, fit.loglik, fit.deviance)]
        cells = r_format([*vals, fit.nobs - fit.df], 7)
        cells[-1] = str(fit.nobs - fit.df)
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        width = max(len(c) for c in cells + names)
        lines += print_named([c.rjust(width) for c in cells], [n.rjust(width) for n in names])
    lines.append("")
    lines.append("Scaled residuals: ")
    q = zapsmall(_quantile7(fit.residuals / fit.sigma), _DIGITS + 1)
    lines += print_named(r_format(q, _DIGITS), ["Min", "1Q", "Median", "3Q", "Max"])
    lines.append("")
    lines.append("Random effects:")
    lines += _varcorr_lines(fit)
    groups = "; ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    lines += design.missing_note
    if design.p:
        lines += ["", "Fixed effects:", *_coef_lines(fit)]
    if design.p > 1:
        lines += ["", "Correlation of Fixed Effects:", *_corr_lines(fit)]
    if fit.optinfo["messages"]:
        lines += ["optimizer (nloptwrap) convergence code: 0 (OK)"] + fit.optinfo["messages"]
    return "\n".join(lines)


def _varcorr_lines(fit: LmerFit) -> list[str]:
    design = fit.design
    sds, groups, names, corrs = [], [], [], []
    maxlen = max(t.nc for t in design.terms)
    theta = fit.theta.to_numpy()
    for t, sl in zip(design.terms, design.theta_slices):
        T = _template(theta[sl], t.nc)
        S = fit.sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        sds += list(sd)
        groups += [t.group] + [""] * (t.nc - 1)
        names += list(t.cnames)
        with np.errstate(invalid="ignore", divide="ignore"):
            C = S / np.outer(sd, sd)
        cc = r_format(np.round(np.nan_to_num(C), 2), 7, nsmall=2)
        cc = np.array(cc).reshape(t.nc, t.nc)
        for r in range(t.nc):
            row = [cc[r, c] if c < r else "" for c in range(maxlen)]
            corrs.append(row[: maxlen - 1])
    sds.append(fit.sigma)
    groups.append("Residual")
    names.append("")
    corrs.append([""] * (maxlen - 1))
    var = r_format(np.square(sds), _DIGITS)
    sdf = r_format(sds, _DIGITS)
    cells = [[g, n, v, s, *c] for g, n, v, s, c in zip(groups, names, var, sdf, corrs)]
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (
        ["Corr"] + [""] * (maxlen - 2) if maxlen > 1 else []
    )
    return print_matrix(cells, header, [""] * len(cells))


def _coef_lines(fit: LmerFit) -> list[str]:
    est = fit.fixef.to_numpy()
    se = fit.fixef_se.to_numpy()
    tval = est / se
    cs = np.column_stack([est, se])
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.array([1, 1])
    dec = int(max(1, *(_DIGITS - digmin)))
    csf = np.array(r_format(np.round(cs, dec), _DIGITS)).reshape(cs.shape, order="C")
    tf = r_format(np.round(tval, max(1, min(5, _DIGITS - 1))), _DIGITS)
    cells = [[csf[i, 0], csf[i, 1], tf[i]] for i in range(len(est))]
    for i in range(len(est)):
        for j in range(2):
            if cs[i, j] != 0 and float(cells[i][j]) == 0:
                cells[i][j] = r_format([cs[i, j]], _DIGITS - 1)[0]
    return print_matrix(
        cells, ["Estimate", "Std. Error", "t value"], list(fit.fixef.index), right=True
    )


def _corr_lines(fit: LmerFit) -> list[str]:
    V = fit.vcov.to_numpy()
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    p = len(sd)
    names = list(fit.fixef.index)
    cf = np.array(r_format(np.round(C.ravel(order="F"), 3), 7, nsmall=3)).reshape((p, p), order="F")
    rows = [abbreviate(n, 11) for n in names]
    cols = [abbreviate(n, 6) for n in names]
    cells = [[cf[i, j] if i > j else "" for j in range(p - 1)] for i in range(1, p)]
    return print_matrix(cells, cols[: p - 1], rows[1:])

"""Minimising the profiled criterion over θ: lme4's ``optimizeLmer`` and ``checkConv``.

Models with the exact gradient (:attr:`Deviance.has_gradient`) use BFGS from a
finite-difference Hessian at lme4's start, searching θ without bounds and mapping it back
(:func:`quasi_newton`); the others, and any model where BFGS gives up, use lme4's
``optimizeLmer``: NLopt's BOBYQA at lme4's settings, then a short BOBYQA polish.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import nlopt
import numpy as np
from threadpoolctl import ThreadpoolController

from ..design import Design, lower_triangle
from .pls import Deviance, template

#: lme4's ``nloptwrap`` defaults (``lmerControl()``), plus nloptr's default xtol_rel
_OPT_SETTINGS = {"xtol_abs": 1e-8, "ftol_abs": 1e-8, "xtol_rel": 1e-4, "maxeval": 100_000}
#: a second, short BOBYQA run from lme4's optimum with a small trust region: flat optima
#: (iris, Penicillin) stop early at lme4's settings
_POLISH_SETTINGS = {"xtol_abs": 1e-8, "ftol_abs": 1e-9, "xtol_rel": 1e-6, "maxeval": 100_000}
_BOUNDARY_TOL = 1e-5  # lme4's boundary.tol
_GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance
_BFGS_GTOL = 1e-4  # max|∇| at which a scaled-start BFGS may stop
#: lme4 (>= 1.1-35) checks the gradient and Hessian of fits with fewer θ and rows only
CHECK_MAX_THETA, CHECK_MAX_NOBS = 10, 10_000
BFGS = "BFGS (exact gradient)"
BOBYQA = "nloptwrap (NLopt LN_BOBYQA)"
_THREADPOOLS: list[ThreadpoolController] = []  # scanning for BLAS libraries costs ~3 ms


def blas_threads(n: int) -> Any:
    """Limit BLAS threads (threadpoolctl), scanning the loaded libraries only once.

    Fits and inference run with one thread: their matrices are small, and threads on a
    busy 2-core machine made fits 10-40x slower."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=n)


@dataclass(frozen=True)
class OptResult:
    """The optimiser's answer: θ̂, the criterion there, the number of evaluations, the
    optimiser's name and, for BFGS, the exact gradient and a Hessian at θ̂ (else None)."""

    theta: np.ndarray
    fval: float
    nevals: int
    optimizer: str
    derivs: tuple[np.ndarray, np.ndarray] | None = None


def start_theta(design: Design) -> np.ndarray:
    """lme4's start: θ = 1 on the diagonal, 0 below; for models whose terms are all
    ``(1 | f)`` on distinct factors, θ₀ = sqrt(var(ave(y, f)) / (var(y) − Σ var(ave(y, f))))."""
    theta = design.theta_start
    terms = design.terms
    scalar = all(t.cnames == ("(Intercept)",) for t in terms)
    if scalar and len({t.factor for t in terms}) == len(terms):
        y = design.y
        v = []
        for t in terms:
            means = np.bincount(t.codes, weights=y) / np.bincount(t.codes)
            v.append(np.var(means[t.codes], ddof=1))
        v_e = np.var(y, ddof=1) - sum(v)
        if v_e > 0:
            theta = np.sqrt(np.asarray(v) / v_e)
    return theta


def optimize(dev: Deviance, start: np.ndarray, lower: np.ndarray) -> OptResult:
    """Minimise the profiled criterion over θ >= lower from lme4's start.

    Exact gradient: BFGS.  Otherwise, and wherever that does not converge, lme4's
    optimizeLmer: BOBYQA, a restart from the edge and a polish.  Last, lme4's boundary snap.
    """
    out = quasi_newton(dev, start) if dev.has_gradient else None
    if out is None:
        out = bobyqa_path(dev, start, lower)
    near = (out.theta - lower > 0) & (out.theta - lower < _BOUNDARY_TOL)
    if near.any():
        snapped = np.where(near, lower, out.theta)
        fsnap = dev(snapped)
        out = replace(out, nevals=out.nevals + 1)
        if fsnap < out.fval:
            out = replace(out, theta=snapped, fval=fsnap, derivs=None)
    return out


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


def bobyqa_path(dev: Deviance, start: np.ndarray, lower: np.ndarray) -> OptResult:
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
    return OptResult(theta, fval, nevals + extra, BOBYQA)


@dataclass(frozen=True)
class BFGSResult:
    """Where :func:`bfgs` stopped: x, f(x), ∇f(x), the inverse-Hessian approximation there,
    the evaluations it took and whether it converged."""

    x: np.ndarray
    f: float
    g: np.ndarray
    Hinv: np.ndarray
    nevals: int
    converged: bool


def bfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    Hinv: np.ndarray,
    start: tuple[float, np.ndarray] | None = None,
    maxiter: int = 200,
    rescale: bool = False,
    gtol: float = np.inf,
) -> BFGSResult:
    """BFGS on an exact gradient, ``fun(x) = (f, ∇f)``, from the inverse Hessian ``Hinv``
    (and ``start`` = fun(x) when known).

    Steps are backtracked (Armijo); once the Newton decrement −gᵀp/2 (the predicted fall)
    is below 1e-10·max(1, |f|), one last step is taken.  A direction that is not a
    descent restarts from scaled steepest descent.  A line search that fails counts as
    converged when the decrement is below 1e-8·max(1, |f|) (the criterion's precision).
    ``rescale``: ``Hinv`` is only a first step's scale; before the first update it becomes
    (sᵀy / yᵀy)·I (Nocedal & Wright, eq. 6.20).  ``gtol``: the decrement test stops only
    where max|∇f| <= gtol too (a young ``Hinv`` underestimates the decrement).
    """
    x = np.asarray(x, dtype=float).copy()
    f, g = fun(x) if start is None else start
    nevals = int(start is None)
    if not np.isfinite(f):
        return BFGSResult(x, f, g, Hinv, nevals, False)
    for _ in range(maxiter):
        p = -Hinv @ g
        decrement = -float(g @ p) / 2
        if decrement <= 0:  # not a descent direction: restart from steepest descent
            Hinv = np.eye(len(x)) / max(1.0, float(np.abs(g).max()))
            p = -Hinv @ g
            decrement = -float(g @ p) / 2
        last = decrement <= 1e-10 * max(1.0, abs(f)) and float(np.abs(g).max()) <= gtol
        alpha = 1.0
        for _ in range(40):
            xn = x + alpha * p
            fn, gn = fun(xn)
            nevals += 1
            if fn <= f - 2e-4 * alpha * decrement:
                break
            alpha *= 0.5
        else:
            converged = decrement <= 1e-8 * max(1.0, abs(f))
            return BFGSResult(x, f, g, Hinv, nevals, converged)
        if last:
            if fn <= f:
                x, f, g = xn, fn, gn
            return BFGSResult(x, f, g, Hinv, nevals, True)
        s, yv = xn - x, gn - g
        x, f, g = xn, fn, gn
        sy = float(s @ yv)
        if sy > 1e-12 * math.sqrt(float(s @ s) * float(yv @ yv)):
            if rescale:
                Hinv, rescale = np.eye(len(x)) * (sy / float(yv @ yv)), False
            Hy = Hinv @ yv
            Hinv = (
                Hinv
                - (np.outer(s, Hy) + np.outer(Hy, s)) / sy
                + (1.0 + float(yv @ Hy) / sy) / sy * np.outer(s, s)
            )
    return BFGSResult(x, f, g, Hinv, nevals, False)


def quasi_newton(dev: Deviance, x: np.ndarray, maxiter: int = 200) -> OptResult | None:
    """:func:`bfgs` on the exact gradient, from a finite-difference Hessian at the start
    (or, where :attr:`Deviance.scaled_start`, from a scaled identity: crossed designs with
    many θ, where nθ gradients for a Hessian cost more than the iterations they save).

    The criterion depends on each term's TTᵀ only, so a template with a negative
    diagonal entry is the same model as the one with that column negated: θ is searched
    without bounds (no boundary traps: for a scalar term θ = 0 is always stationary) and
    mapped back to θ >= lower at the end.  Returns None when it does not converge (the
    caller then uses BOBYQA); else the optimum, with the gradient and a fresh Hessian
    there for lme4's convergence check (only where fits check it: fewer than
    :data:`CHECK_MAX_THETA` θ and :data:`CHECK_MAX_NOBS` rows).
    """
    x = np.asarray(x, dtype=float).copy()
    f, g = dev.value_and_grad(x)
    if not np.isfinite(f):
        return None
    grad = dev.gradient
    if dev.scaled_start:
        Hinv = np.eye(len(x)) / max(1.0, float(np.abs(g).max()))
        res = bfgs(
            dev.value_and_grad, x, Hinv, start=(f, g), maxiter=max(maxiter, 20 * len(x)),
            rescale=True, gtol=_BFGS_GTOL,
        )  # fmt: skip
        nevals = 1 + res.nevals
    else:
        Hinv = np.linalg.inv(positive_definite(hessian(grad, x, g)))  # BFGS on the inverse
        res = bfgs(dev.value_and_grad, x, Hinv, start=(f, g), maxiter=maxiter)
        nevals = 1 + len(x) + res.nevals
    if not res.converged:
        return None
    x, f, g = res.x, res.f, res.g
    canonical = _canonical(dev.design, x)
    if (canonical != x).any():
        x = canonical
        f, g = dev.value_and_grad(x)
        nevals += 1
    if len(x) >= CHECK_MAX_THETA or dev.n >= CHECK_MAX_NOBS:
        return OptResult(x, float(f), nevals, BFGS)
    return OptResult(x, float(f), nevals + len(x), BFGS, (g, hessian(grad, x, g)))


def _canonical(design: Design, theta: np.ndarray) -> np.ndarray:
    """θ with every template column whose diagonal is negative negated (same TTᵀ)."""
    theta = theta.copy()
    for t, sl in zip(design.terms, design.theta_slices, strict=True):
        T = template(theta[sl], t.nc)
        T[:, np.diag(T) < 0] *= -1.0
        theta[sl] = T[lower_triangle(t.nc)]
    return theta


def positive_definite(H: np.ndarray) -> np.ndarray:
    """H with its eigenvalues replaced by their absolute values (floored)."""
    w, V = np.linalg.eigh(H)
    w = np.maximum(np.abs(w), max(1e-8, 1e-6 * float(np.max(np.abs(w)))))
    return (V * w) @ V.T


def hessian(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, g: np.ndarray, delta: float = 1e-5
) -> np.ndarray:
    """Hessian by forward differences of an exact gradient (g = grad(x)), symmetrised;
    the step of x_j is delta·max(1, |x_j|), upwards (a θ on its bound stays feasible)."""
    H = np.empty((len(x), len(x)))
    for j in range(len(x)):
        xa = x.copy()
        h = delta * max(1.0, abs(float(x[j])))
        xa[j] += h
        H[:, j] = (grad(xa) - g) / h
    return (H + H.T) / 2


def _deriv12(
    dev: Deviance, x: np.ndarray, fx: float, delta: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
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


def check_convergence(
    dev: Deviance,
    theta: np.ndarray,
    fval: float,
    derivs: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[str]:
    """lme4's checkConv gradient and Hessian checks (the caller skips singular fits).

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

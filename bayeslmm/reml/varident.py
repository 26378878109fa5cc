"""A residual SD per group: nlme's ``lme(..., weights = varIdent(form = ~ 1 | g))``.

Var(ε_i) = (σ·δ_{g(i)})², δ = 1 for the reference (first) level.  At fixed ratios δ the
model is a weighted one with w_i = 1/δ_{g(i)}² (:meth:`Design.working`), whose profiled
criterion is lme4's over θ plus Σ log δ_i² (= −Σ log w_i).  So the fit is an outer
minimisation over log δ (NLopt BOBYQA) of the profiled-over-θ criterion (the package's
θ optimiser inside, warm-started from the last θ); σ and β are profiled out as in lme4.
The criterion is nlme's REML (or ML) −2 log-likelihood, so ``loglik`` equals nlme's.
"""

from __future__ import annotations

import nlopt
import numpy as np

from ..design import Design
from ..errors import BayesLMMError
from .fit import LmerFit, fit_at, make_deviance, warn_messages
from .optimize import blas_threads, optimize, start_theta

_LOG_BOUND = 12.0  # |log δ| at most e^12: ratios beyond that are not identifiable


class _Profile:
    """log δ (all levels but the first) -> the criterion profiled over θ, σ and β."""

    def __init__(self, design: Design, reml: bool):
        self.design, self.reml = design, reml
        self.theta = start_theta(design.working())
        self.evals = 0

    def ratio(self, log_ratio: np.ndarray) -> np.ndarray:
        return np.exp(np.concatenate([[0.0], log_ratio]))

    def __call__(self, log_ratio: np.ndarray) -> float:
        ratio = self.ratio(log_ratio)
        dev = make_deviance(self.design, self.reml, ratio)
        opt = optimize(dev, self.theta, self.design.theta_lower)
        self.evals += opt.nevals
        if np.isfinite(opt.fval):
            self.theta = opt.theta
        w = self.design.row_weights(ratio)
        assert w is not None
        return float(opt.fval - np.log(w).sum())


def start_log_ratio(design: Design) -> np.ndarray:
    """log of each group's residual SD from a least-squares fit of the fixed part,
    relative to the reference level's."""
    res = design.residual
    assert res is not None
    w = design.weights if design.weights is not None else np.ones(design.nobs)
    y = design.y if design.offset is None else design.y - design.offset
    beta = np.linalg.lstsq(design.X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    r2 = w * (y - design.X @ beta) ** 2
    var = np.bincount(res.codes, weights=r2, minlength=res.ngroups) / np.bincount(res.codes)
    sd = np.sqrt(np.maximum(var, 1e-12 * max(var.max(), 1e-300)))
    return np.log(sd[1:] / sd[0])


def fit_varident(design: Design, reml: bool = True) -> LmerFit:
    """Fit a model with a residual SD per level of ``design.residual`` (module doc)."""
    res = design.residual
    if res is None:
        raise BayesLMMError("fit_varident needs a design with residual groups (sigma=)")
    profile = _Profile(design, reml)
    x0 = np.clip(start_log_ratio(design), -_LOG_BOUND + 1, _LOG_BOUND - 1)
    with blas_threads(1):
        opt = nlopt.opt(nlopt.LN_BOBYQA, len(x0))
        opt.set_lower_bounds(np.full(len(x0), -_LOG_BOUND))
        opt.set_upper_bounds(np.full(len(x0), _LOG_BOUND))
        opt.set_xtol_abs(1e-8)
        opt.set_ftol_abs(1e-10)
        opt.set_xtol_rel(1e-7)
        opt.set_maxeval(2000)
        opt.set_initial_step(np.full(len(x0), 0.2))
        opt.set_min_objective(lambda x, grad: profile(x))
        try:
            best = opt.optimize(x0)
        except nlopt.RoundoffLimited:
            best = x0
        fit, messages = fit_at(design, reml, profile.ratio(best), profile.theta)
    fit.optinfo["n_evals"] = int(profile.evals)
    fit.optinfo["optimizer"] = f"{fit.optinfo['optimizer']} within NLopt LN_BOBYQA over log ratios"
    warn_messages(messages)
    return fit

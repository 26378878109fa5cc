"""A residual SD per group: nlme's ``lme(..., weights = varIdent(form = ~ 1 | g))``.

Var(ε_i) = (σ·δ_{g(i)})², δ = 1 for the reference (first) level.  At fixed ratios δ the
model is a weighted one with w_i = 1/δ_{g(i)}² (:meth:`Design.working`), whose profiled
criterion is lme4's over θ plus Σ log δ_i² (= −Σ log w_i).  So the fit is an outer
minimisation over log δ (NLopt BOBYQA) of the profiled-over-θ criterion (the package's
θ optimiser inside, warm-started from the last θ); σ and β are profiled out as in lme4.
The criterion is nlme's REML (or ML) −2 log-likelihood, so ``loglik`` equals nlme's.
"""

from __future__ import annotations

from collections.abc import Callable

import nlopt
import numpy as np

from ..design import Design
from .optimize import optimize, start_theta
from .pls import Deviance

#: how the fit builds a criterion at σ ratios: (design, reml, ratio) -> Deviance
MakeDeviance = Callable[[Design, bool, np.ndarray], Deviance]

_LOG_BOUND = 12.0  # |log δ| at most e^12: ratios beyond that are not identifiable


class _Profile:
    """log δ (all levels but the first) -> the criterion profiled over θ, σ and β."""

    def __init__(self, design: Design, reml: bool, make_deviance: MakeDeviance):
        self.design, self.reml, self.make_deviance = design, reml, make_deviance
        self.theta = start_theta(design.working())
        self.evals = 0

    def ratio(self, log_ratio: np.ndarray) -> np.ndarray:
        return np.exp(np.concatenate([[0.0], log_ratio]))

    def __call__(self, log_ratio: np.ndarray) -> float:
        ratio = self.ratio(log_ratio)
        dev = self.make_deviance(self.design, self.reml, ratio)
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


def best_ratios(
    design: Design, reml: bool, make_deviance: MakeDeviance
) -> tuple[np.ndarray, np.ndarray, int]:
    """The σ ratios minimising the criterion profiled over θ (module doc), the θ there
    (the start of the final fit) and the number of criterion evaluations."""
    profile = _Profile(design, reml, make_deviance)
    x0 = np.clip(start_log_ratio(design), -_LOG_BOUND + 1, _LOG_BOUND - 1)
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
    return profile.ratio(best), profile.theta, profile.evals

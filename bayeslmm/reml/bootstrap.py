"""Parametric bootstrap of a REML / ML fit: lme4's ``bootMer`` and boot's percentile interval.

Each replicate draws y* = Xβ̂ + ZΛ̂u* + ε*, u* ~ N(0, σ̂²I), ε* ~ N(0, σ̂²I) (``bootMer``
with ``use.u = FALSE``) and refits it (REML or ML as the fit) from θ̂, as lme4's
``refit``.  Only the y row of A = [Z X y]ᵀ[Z X y] depends on y, so a refit costs one
[Z X]ᵀy* and no other pass over the data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..progress import ProgressBar, interactive
from .dense import DenseDeviance
from .inference import Estimates, InferenceError, check_dense, targets
from .optimize import bfgs, blas_threads, hessian, optimize, positive_definite, start_theta
from .pls import varcorr_values


def bootstrap(
    fit: Estimates,
    nsim: int = 500,
    seed: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """``nsim`` parametric bootstrap refits of ``fit`` (module doc): one row per replicate,
    one column per parameter label (compare()'s), reproducible with ``seed`` (an int or a
    numpy Generator, which is advanced).  ``progress`` draws a bar on stderr (by default
    in a terminal or a notebook)."""
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise InferenceError(f"nsim must be a positive integer, got {nsim!r}")
    if not (seed is None or isinstance(seed, np.random.Generator)) and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer)
    ):
        raise InferenceError(f"seed must be an integer or a numpy Generator, got {seed!r}")
    design = fit.design
    check_dense(design, "the bootstrap")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    show = interactive() if progress is None else bool(progress)
    labels = [t.label for t in targets(design)]
    theta_hat = fit.theta.to_numpy()
    sigma, beta = fit.sigma, fit.fixef.to_numpy()
    dof = design.nobs - design.p if fit.reml else design.nobs
    Z = design.Z()
    K = sp.hstack([Z, sp.csc_matrix(design.X)], format="csc")  # [Z X]
    ZLam = Z @ fit.Lambda
    mean = design.X @ beta
    out = np.full((int(nsim), len(labels)), np.nan)
    with blas_threads(1), ProgressBar(int(nsim), "bootstrap", enabled=show) as bar:
        dev = DenseDeviance(design, reml=fit.reml)
        _, g0 = dev.value_and_grad(theta_hat)
        Hinv0 = np.linalg.inv(positive_definite(hessian(dev.gradient, theta_hat, g0)))
        for s in range(int(nsim)):
            u = rng.standard_normal(design.q)
            e = rng.standard_normal(design.nobs)
            y = mean + sigma * (ZLam @ u + e)
            dev.set_response(K.T @ y, float(y @ y))
            res = bfgs(dev.value_and_grad, theta_hat, Hinv0)
            theta = res.x
            if not res.converged:  # the package's optimiser, with its BOBYQA fallback
                theta = optimize(dev, start_theta(design), design.theta_lower).theta
            pc = dev.pieces(theta, grad=False, full=False)
            if pc is not None:
                sdcor = varcorr_values(design, theta, math.sqrt(pc.r2 / dof))[1]
                out[s] = np.concatenate([pc.beta, sdcor])
            bar.update(s + 1)
    return pd.DataFrame(out, columns=pd.Index(labels, name="parameter"))


def percentile(draws: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """boot's ``norm.inter``: the order statistic (R+1)·α of the R finite draws,
    interpolated on the normal quantile scale between its neighbours when (R+1)·α is not
    an integer; the extremes beyond them (``boot.ci(type = "perc")``)."""
    t = np.sort(draws[np.isfinite(draws)])
    R = len(t)
    if R == 0:
        return np.full(len(alpha), np.nan)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(len(alpha))
    from scipy import stats  # 0.4 s of import: loaded on first use

    for i in range(len(alpha)):
        if k[i] == 0:
            out[i] = t[0]
        elif k[i] >= R:
            out[i] = t[-1]
        elif k[i] == rk[i]:
            out[i] = t[k[i] - 1]
        else:
            q0 = stats.norm.ppf(k[i] / (R + 1))
            q1 = stats.norm.ppf((k[i] + 1) / (R + 1))
            w = (stats.norm.ppf(alpha[i]) - q0) / (q1 - q0)
            out[i] = t[k[i] - 1] + w * (t[k[i]] - t[k[i] - 1])
    return out

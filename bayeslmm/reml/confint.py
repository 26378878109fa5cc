"""Confidence intervals of every parameter: lme4 1.1-31's ``confint.merMod``.

* ``"profile"``: likelihood-ratio intervals from the ML profile (:mod:`.profile`);
* ``"wald"``: β̂ ± z·SE for the fixed effects, NaN for the variance parameters (as lme4);
* ``"boot"``: percentile intervals of a parametric bootstrap (:mod:`.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .bootstrap import bootstrap, percentile
from .inference import Estimates, InferenceError, check_dense, check_level, interval_table, select
from .optimize import blas_threads
from .profile import Profiler

Method = Literal["profile", "wald", "boot"]
METHODS: tuple[Method, ...] = ("profile", "wald", "boot")


def confint(
    fit: Estimates,
    method: str = "profile",
    level: float = 0.95,
    parm: str | Sequence[str] | None = None,
    *,
    nsim: int = 500,
    seed: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Intervals of the parameters ``parm`` (labels as compare() writes them; None: all)
    at ``level``: a DataFrame indexed by label with columns ``lower`` and ``upper``
    (module doc for the methods; ``nsim``, ``seed``, ``progress``: the bootstrap's)."""
    if method not in METHODS:
        raise InferenceError(f"method must be 'profile', 'wald' or 'boot', got {method!r}")
    level = check_level(level)
    chosen = select(fit.design, parm)
    from scipy import stats  # loaded on first use

    z = float(stats.norm.ppf((1 + level) / 2))
    if method == "wald":
        beta, se = fit.fixef.to_numpy(), fit.fixef_se.to_numpy()
        bounds = np.array(
            [
                (beta[t.index] - z * se[t.index], beta[t.index] + z * se[t.index])
                if t.kind == "fixef"
                else (np.nan, np.nan)
                for t in chosen
            ]
        )
    elif method == "profile":
        check_dense(fit.design, "the profile")
        with blas_threads(1):
            profiler = Profiler(fit.design, None if fit.reml else fit.theta.to_numpy())
            bounds = profiler.intervals(chosen, z)
    else:
        draws = bootstrap(fit, nsim=nsim, seed=seed, progress=progress)
        alpha = np.array([(1 - level) / 2, (1 + level) / 2])
        bounds = np.array([percentile(draws[t.label].to_numpy(), alpha) for t in chosen])
    return interval_table(chosen, bounds)

"""``Model``: one lme4 formula and one design, two estimation paths (REML and NUTS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .design import Design, build_design
from .errors import BayesLMMError, PriorError

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from .explain import Explanation
    from .posterior import Posterior
    from .reml import LmerFit
    from .simulate import Simulation


class Model:
    """A linear mixed model ``y = Xβ + Zb + ε`` specified in lme4 syntax.

    >>> model = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> model.fixef_names
    ['(Intercept)', 'Days']
    """

    def __init__(self, formula: str, data: pd.DataFrame, *, priors: dict[str, Any] | None = None):
        self.formula = formula
        if priors is not None and not isinstance(priors, Mapping):
            raise PriorError(
                "priors must be a dict of parameter name -> prior, e.g. "
                f"{{'sigma': 'HalfNormal(sigma=10)'}}; got {type(priors).__name__}"
            )
        self.design: Design = build_design(formula, data)
        self.prior_overrides: dict[str, Any] = dict(priors or {})

    # -- the spec ---------------------------------------------------------------------
    @property
    def fixef_names(self) -> list[str]:
        """Fixed-effect column names, exactly as lme4 names them."""
        return list(self.design.fixef_names)

    @property
    def group_factors(self) -> list[str]:
        """Grouping factors in lme4's order ("cask:batch" before "batch")."""
        return self.design.group_factors

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor."""
        return self.design.ngroups

    @property
    def theta_names(self) -> list[str]:
        """lme4's names of the relative covariance parameters θ."""
        return self.design.theta_names

    @property
    def nobs(self) -> int:
        """Number of observations used (after dropping rows with missing values)."""
        return self.design.nobs

    @property
    def n_dropped(self) -> int:
        """Number of rows dropped for missing values."""
        return self.design.n_dropped

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}: {v}" for k, v in self.ngroups.items())
        return f"Model({self.formula!r}; nobs={self.nobs}, groups: {groups})"

    # -- REML / ML --------------------------------------------------------------------
    def fit_reml(self, reml: bool = True) -> LmerFit:
        """Fit by REML (or ML with ``reml=False``) with lme4's profiled PLS algorithm."""
        from .reml import fit_lmer

        if not isinstance(reml, bool | np.bool_):
            raise BayesLMMError(f"reml must be True (REML) or False (ML), got {reml!r}")
        return fit_lmer(self.design, reml=bool(reml))

    # -- Bayesian (NUTS) ---------------------------------------------------------------
    @property
    def priors(self) -> pd.DataFrame:
        """Every parameter's prior (distribution, arguments, data-based rule), as brms's
        ``prior_summary``; overrides given to ``Model(..., priors=...)`` included."""
        from .bayes import prior_table, resolve_priors

        return prior_table(resolve_priors(self.design, self.prior_overrides))

    def pymc_model(
        self, priors: dict[str, Any] | None = None, parameterization: str = "auto"
    ) -> pm.Model:
        """A fresh PyMC model of this design (see :mod:`bayeslmm.bayes`) to inspect or extend."""
        from .bayes import build_pymc_model, choose_parameterization, resolve_priors

        resolved = resolve_priors(self.design, {**self.prior_overrides, **(priors or {})})
        param = choose_parameterization(self.design, parameterization)
        return build_pymc_model(self.design, resolved, param)

    def sample(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed: int | None = None,
        *,
        target_accept: float = 0.8,
        nuts_sampler: str = "pymc",
        cores: int | None = None,
        progressbar: bool = False,
        priors: dict[str, Any] | None = None,
        parameterization: str = "auto",
        **kwargs: Any,
    ) -> Posterior:
        """Draw from the posterior with NUTS; other ``pm.sample`` options pass through.

        Warns (:class:`~bayeslmm.errors.ConvergenceWarning`) on divergences,
        r_hat > 1.01 or ESS < 100 per chain.  The same ``seed`` gives identical draws.
        ``target_accept=0.8`` (PyMC's default) suffices with the data-chosen
        parameterisation (sleepstudy: 0 divergences); raise it when the warning says so.
        ``nuts_sampler``: "pymc" (default, no extra dependency), "nutpie" or "numpyro"
        when installed.  ``parameterization``: "auto" | "centered" | "noncentered".
        """
        from .bayes import sample_posterior

        return sample_posterior(
            self,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            target_accept=target_accept,
            nuts_sampler=nuts_sampler,
            cores=cores,
            progressbar=progressbar,
            priors=priors,
            parameterization=parameterization,
            **kwargs,
        )

    def sample_prior_predictive(
        self,
        draws: int = 500,
        seed: int | None = None,
        *,
        priors: dict[str, Any] | None = None,
        parameterization: str = "auto",
    ) -> xr.DataTree:
        """Draws of every parameter and of ``y`` from the prior (groups prior, prior_predictive)."""
        import pymc as pm

        from .bayes import _check_int

        _check_int("draws", draws, 1)
        return pm.sample_prior_predictive(
            draws=draws, model=self.pymc_model(priors, parameterization), random_seed=seed
        )

    # -- generative interpretation ----------------------------------------------------
    def simulate(
        self,
        source: Any = None,
        *,
        seed: int | np.random.Generator | None = None,
        nsim: int = 1,
        group_effects: Literal["new", "observed"] = "new",
        return_components: bool = False,
    ) -> pd.DataFrame | Simulation:
        """Simulate responses ``y = Xβ + Zb + ε`` on this design (see :mod:`bayeslmm.simulate`).

        ``source``: a REML fit, a Posterior (posterior predictive), a dict of parameter
        values, or None (prior predictive).  ``group_effects="new"`` draws new b ~ N(0, Σ)
        (lme4's ``simulate`` default); ``"observed"`` keeps the fitted groups' effects.
        """
        from .simulate import simulate

        return simulate(
            self,
            source,
            seed=seed,
            nsim=nsim,
            group_effects=group_effects,
            return_components=return_components,
        )

    def explain(self, fit: Any = None, *, priors: bool = False) -> Explanation:
        """The generative story of this model, filled in from a REML fit or a Posterior
        (whose priors it lists); ``priors=True`` lists this model's priors."""
        from .explain import explain

        return explain(self, fit, priors=priors)


def lmer(formula: str, data: pd.DataFrame, reml: bool = True) -> LmerFit:
    """One-line shortcut: ``Model(formula, data).fit_reml(reml)``, like R's ``lmer``."""
    return Model(formula, data).fit_reml(reml=reml)

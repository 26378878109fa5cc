"""``Model``: one lme4 formula and one design, two estimation paths (REML and NUTS).

The facade: it builds the :class:`~bayeslmm.design.Design`, keeps the prior overrides,
and hands the design (with resolved priors) to the layers below: :mod:`bayeslmm.reml`,
:mod:`bayeslmm.bayes`, :mod:`bayeslmm.simulate` and :mod:`bayeslmm.explain`.  PyMC is
imported only by the methods that need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .bayes.priors import Prior, check_overrides, prior_table, resolve_priors
from .design import Design, build_design
from .errors import BayesLMMError
from .reml.fit import LmerFit, fit_lmer

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from .bayes.posterior import Posterior
    from .explain import Explanation
    from .simulate import Simulation


class Model:
    """A linear mixed model ``y = Xβ + Zb + ε`` specified in lme4 syntax.

    ``priors`` overrides default priors by parameter name (:mod:`bayeslmm.bayes.priors`);
    a name that is not a parameter of the model raises :class:`~bayeslmm.PriorError` here.
    ``weights`` (lme4's precision weights: Var ε_i = σ²/w_i) and ``offset`` (added to the
    linear predictor, as the formula's ``offset(...)``): a column name or one value per
    row.  ``sigma="~ 1 | g"``: one residual SD per level of g (nlme's ``varIdent``; the
    REML fit's ``sigma`` is the first level's, ``sigma_ratio`` the others' ratios).

    >>> model = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> model.fixef_names
    ['(Intercept)', 'Days']
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        priors: dict[str, Any] | None = None,
        weights: Any = None,
        offset: Any = None,
        sigma: str | None = None,
    ):
        self.formula = formula
        self.design: Design = build_design(
            formula, data, weights=weights, offset=offset, sigma=sigma
        )
        self.prior_overrides: dict[str, Any] = check_overrides(self.design, priors)

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
        if not isinstance(reml, bool | np.bool_):
            raise BayesLMMError(f"reml must be True (REML) or False (ML), got {reml!r}")
        return fit_lmer(self.design, reml=bool(reml))

    # -- Bayesian (NUTS) ---------------------------------------------------------------
    def _bayes_design(self, sampler: str | None = None) -> Design:
        """The design for the Bayesian path run by ``sampler`` (resolved).  Weights and
        offsets enter the compiled marginal sampler's sufficient statistics; the PyMC
        models do not take them, nor does any sampler take residual groups yet: a
        BayesLMMError says so."""
        d = self.design
        if d.residual is not None:
            raise BayesLMMError(
                "sigma= residual groups are fitted by fit_reml(); the Bayesian path does "
                "not take them yet"
            )
        if not d.is_plain and sampler != "bayeslmm":
            raise BayesLMMError(
                "weights and offsets are sampled by the package's marginal sampler "
                "(parameterization='auto' or 'marginal', nuts_sampler=None or 'bayeslmm', "
                "Normal priors on β or the defaults); this model would go to PyMC, which "
                "does not take them"
            )
        return d

    def _priors(self, priors: dict[str, Any] | None = None) -> dict[str, Prior]:
        """The model's priors with its overrides, then ``priors``, applied."""
        return resolve_priors(self.design, {**self.prior_overrides, **(priors or {})})

    @property
    def priors(self) -> pd.DataFrame:
        """Every parameter's prior (distribution, arguments, data-based rule), as brms's
        ``prior_summary``; overrides given to ``Model(..., priors=...)`` included."""
        return prior_table(self._priors())

    def pymc_model(
        self, priors: dict[str, Any] | None = None, parameterization: str = "auto"
    ) -> pm.Model:
        """A fresh PyMC model of this design (see :mod:`bayeslmm.bayes.model`) to inspect or
        extend: by default the marginal one (b integrated out), with its LKJ prior and
        named dims; ``parameterization="centered"``/``"noncentered"`` give the latent one."""
        from .bayes.model import build_pymc_model
        from .bayes.parameterization import choose_parameterization

        resolved = self._priors(priors)
        return build_pymc_model(
            self._bayes_design(), resolved, choose_parameterization(self.design, parameterization)
        )

    def sample(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed: int | None = None,
        *,
        target_accept: float = 0.95,
        max_treedepth: int = 10,
        nuts_sampler: str | None = None,
        cores: int | None = None,
        progressbar: bool | None = None,
        save_warmup: bool = False,
        log_likelihood: bool = False,
        priors: dict[str, Any] | None = None,
        parameterization: str = "auto",
        **extra: Any,
    ) -> Posterior:
        """Draw from the posterior with NUTS.

        ``parameterization="auto"`` integrates the random effects out (``"marginal"``:
        NUTS samples Σ and σ, and β unless its priors are Normal (the defaults integrate it
        out too), from ``y ~ N(Xβ, σ²I + ZΣZᵀ)``; then every draw gets b (and β) from its
        exact conditional), except for designs where that costs more than sampling b (it
        then says so and centres or non-centres each term from the data); also
        ``"centered"`` and ``"noncentered"``.  ``target_accept`` 0.95: on the four
        hardest models of the 20-model battery (few groups, SDs near 0), 0.8 left a
        divergence in 7 of 48 runs and 0.95 in none, for about 30 % more gradient
        evaluations.  ``nuts_sampler``: by default the package's compiled NUTS for the
        marginal form, else PyMC's ("pymc"; "nutpie", "numpyro" when installed; ``extra``
        keyword arguments pass through to ``pm.sample``).  ``progressbar``: by default
        shown in a terminal or a notebook.  ``save_warmup`` keeps the warm-up draws and
        statistics (groups ``warmup_posterior``, ``warmup_sample_stats``);
        ``log_likelihood`` stores the pointwise log-likelihood (``az.loo(post.idata)``).
        Warns (:class:`~bayeslmm.errors.ConvergenceWarning`) on divergences, tree-depth
        saturation, E-BFMI < 0.3, r_hat > 1.01 or ESS < 100 per chain.  The same ``seed``
        gives identical draws whatever ``cores`` is (:class:`~bayeslmm.bayes.settings.
        SamplerSettings` holds and checks every setting).
        """
        from .bayes.parameterization import choose_parameterization
        from .bayes.sampling import resolve_sampler, sample_posterior
        from .bayes.settings import SamplerSettings
        from .progress import interactive

        settings = SamplerSettings(
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            target_accept=target_accept,
            max_treedepth=max_treedepth,
            nuts_sampler=nuts_sampler,
            cores=cores,
            progressbar=interactive() if progressbar is None else bool(progressbar),
            save_warmup=save_warmup,
            log_likelihood=log_likelihood,
            extra=extra,
        )
        resolved = self._priors(priors)
        param = choose_parameterization(self.design, parameterization)
        sampler = resolve_sampler(settings.nuts_sampler, param, resolved)
        return sample_posterior(self._bayes_design(sampler), resolved, param, settings)

    def sample_prior_predictive(
        self,
        draws: int = 500,
        seed: int | None = None,
        *,
        priors: dict[str, Any] | None = None,
        parameterization: str = "auto",
    ) -> xr.DataTree:
        """Draws of every parameter and of ``y`` from the prior (groups prior, prior_predictive)."""
        from .bayes.parameterization import choose_parameterization
        from .bayes.sampling import sample_prior_predictive

        resolved = self._priors(priors)
        param = choose_parameterization(self.design, parameterization)
        return sample_prior_predictive(self._bayes_design(), resolved, param, draws, seed)

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
        values, or None (prior predictive, with this model's priors).
        ``group_effects="new"`` draws new b ~ N(0, Σ) (lme4's ``simulate`` default);
        ``"observed"`` keeps the fitted groups' effects.
        """
        from .simulate import simulate

        return simulate(
            self.design,
            source,
            priors=self._priors() if source is None else None,
            seed=seed,
            nsim=nsim,
            group_effects=group_effects,
            return_components=return_components,
        )

    def explain(self, fit: Any = None, *, priors: bool = False) -> Explanation:
        """The generative story of this model, filled in from a REML fit or a Posterior
        (whose priors it lists); ``priors=True`` lists this model's priors."""
        from .explain import explain

        return explain(self.design, fit, priors=self._priors() if priors else None)


def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    *,
    weights: Any = None,
    offset: Any = None,
    sigma: str | None = None,
) -> LmerFit:
    """One-line shortcut: ``Model(formula, data, ...).fit_reml(reml)``, like R's ``lmer``."""
    return Model(formula, data, weights=weights, offset=offset, sigma=sigma).fit_reml(reml=reml)

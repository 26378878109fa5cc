"""Simulate new responses from the model: ``y = Xβ + Σ_t Z_t b_t + ε``.

For each random-effect term ``t`` (grouping factor with ℓ_t levels, k_t columns ``X_t``)::

    Σ_t = diag(τ_t) Ω_t diag(τ_t)                   covariance of one level's k_t effects
    b_t[j] ~ N(0, Σ_t), j = 1..ℓ_t, independently   group effects (lme4's ranef)
    μ_i = x_iᵀβ + Σ_t X_t[i] · b_t[codes_t[i]]      linear predictor
    y_i = μ_i + ε_i,  ε_i ~ N(0, σ²)                response

Parameter sources (:mod:`bayeslmm.params`): a REML fit (its estimates), a Posterior (one
simulated data set per posterior draw: the posterior predictive distribution; the ``nsim``
draws are picked at random without replacement, so ``nsim = chains x draws`` uses every
draw once), a dict of parameter values, or ``None``: one data set per draw from the
priors (the prior predictive).

``group_effects="new"`` (default) draws fresh effects ``b_t ~ N(0, Σ_t)`` for every
simulation, like lme4's ``simulate(fit)`` (``re.form = NA``); ``"observed"`` keeps the
observed groups' effects (the REML conditional modes, i.e. lme4's ``use.u = TRUE``; for a
posterior, each draw's sampled ``b``, as brms's ``posterior_predict`` does by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .design import Design
from .errors import ParameterError
from .params import ParameterSet, parameters_of

if TYPE_CHECKING:
    from .bayes.priors import Prior

GroupEffects = Literal["new", "observed"]


@dataclass(frozen=True, repr=False)
class Simulation:
    """Every intermediate quantity of a simulation (``return_components=True``).

    Simulations are numbered ``sim = 0 .. nsim-1``; ``n`` is the number of observations.

    Attributes
    ----------
    data:   the simulated data, exactly what ``simulate`` returns without components.
    fixef:  β per simulation, DataFrame (nsim x p), columns ``fixef_names``.
    sigma:  σ per simulation, Series (nsim).
    Sigma:  term group -> Σ_t = diag(τ) Ω diag(τ), DataFrame with rows (sim, column) and
            the term's columns (as ``varcorr``'s ``grp``).
    ranef:  grouping factor -> the effects b used, DataFrame with rows (sim, level) and
            the factor's columns side by side (as lme4's ``ranef``).
    fixed:  the fixed part Xβ, array (nsim, n).
    mu:     linear predictor μ = Xβ + Σ_t Z_t b_t, array (nsim, n).
    noise:  ε = y − μ, array (nsim, n).
    y:      simulated responses μ + ε, array (nsim, n).
    """

    data: pd.DataFrame
    fixef: pd.DataFrame
    sigma: pd.Series
    Sigma: dict[str, pd.DataFrame]
    ranef: dict[str, pd.DataFrame]
    fixed: np.ndarray
    mu: np.ndarray
    noise: np.ndarray
    y: np.ndarray

    def __repr__(self) -> str:
        nsim, n = self.y.shape
        return (
            f"Simulation(nsim={nsim}, nobs={n}; data, fixef, sigma, "
            f"Sigma[{', '.join(self.Sigma)}], ranef[{', '.join(self.ranef)}], "
            "fixed, mu, noise, y; .table(sim))"
        )

    def table(self, sim: int = 0) -> pd.DataFrame:
        """One simulation step by step: the model frame with columns ``fixed`` (Xβ),
        ``mu`` and ``noise`` added; the response column holds ``mu + noise``."""
        if not 0 <= sim < len(self.y):
            raise ParameterError(f"sim must be in 0..{len(self.y) - 1}, got {sim}")
        data = self.data
        frame = data[data["sim"] == sim].drop(columns="sim") if "sim" in data else data
        return frame.reset_index(drop=True).assign(
            fixed=self.fixed[sim], mu=self.mu[sim], noise=self.noise[sim]
        )


def simulate(
    design: Design,
    source: Any = None,
    *,
    priors: Mapping[str, Prior] | None = None,
    seed: int | np.random.Generator | None = None,
    nsim: int = 1,
    group_effects: GroupEffects = "new",
    return_components: bool = False,
) -> pd.DataFrame | Simulation:
    """Draw ``nsim`` new response vectors on ``design`` (see the module docstring).

    ``priors`` (resolved; the defaults when None) are the prior that ``source=None``
    draws from.  Returns the model frame (``design.frame``) with the response column
    replaced by simulated values; with ``nsim > 1`` a long frame of ``nsim`` stacked copies
    with a leading ``sim`` column (0..nsim-1).  A transformed response (``log(Reaction)``)
    is written to a column named by its expression, next to the untouched raw column.
    With ``return_components=True`` a :class:`Simulation` holding that frame and every
    intermediate quantity.  The same ``seed`` gives identical output.
    """
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise ParameterError(f"nsim must be a positive integer, got {nsim!r}")
    if group_effects not in ("new", "observed"):
        raise ParameterError(f"group_effects must be 'new' or 'observed', got {group_effects!r}")
    if not (seed is None or isinstance(seed, np.random.Generator) or _is_int(seed)):
        raise ParameterError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    source, ratio = _sigma_ratio(design, source)
    params = _parameters(design, source, priors, int(nsim), group_effects == "observed", rng)
    return _draw(design, params, rng, return_components, design.residual_scale(ratio))


def _sigma_ratio(design: Design, source: Any) -> tuple[Any, np.ndarray | None]:
    """The residual groups' σ ratios (from a REML fit's ``sigma_ratio``, or a dict's
    ``"sigma_ratio"`` by level) and the source without them; None without groups."""
    res = design.residual
    given = None
    if isinstance(source, Mapping) and "sigma_ratio" in source:
        source = dict(source)
        given = source.pop("sigma_ratio")
    elif getattr(source, "sigma_ratio", None) is not None:
        given = source.sigma_ratio
    if res is None:
        if given is not None:
            raise ParameterError("sigma_ratio is given but the model has one residual SD")
        return source, None
    if given is None:
        raise ParameterError(
            f"the model has a residual SD per level of '{res.factor}': simulate from its REML "
            "fit, or give a dict with 'sigma_ratio' (level -> ratio to the first level's σ)"
        )
    ratio = pd.Series(given, dtype=float).reindex(list(res.levels))
    if ratio.isna().any() or (ratio <= 0).any():
        raise ParameterError(
            f"sigma_ratio needs a positive ratio for every level of '{res.factor}' "
            f"({list(res.levels)}), got {dict(given)}"
        )
    return source, ratio.to_numpy()


def _parameters(
    design: Design,
    source: Any,
    priors: Mapping[str, Prior] | None,
    nsim: int,
    observed: bool,
    rng: np.random.Generator,
) -> ParameterSet:
    """nsim parameter sets from ``source``."""
    if source is None:
        if observed:
            raise ParameterError(
                "the prior has no observed groups' effects: use group_effects='new' for the "
                "prior predictive distribution"
            )
        if priors is None:
            from .bayes.priors import resolve_priors

            priors = resolve_priors(design)
        return ParameterSet.from_prior(design, priors, nsim, rng)
    params, kind = parameters_of(design, source, ranef=observed)
    if kind != "posterior":
        return params.repeat(nsim)
    if nsim > params.n:
        raise ParameterError(
            f"nsim = {nsim} exceeds the {params.n} posterior draws (one simulation per draw)"
        )
    return params.take(rng.choice(params.n, size=nsim, replace=False))


# --------------------------------------------------------------------------------------
# The generative step
# --------------------------------------------------------------------------------------


def _draw(
    design: Design,
    params: ParameterSet,
    rng: np.random.Generator,
    return_components: bool,
    scale: np.ndarray | None = None,
) -> pd.DataFrame | Simulation:
    """One simulation per parameter set: the observed effects where the set has them,
    else new ones; the offset in the mean, each row's residual SD σ·``scale`` (weights,
    residual groups)."""
    nsim, n = params.n, design.nobs
    fixed = params.fixef @ design.X.T
    mu = fixed.copy() if design.offset is None else fixed + design.offset
    effects = []
    for i, term in enumerate(design.terms):
        if params.ranef is not None:
            b = params.ranef[i]
        else:
            root = _sd_corr_factor(params.sd[i], params.corr[i])  # (nsim, k, k)
            z = rng.standard_normal((nsim, term.nl, term.nc))
            b = np.einsum("sjk,smk->sjm", z, root)
        effects.append(b)
        mu = mu + np.einsum("sik,ik->si", b[:, term.codes, :], term.X)
    noise = params.sigma[:, None] * rng.standard_normal((nsim, n))
    if scale is not None:
        noise *= scale
    y = mu + noise
    data = _frame(design, y)
    if not return_components:
        return data
    sims = pd.RangeIndex(nsim, name="sim")
    Sigma = {}
    for i, term in enumerate(design.terms):
        cov = params.sd[i][:, :, None] * params.corr[i] * params.sd[i][:, None, :]
        rows = pd.MultiIndex.from_product([sims, term.cnames], names=["sim", "term"])
        Sigma[term.group] = pd.DataFrame(cov.reshape(-1, term.nc), rows, list(term.cnames))
    ranef = {}
    for factor in design.group_factors:
        idx = [i for i, t in enumerate(design.terms) if t.factor == factor]
        levels = design.terms[idx[0]].levels
        rows = pd.MultiIndex.from_product([sims, levels], names=["sim", factor])
        values = np.concatenate([effects[i] for i in idx], axis=2).reshape(nsim * len(levels), -1)
        ranef[factor] = pd.DataFrame(values, rows, design.factor_columns(factor))
    return Simulation(
        data=data,
        fixef=pd.DataFrame(params.fixef, sims, list(design.fixef_names)),
        sigma=pd.Series(params.sigma, sims, name="sigma"),
        Sigma=Sigma,
        ranef=ranef,
        fixed=fixed,
        mu=mu,
        noise=noise,
        y=y,
    )


def _sd_corr_factor(sd: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """A with A Aᵀ = diag(τ) Ω diag(τ), per simulation: diag(τ) times a square root of Ω.

    Ω's Cholesky factor when Ω is positive definite, else (|ρ| = 1, as on a singular
    REML fit) its symmetric square root from the eigendecomposition.
    """
    out = np.empty_like(corr)
    for s in range(len(corr)):
        try:
            root = np.linalg.cholesky(corr[s])
        except np.linalg.LinAlgError:
            lam, vec = np.linalg.eigh(corr[s])
            root = vec * np.sqrt(np.clip(lam, 0.0, None))
        out[s] = sd[s][:, None] * root
    return out


def _frame(design: Design, y: np.ndarray) -> pd.DataFrame:
    """The model frame with the response replaced; nsim > 1 stacks copies with ``sim``."""
    nsim = len(y)
    frames = []
    for s in range(nsim):
        frame = design.frame.copy()
        frame[design.response] = y[s]
        if nsim > 1:
            frame.insert(0, "sim", s)
        frames.append(frame)
    return frames[0] if nsim == 1 else pd.concat(frames, ignore_index=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 0)

"""Simulate new responses from the model: ``y = Xβ + Σ_t Z_t b_t + ε``.

For each random-effect term ``t`` (grouping factor with ℓ_t levels, k_t columns ``X_t``)::

    Σ_t = diag(τ_t) Ω_t diag(τ_t)                   covariance of one level's k_t effects
    b_t[j] ~ N(0, Σ_t), j = 1..ℓ_t, independently   group effects (lme4's ranef)
    μ_i = x_iᵀβ + Σ_t X_t[i] · b_t[codes_t[i]]      linear predictor
    y_i = μ_i + ε_i,  ε_i ~ N(0, σ²)                response

Parameter sources (``simulate(model, source)``):

* a REML fit (:class:`~bayeslmm.reml.LmerFit`): its ``fixef``, ``varcorr`` and ``ranef``;
* a :class:`~bayeslmm.posterior.Posterior`: one simulated data set per posterior draw
  (the posterior predictive distribution); the ``nsim`` draws are picked at random
  without replacement, so ``nsim = chains x draws`` uses every draw once;
* ``None``: one data set per draw from the model's own PyMC prior (the prior predictive);
* a dict of parameter values in the shared vocabulary::

      {
          "fixef": {"(Intercept)": 251.4, "Days": 10.47},  # or a Series, or a sequence
                                                           # in fixef_names order
          "sigma": 25.59,                                  # residual SD
          "sd":   {"Subject": {"(Intercept)": 24.74, "Days": 5.922}},
          "corr": {"Subject": 0.066},
          "ranef": {"Subject": DataFrame},                 # only for group_effects="observed"
      }

  ``sd`` is keyed by a term group (``ReTerm.group``: "Subject", "Subject.1", "cask:batch")
  or by a grouping factor, which covers all of its terms (so ``(Days || Subject)`` takes
  the same ``sd`` as ``(Days | Subject)``).  Each value maps column name -> SD, is a
  number for a one-column term, or is a sequence in column order.  ``corr`` (optional,
  default Ω = I) is keyed the same way and names one correlated term: a number when
  k = 2, a k x k matrix, or ``{("(Intercept)", "Days"): 0.066}``.  Instead of ``sd``,
  ``corr`` (and ``sigma``) a ``"varcorr"`` DataFrame laid out as ``fit.varcorr`` (columns
  ``grp``, ``var1``, ``var2``, ``sdcor``; the ``Residual`` row gives σ) may be given.
  ``ranef`` maps each grouping factor to a levels x columns DataFrame (lme4's ``ranef``).

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

from .design import Design, ReTerm
from .errors import ParameterError

if TYPE_CHECKING:
    from .model import Model
    from .posterior import Posterior

GroupEffects = Literal["new", "observed"]

_PARAMETER_KEYS = ("fixef", "sigma", "sd", "corr", "varcorr", "ranef")


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


@dataclass(frozen=True)
class _Params:
    """Parameter sets, one per simulation: arrays with a leading nsim axis."""

    fixef: np.ndarray  # (nsim, p)
    sigma: np.ndarray  # (nsim,)
    sd: tuple[np.ndarray, ...]  # per term (nsim, k)
    corr: tuple[np.ndarray, ...]  # per term (nsim, k, k)
    ranef: tuple[np.ndarray, ...] | None  # per term (nsim, ℓ, k)


def simulate(
    model: Model,
    source: Any = None,
    *,
    seed: int | np.random.Generator | None = None,
    nsim: int = 1,
    group_effects: GroupEffects = "new",
    return_components: bool = False,
) -> pd.DataFrame | Simulation:
    """Draw ``nsim`` new response vectors from the model (see the module docstring).

    Returns the model frame (``model.design.frame``) with the response column replaced
    by simulated values; with ``nsim > 1`` a long frame of ``nsim`` stacked copies with a
    leading ``sim`` column (0..nsim-1).  A transformed response (``log(Reaction)``) is
    written to a column named by its expression, next to the untouched raw column.  With
    ``return_components=True`` a :class:`Simulation` holding that frame and every
    intermediate quantity.  The same ``seed`` gives identical output.
    """
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise ParameterError(f"nsim must be a positive integer, got {nsim!r}")
    if group_effects not in ("new", "observed"):
        raise ParameterError(f"group_effects must be 'new' or 'observed', got {group_effects!r}")
    if not (seed is None or isinstance(seed, np.random.Generator) or _is_int(seed)):
        raise ParameterError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    params = _parameters(model, source, int(nsim), group_effects, rng)
    return _draw(model.design, params, group_effects, rng, return_components)


# --------------------------------------------------------------------------------------
# The generative step
# --------------------------------------------------------------------------------------


def _draw(
    design: Design,
    params: _Params,
    group_effects: GroupEffects,
    rng: np.random.Generator,
    return_components: bool,
) -> pd.DataFrame | Simulation:
    nsim, n = len(params.sigma), design.nobs
    fixed = params.fixef @ design.X.T
    mu = fixed.copy()
    effects = []
    for i, term in enumerate(design.terms):
        if group_effects == "observed":
            b = params.ranef[i]
        else:
            factor = _sd_corr_factor(params.sd[i], params.corr[i])  # (nsim, k, k)
            z = rng.standard_normal((nsim, term.nl, term.nc))
            b = np.einsum("sjk,smk->sjm", z, factor)
        effects.append(b)
        mu = mu + np.einsum("sik,ik->si", b[:, term.codes, :], term.X)
    noise = params.sigma[:, None] * rng.standard_normal((nsim, n))
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


# --------------------------------------------------------------------------------------
# Parameters from each kind of source
# --------------------------------------------------------------------------------------


def _parameters(
    model: Model, source: Any, nsim: int, group_effects: GroupEffects, rng: np.random.Generator
) -> _Params:
    design = model.design
    if isinstance(source, Mapping):
        return _repeat(_dict_parameters(design, source, group_effects, "parameters"), nsim)
    if source is None:
        if group_effects == "observed":
            raise ParameterError(
                "the prior has no observed groups' effects: use group_effects='new' for the "
                "prior predictive distribution"
            )
        return _prior_parameters(model, nsim, rng)
    kind = _fit_kind(design, source, "source")
    if kind == "posterior":
        return _posterior_parameters(design, source, nsim, group_effects, rng)
    values = {"fixef": source.fixef, "varcorr": source.varcorr, "ranef": source.ranef}
    return _repeat(_dict_parameters(design, values, group_effects, "the REML fit"), nsim)


def _point_values(design: Design, fit: Any) -> tuple[_Params, str]:
    """One parameter set describing ``fit``: given values, REML estimates or posterior means."""
    if isinstance(fit, Mapping):
        return _dict_parameters(design, fit, "new", "parameters"), "given parameter values"
    if _fit_kind(design, fit, "fit") == "reml":
        values = {"fixef": fit.fixef, "varcorr": fit.varcorr}
        return _dict_parameters(design, values, "new", "the REML fit"), "REML estimates"
    draws = _posterior_draws(design, fit)
    means = _Params(
        fixef=draws.fixef.mean(axis=0),
        sigma=draws.sigma.mean(axis=0),
        sd=tuple(a.mean(axis=0) for a in draws.sd),
        corr=tuple(a.mean(axis=0) for a in draws.corr),
        ranef=tuple(a.mean(axis=0) for a in draws.ranef),
    )
    return means, "posterior means"


def _fit_kind(design: Design, fit: Any, name: str) -> Literal["reml", "posterior"]:
    """ "reml" or "posterior" for a result of a model with this design's structure."""
    from .posterior import Posterior
    from .reml import LmerFit

    if isinstance(fit, LmerFit):
        kind, what = "reml", "the REML fit"
    elif isinstance(fit, Posterior):
        kind, what = "posterior", "the Posterior"
    else:
        raise ParameterError(
            f"{name} must be a REML fit, a Posterior, a dict of parameter values"
            + (" or None (the prior)" if name == "source" else "")
            + f", got {type(fit).__name__}"
        )

    if design.differences(fit.design, same_data=False):
        raise ParameterError(
            f"{what} is of another model ({fit.design.formula!r}, fixed effects "
            f"{list(fit.design.fixef_names)}, groups {[t.group for t in fit.design.terms]}) "
            f"than this one ({design.formula!r}, {list(design.fixef_names)}, "
            f"{[t.group for t in design.terms]})"
        )
    return kind


def _prior_parameters(model: Model, nsim: int, rng: np.random.Generator) -> _Params:
    """nsim parameter sets drawn from the priors of the model's own PyMC model."""
    import pymc as pm

    design = model.design
    pymc_model = model.pymc_model()
    names = ["fixef", "sigma"] + [f"sd_{t.group}" for t in design.terms]
    names += [f"corr_{t.group}" for t in design.terms if t.nc > 1]
    shapes = {"fixef": (design.p,), "sigma": ()}
    for t in design.terms:
        shapes[f"sd_{t.group}"], shapes[f"corr_{t.group}"] = (t.nc,), (t.nc, t.nc)
    draws = pm.draw(
        [pymc_model[v] for v in names], draws=nsim, random_seed=int(rng.integers(2**32))
    )
    drawn = {v: np.asarray(a).reshape(nsim, *shapes[v]) for v, a in zip(names, draws)}
    return _Params(
        fixef=drawn["fixef"],
        sigma=drawn["sigma"],
        sd=tuple(drawn[f"sd_{t.group}"] for t in design.terms),
        corr=tuple(
            drawn[f"corr_{t.group}"] if t.nc > 1 else np.ones((nsim, 1, 1)) for t in design.terms
        ),
        ranef=None,
    )


def _posterior_draws(design: Design, posterior: Posterior) -> _Params:
    """Every posterior draw (chains stacked) as a parameter set, checked against the design."""
    ds = posterior.draws
    fixef = _draw_array(ds, "fixef", [list(design.fixef_names)])
    sd, corr, ranef = [], [], []
    for t in design.terms:
        sd.append(_draw_array(ds, f"sd_{t.group}", [list(t.cnames)]))
        if t.nc > 1:
            corr.append(_draw_array(ds, f"corr_{t.group}", [list(t.cnames)] * 2))
        else:
            corr.append(np.ones((len(fixef), 1, 1)))
        ranef.append(_draw_array(ds, f"ranef_{t.group}", [list(t.levels), list(t.cnames)]))
    return _Params(fixef, _draw_array(ds, "sigma", []), tuple(sd), tuple(corr), tuple(ranef))


def _draw_array(ds: Any, name: str, axes: list[list[str]]) -> np.ndarray:
    """Draws of ``name`` as (chain·draw, *axes); each axis is checked and ordered by labels."""
    if name not in ds:
        raise ParameterError(
            f"the Posterior has no variable {name!r}: it is not a posterior of this model"
        )
    da = ds[name].transpose("chain", "draw", ...)
    dims = da.dims[2:]
    for dim, labels in zip(dims, axes):
        have = [str(v) for v in da.coords[dim].values] if dim in da.coords else []
        if sorted(have) != sorted(labels):
            raise ParameterError(
                f"the Posterior's {name!r} has {dim} {have}, the model has {labels}: "
                "it is not a posterior of this model"
            )
        da = da.assign_coords({dim: have}).sel({dim: labels})
    if len(dims) != len(axes):
        raise ParameterError(
            f"the Posterior's {name!r} has dims {dims}, expected {len(axes)} besides chain, draw"
        )
    values = da.to_numpy()
    return values.reshape(-1, *values.shape[2:])


def _posterior_parameters(
    design: Design,
    posterior: Posterior,
    nsim: int,
    group_effects: GroupEffects,
    rng: np.random.Generator,
) -> _Params:
    """nsim distinct posterior draws, picked at random (seeded)."""
    draws = _posterior_draws(design, posterior)
    total = len(draws.sigma)
    if nsim > total:
        raise ParameterError(
            f"nsim = {nsim} exceeds the {total} posterior draws (one simulation per draw)"
        )
    pick = rng.choice(total, size=nsim, replace=False)
    return _Params(
        fixef=draws.fixef[pick],
        sigma=draws.sigma[pick],
        sd=tuple(a[pick] for a in draws.sd),
        corr=tuple(a[pick] for a in draws.corr),
        ranef=tuple(a[pick] for a in draws.ranef) if group_effects == "observed" else None,
    )


def _repeat(params: _Params, nsim: int) -> _Params:
    """One parameter set used for all nsim simulations."""

    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[None], nsim, axis=0)

    return _Params(
        fixef=rep(params.fixef),
        sigma=rep(params.sigma),
        sd=tuple(rep(a) for a in params.sd),
        corr=tuple(rep(a) for a in params.corr),
        ranef=None if params.ranef is None else tuple(rep(a) for a in params.ranef),
    )


def _dict_parameters(
    design: Design, values: Mapping, group_effects: GroupEffects, what: str
) -> _Params:
    """One parameter set from a dict in the shared vocabulary (unbatched arrays)."""
    unknown = [k for k in values if k not in _PARAMETER_KEYS]
    if unknown:
        raise ParameterError(
            f"unknown {what} key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; allowed: {', '.join(_PARAMETER_KEYS)}"
        )
    if "fixef" not in values:
        raise ParameterError(f"{what} lack 'fixef' (the fixed effects {list(design.fixef_names)})")
    fixef = _fixef(design, values["fixef"], what)

    if "varcorr" in values:
        clash = [k for k in ("sd", "corr") if k in values]
        if clash:
            raise ParameterError(
                f"{what} give both 'varcorr' and {', '.join(repr(k) for k in clash)}: "
                "give the variance components one way"
            )
        sd, corr, residual = _from_varcorr(design, values["varcorr"], what)
    else:
        sd = _sds(design, values.get("sd", {}), what)
        corr = _corrs(design, values.get("corr", {}), what)
        residual = None

    sigma = values.get("sigma", residual)
    if sigma is None:
        raise ParameterError(f"{what} lack 'sigma' (the residual standard deviation)")
    sigma = _nonnegative(sigma, f"{what}: sigma")
    if residual is not None and not np.isclose(sigma, residual):
        raise ParameterError(
            f"{what}: 'sigma' = {sigma} disagrees with the varcorr Residual row ({residual})"
        )

    ranef = None
    if group_effects == "observed":
        if "ranef" not in values:
            raise ParameterError(
                f"group_effects='observed' needs the observed groups' effects: {what} lack "
                "'ranef' (grouping factor -> DataFrame of levels x columns)"
            )
        ranef = _ranef(design, values["ranef"], what)
    return _Params(fixef, np.asarray(sigma), sd, corr, ranef)


def _fixef(design: Design, value: Any, what: str) -> np.ndarray:
    names = list(design.fixef_names)
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if isinstance(value, Mapping):
        given = [str(k) for k in value]
        missing = [k for k in names if k not in given]
        extra = [k for k in given if k not in names]
        if missing or extra:
            raise ParameterError(
                f"{what}: fixef names {given} do not match the model's {names}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unknown {extra}; a fit of another model?)" if extra else "")
            )
        lookup = {str(k): v for k, v in value.items()}
        value = [lookup[k] for k in names]
    arr = _finite(value, f"{what}: fixef")
    if arr.shape != (len(names),):
        raise ParameterError(
            f"{what}: fixef has shape {arr.shape}, the model has {len(names)} fixed effects {names}"
        )
    return arr


def _finite(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be numeric, got {value!r}") from None
    if not np.isfinite(arr).all():
        raise ParameterError(f"{what} must be finite, got {value!r}")
    return arr


def _nonnegative(value: Any, what: str) -> np.ndarray:
    arr = _finite(value, what)
    if (arr < 0).any():
        raise ParameterError(f"{what} must be >= 0 (a standard deviation), got {value!r}")
    return arr


def _terms_for(design: Design, key: Any, what: str) -> list[int]:
    """Indices of the terms a key names: a term group, or every term of a grouping factor."""
    idx = [i for i, t in enumerate(design.terms) if key in (t.group, t.factor)]
    if not idx:
        groups = list(dict.fromkeys([t.group for t in design.terms] + design.group_factors))
        raise ParameterError(
            f"{what}: unknown group {key!r}; the model's groups are {', '.join(groups)}"
        )
    return idx


def _sds(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"{what}: 'sd' must be a dict group -> SDs, got {type(value).__name__}"
        )
    sd: list[np.ndarray | None] = [None] * len(design.terms)
    for key, given in value.items():
        if isinstance(given, pd.Series):
            given = given.to_dict()
        idx = _terms_for(design, key, f"{what}: sd")
        # "Subject" of (Days || Subject) is both the first term's group and the factor:
        # as many values as that term has columns means the term, else the whole factor
        n_given = len(given) if isinstance(given, Mapping) else np.size(given)
        alone = [i for i in idx if design.terms[i].group == key]
        if alone and n_given == design.terms[alone[0]].nc:
            idx = alone
        names = [c for i in idx for c in design.terms[i].cnames]
        if isinstance(given, Mapping):
            unknown = [c for c in given if c not in names]
            missing = [c for c in names if c not in given]
            if unknown or missing or len(set(names)) < len(names):
                raise ParameterError(
                    f"{what}: sd[{key!r}] must give one SD per column {names}"
                    + (f"; unknown {unknown}" if unknown else "")
                    + (f"; missing {missing}" if missing else "")
                )
            flat = _nonnegative([given[c] for c in names], f"{what}: sd[{key!r}]")
        else:
            flat = np.atleast_1d(_nonnegative(given, f"{what}: sd[{key!r}]"))
            if flat.shape != (len(names),):
                raise ParameterError(
                    f"{what}: sd[{key!r}] has {flat.size} values for the columns {names}"
                )
        start = 0
        for i in idx:
            if sd[i] is not None:
                raise ParameterError(f"{what}: the SDs of {design.terms[i].group} are given twice")
            sd[i] = flat[start : start + design.terms[i].nc]
            start += design.terms[i].nc
    missing_terms = [t.group for t, s in zip(design.terms, sd) if s is None]
    if missing_terms:
        raise ParameterError(
            f"{what} lack the random-effect SDs 'sd' of {', '.join(missing_terms)}"
        )
    return tuple(sd)


def _corrs(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"{what}: 'corr' must be a dict group -> correlations, got {type(value).__name__}"
        )
    corr = [np.eye(t.nc) for t in design.terms]
    for key, given in value.items():
        idx = [i for i in _terms_for(design, key, f"{what}: corr") if design.terms[i].nc > 1]
        if len(idx) != 1:
            raise ParameterError(
                f"{what}: corr[{key!r}] names no single correlated term: the effects of "
                f"{key} are independent (one column per term)"
                if not idx
                else f"{what}: corr[{key!r}] is ambiguous; use one of "
                f"{[design.terms[i].group for i in idx]}"
            )
        term = design.terms[idx[0]]
        corr[idx[0]] = _corr_matrix(term, given, f"{what}: corr[{key!r}]")
    return tuple(corr)


def _corr_matrix(term: ReTerm, given: Any, what: str) -> np.ndarray:
    k, names = term.nc, list(term.cnames)
    if isinstance(given, Mapping):
        mat = np.eye(k)
        for pair, r in given.items():
            if not (isinstance(pair, tuple) and len(pair) == 2 and set(pair) <= set(names)):
                raise ParameterError(f"{what}: key {pair!r} is not a pair of columns of {names}")
            a, b = names.index(pair[0]), names.index(pair[1])
            mat[a, b] = mat[b, a] = float(_finite(r, what))
    else:
        arr = _finite(given, what)
        if arr.ndim == 0 and k == 2:
            mat = np.array([[1.0, float(arr)], [float(arr), 1.0]])
        elif arr.shape == (k, k):
            mat = arr
        else:
            raise ParameterError(
                f"{what} must be a {k} x {k} correlation matrix for {names}"
                + (" or one number" if k == 2 else "")
                + f", got shape {arr.shape}"
            )
    _check_corr(mat, what)
    return mat


def _check_corr(mat: np.ndarray, what: str) -> None:
    """Ω must be symmetric with a unit diagonal and positive semi-definite."""
    if not np.allclose(mat, mat.T, atol=1e-10):
        raise ParameterError(f"{what} is not symmetric:\n{mat}")
    if not np.allclose(np.diag(mat), 1.0, atol=1e-10):
        raise ParameterError(f"{what} must have ones on the diagonal:\n{mat}")
    if np.linalg.eigvalsh(mat).min() < -1e-8:
        raise ParameterError(
            f"{what} is not a valid correlation matrix (not positive semi-definite):\n{mat}"
        )


def _from_varcorr(
    design: Design, vc: Any, what: str
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], float | None]:
    """SDs, correlation matrices and σ from ``fit.varcorr``'s layout."""
    need = {"grp", "var1", "var2", "sdcor"}
    if not isinstance(vc, pd.DataFrame) or not need <= set(vc.columns):
        raise ParameterError(
            f"{what}: 'varcorr' must be a DataFrame with columns grp, var1, var2, sdcor "
            "(the layout of fit.varcorr)"
        )
    groups = {t.group: i for i, t in enumerate(design.terms)}
    sd = [np.full(t.nc, np.nan) for t in design.terms]
    corr = [np.eye(t.nc) for t in design.terms]
    sigma = None
    for grp, var1, var2, value in vc[["grp", "var1", "var2", "sdcor"]].itertuples(index=False):
        label = f"varcorr row ({grp}, {var1}, {var2})"
        if grp == "Residual":
            sigma = float(_nonnegative(value, f"{what}: {label}"))
            continue
        if grp not in groups:
            raise ParameterError(
                f"{what}: unknown group {grp!r} in varcorr; the model's groups are "
                f"{', '.join(groups)} (a fit of another model?)"
            )
        i = groups[grp]
        names = list(design.terms[i].cnames)
        if var1 not in names or not (pd.isna(var2) or var2 in names):
            raise ParameterError(f"{what}: {label} names a column not in {grp}'s {names}")
        if pd.isna(var2):
            sd[i][names.index(var1)] = _nonnegative(value, f"{what}: {label}")
        else:
            a, b = names.index(var1), names.index(var2)
            corr[i][a, b] = corr[i][b, a] = float(_finite(value, f"{what}: {label}"))
    for i, term in enumerate(design.terms):
        if np.isnan(sd[i]).any():
            raise ParameterError(f"{what}: varcorr lacks the SDs of {term.group}")
        _check_corr(corr[i], f"{what}: the varcorr correlations of {term.group}")
    return tuple(sd), tuple(corr), sigma


def _ranef(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    """Per-term (ℓ, k) arrays from factor -> DataFrame (levels x all the factor's columns)."""
    if not isinstance(value, Mapping):
        raise ParameterError(f"{what}: 'ranef' must be a dict grouping factor -> DataFrame")
    unknown = [k for k in value if k not in design.group_factors]
    if unknown:
        raise ParameterError(
            f"{what}: unknown grouping factor(s) {unknown} in ranef; the model's are "
            f"{design.group_factors}"
        )
    blocks: dict[str, np.ndarray] = {}
    for factor in design.group_factors:
        if factor not in value:
            raise ParameterError(f"{what}: ranef lacks the grouping factor {factor!r}")
        df = value[factor]
        columns = design.factor_columns(factor)
        levels = list(next(t for t in design.terms if t.factor == factor).levels)
        if not isinstance(df, pd.DataFrame) or [str(c) for c in df.columns] != columns:
            raise ParameterError(
                f"{what}: ranef[{factor!r}] must be a DataFrame with columns {columns}"
            )
        labels = [str(i) for i in df.index]
        if sorted(labels) != sorted(levels):
            raise ParameterError(
                f"{what}: ranef[{factor!r}] has levels that differ from the model's "
                f"{len(levels)} levels of {factor} (a fit to other data?)"
            )
        table = pd.DataFrame(df.to_numpy(dtype=float), index=labels).loc[levels]
        blocks[factor] = _finite(table.to_numpy(), f"{what}: ranef[{factor!r}]")
    out, start = [], dict.fromkeys(design.group_factors, 0)
    for term in design.terms:
        s = start[term.factor]
        out.append(blocks[term.factor][:, s : s + term.nc])
        start[term.factor] = s + term.nc
    return tuple(out)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0

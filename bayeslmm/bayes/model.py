"""Compile a :class:`~bayeslmm.design.Design` and its priors into a PyMC model.

The model (``y`` is the response, ``X`` the fixed-effect matrix, term ``g`` has raw columns
``X_g`` (n x k_g), level codes ``ℓ(i)`` and effects ``b_g`` (levels x k_g))::

    y_i ~ Normal(μ_i, σ)
    μ_i = α + Σ_j (x_ij - x̄_j) β_j + Σ_g Σ_c b_g[ℓ_g(i), c] · X_g[i, c]
    b_g[l, :] ~ MvNormal(0, diag(τ_g) Ω_g diag(τ_g))      (independent over levels l)

The non-intercept columns of ``X`` are centred (as brms does); ``α`` is the intercept of
the centred design and the original-scale intercept is recovered exactly as
``fixef[(Intercept)] = α - Σ_j x̄_j β_j`` (a Deterministic).  ``Z`` is not centred, so
``τ_g`` and ``Ω_g`` mean what they mean in lme4.  Without an intercept nothing is centred.
Variable names and dims: :mod:`bayeslmm.names`; priors: :mod:`.priors`; centred or not:
:mod:`.parameterization`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import names
from ..design import Design, ReTerm
from .priors import Prior


def _vector_args(priors: Mapping[str, Prior], keys: list[str]) -> dict[str, np.ndarray]:
    """The arguments of a block of priors sharing a family, stacked into vectors."""
    return {
        a: np.array([priors[n].args[a] for n in keys], dtype=float) for a in priors[keys[0]].args
    }


def _vector_rv(priors: Mapping[str, Prior], keys: list[str], rv_name: str, dims: str) -> Any:
    return getattr(pm, priors[keys[0]].dist)(rv_name, **_vector_args(priors, keys), dims=dims)


def coords(design: Design) -> dict[str, list[Any]]:
    """The named coordinates of the PyMC model."""
    out: dict[str, list[Any]] = {
        names.FIXEF_DIM: list(design.fixef_names),
        names.OBS: list(range(design.nobs)),
    }
    icpt = design.intercept_index
    slopes = [n for j, n in enumerate(design.fixef_names) if j != icpt]
    if slopes:
        out[names.SLOPE] = slopes
    for t in design.terms:
        out[t.factor] = list(t.levels)
        out[names.term_dim(t.group)] = list(t.cnames)
        out[names.term_dim_bis(t.group)] = list(t.cnames)
    return out


def build_pymc_model(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
) -> pm.Model:
    """The PyMC model of ``design`` (see the module docstring for the math)."""
    X, y = design.X, design.y
    icpt = design.intercept_index
    slope_idx = [j for j in range(design.p) if j != icpt]
    slopes = [names.fixef_label(design.fixef_names[j]) for j in slope_idx]
    absorbed = _absorbed_columns(design, parameterization)
    with pm.Model(coords=coords(design)) as model:
        mu = pt.zeros(design.nobs)
        if slope_idx:
            beta = _vector_rv(priors, slopes, names.BETA, names.SLOPE)
        if icpt is not None:
            means = X[:, slope_idx].mean(axis=0)
            prior = priors[names.INTERCEPT]
            alpha = getattr(pm, prior.dist)(names.INTERCEPT, **prior.args)
            mu = alpha
            if slope_idx:
                mu = mu + pt.dot(X[:, slope_idx] - means, beta)
                intercept = alpha - pt.dot(means, beta)
            else:
                intercept = alpha
            parts: list[Any] = [None] * design.p
            parts[icpt] = intercept
            for i, j in enumerate(slope_idx):
                parts[j] = beta[i]
            fixef = pm.Deterministic(names.FIXEF, pt.stack(parts), dims=names.FIXEF_DIM)
        elif slope_idx:
            mu = pt.dot(X, beta)
            fixef = pm.Deterministic(names.FIXEF, beta, dims=names.FIXEF_DIM)
        else:
            fixef = pm.Deterministic(names.FIXEF, pt.zeros(0), dims=names.FIXEF_DIM)
        if absorbed:
            # hierarchical centring: absorbed columns enter through the group coefficients
            taken = {j for cols in absorbed.values() for j in cols.values()}
            keep = [j for j in range(design.p) if j not in taken]
            mu = pt.dot(X[:, keep], fixef[keep]) if keep else pt.zeros(design.nobs)
        for term in design.terms:
            cols = absorbed.get(term.group, {})
            loc = pt.stack([fixef[cols[c]] if c in cols else 0.0 for c in range(term.nc)])
            mu = mu + _ranef_contribution(
                term, priors, parameterization[term.group], loc if cols else None
            )
        prior = priors[names.SIGMA]
        sigma = getattr(pm, prior.dist)(names.SIGMA, **prior.args)
        pm.Normal(names.Y, mu=mu, sigma=sigma, observed=y, dims=names.OBS)
    return model


def _absorbed_columns(
    design: Design, parameterization: Mapping[str, str]
) -> dict[str, dict[int, int]]:
    """Centred term group -> {column index: fixef index} for hierarchical centring.

    A fixed-effect column is absorbed by the first centred term (in term order) that
    has a random column of the same name: that term's coefficients are β + b.
    """
    taken: set[int] = set()
    out: dict[str, dict[int, int]] = {}
    for term in design.terms:
        if parameterization[term.group] != "centered":
            continue
        cols = {}
        for c, name in enumerate(term.cnames):
            if name in design.fixef_names and design.fixef_names.index(name) not in taken:
                cols[c] = design.fixef_names.index(name)
        taken |= set(cols.values())
        if cols:
            out[term.group] = cols
    return out


def _ranef_contribution(
    term: ReTerm, priors: Mapping[str, Prior], param: str, loc: Any = None
) -> Any:
    """Add term g's variables to the model; return Σ_c b_g[codes, c] · X_g[:, c].

    With ``loc`` (hierarchical centring) the free variable is ``coef_g = loc + b`` and the
    return value is Σ_c coef_g[codes, c] · X_g[:, c].
    """
    g, k = term.group, term.nc
    tdim, bis = names.term_dim(g), names.term_dim_bis(g)
    dims = (term.factor, tdim)
    keys = [names.sd_label(g, c) for c in term.cnames]
    if k == 1:
        sd = _vector_rv(priors, keys, names.sd(g), tdim)
        if loc is not None:
            b = pm.Normal(names.coef(g), loc, sd, dims=dims)
            pm.Deterministic(names.ranef(g), b - loc, dims=dims)
        elif param == "centered":
            b = pm.Normal(names.ranef(g), 0.0, sd, dims=dims)
        else:
            z = pm.Normal(names.z(g), 0.0, 1.0, dims=dims)
            b = pm.Deterministic(names.ranef(g), z * sd, dims=dims)
    else:
        chol, corr, stds = pm.LKJCholeskyCov(
            names.chol(g),
            eta=float(priors[names.corr(g)].args["eta"]),
            n=k,
            sd_dist=getattr(pm, priors[keys[0]].dist).dist(**_vector_args(priors, keys)),
            compute_corr=True,
            store_in_trace=False,
        )
        pm.Deterministic(names.sd(g), stds, dims=tdim)
        pm.Deterministic(names.corr(g), corr, dims=(tdim, bis))
        if loc is not None:
            b = pm.MvNormal(names.coef(g), mu=loc, chol=chol, dims=dims)
            pm.Deterministic(names.ranef(g), b - loc, dims=dims)
        elif param == "centered":
            b = pm.MvNormal(names.ranef(g), mu=np.zeros(k), chol=chol, dims=dims)
        else:
            z = pm.Normal(names.z(g), 0.0, 1.0, dims=dims)
            b = pm.Deterministic(names.ranef(g), pt.dot(z, chol.T), dims=dims)
    gathered = b[term.codes]
    const_one = np.all(term.X == 1.0, axis=0)
    if const_one.all():
        return gathered.sum(axis=1) if k > 1 else gathered[:, 0]
    return (gathered * term.X).sum(axis=1)

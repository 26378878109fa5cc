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
Each term's covariance is ``Σ_g = T_gT_gᵀ`` with ``T_g = diag(τ_g) L_g``: ``sd_g`` (τ_g,
its prior on each column) and ``corr_chol_g`` (L_g, the Cholesky factor of Ω_g ~ LKJ(η),
PyMC's ``LKJCorr``), the same variables in every parameterisation.  The *marginal* form
(:func:`build_marginal_model`) integrates b out: ``y ~ N(Xβ, σ²I + ZΣZᵀ)``.
Variable names and dims: :mod:`bayeslmm.names`; priors: :mod:`.priors`; the form of each
term: :mod:`.parameterization`.
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
    """The arguments of a block of priors sharing a family, stacked into float64 vectors
    (a Python float would become a float32 constant in PyTensor, off by ~1e-8)."""
    return {
        a: np.array([priors[n].args[a] for n in keys], dtype=np.float64)
        for a in priors[keys[0]].args
    }


def _rv(priors: Mapping[str, Prior], keys: list[str], rv_name: str, dims: Any = None) -> Any:
    """The random variable ``rv_name`` with the prior of ``keys`` (one key: a scalar)."""
    args = _vector_args(priors, keys)
    if len(keys) == 1 and dims is None:
        args = {a: v[0] for a, v in args.items()}
    return getattr(pm, priors[keys[0]].dist)(rv_name, **args, dims=dims)


def build_pymc_model(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
) -> pm.Model:
    """The PyMC model of ``design`` (see the module docstring for the math): the marginal
    model when the terms are ``"marginal"``, else the latent one with each term centred or
    non-centred as ``parameterization`` says."""
    if set(parameterization.values()) == {"marginal"}:
        return build_marginal_model(design, priors)
    absorbed = _absorbed_columns(design, parameterization)
    with pm.Model(coords=design.coords()) as model:
        mu, fixef = _fixed_effects(design, priors)
        if absorbed:
            # hierarchical centring: absorbed columns enter through the group coefficients
            taken = {j for cols in absorbed.values() for j in cols.values()}
            keep = [j for j in range(design.p) if j not in taken]
            mu = pt.dot(design.X[:, keep], fixef[keep]) if keep else pt.zeros(design.nobs)
        for term in design.terms:
            cols = absorbed.get(term.group, {})
            loc = pt.stack([fixef[cols[c]] if c in cols else 0.0 for c in range(term.nc)])
            mu = mu + _ranef_contribution(
                term, priors, parameterization[term.group], loc if cols else None
            )
        sigma = _rv(priors, [names.SIGMA], names.SIGMA)
        pm.Normal(names.Y, mu=mu, sigma=sigma, observed=design.y, dims=names.OBS)
    return model


def _fixed_effects(design: Design, priors: Mapping[str, Prior]) -> tuple[Any, Any]:
    """Add ``Intercept`` (of the centred design) and ``beta`` (slopes) and the Deterministic
    ``fixef`` (original scale); return (Xβ, fixef)."""
    X = design.X
    icpt = design.intercept_index
    slope_idx = [j for j in range(design.p) if j != icpt]
    slopes = [names.fixef_label(design.fixef_names[j]) for j in slope_idx]
    mu: Any = pt.zeros(design.nobs)
    if slope_idx:
        beta = _rv(priors, slopes, names.BETA, names.SLOPE)
    if icpt is not None:
        means = X[:, slope_idx].mean(axis=0)
        alpha = _rv(priors, [names.INTERCEPT], names.INTERCEPT)
        mu = alpha + pt.zeros(design.nobs)
        intercept = alpha
        if slope_idx:
            mu = mu + pt.dot(X[:, slope_idx] - means, beta)
            intercept = alpha - pt.dot(means, beta)
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
    return mu, fixef


def build_marginal_model(design: Design, priors: Mapping[str, Prior]) -> pm.Model:
    """The model with b integrated out: ``y ~ N(Xβ, σ²I + ZΣZᵀ)``, a ``CustomDist`` whose
    log density is the determinant lemma and Woodbury with Λ̃ = blockdiag(I ⊗ T_g)/σ,
    M = I + Λ̃ᵀZᵀZΛ̃ = LLᵀ, r = y − Xβ, w = L⁻¹Λ̃ᵀZᵀr::

        log p(y) = −½ [n log 2πσ² + 2 Σ log diag L + (rᵀr − wᵀw)/σ²]

    (dense q x q algebra: this model is the specification the compiled kernel of
    :mod:`.marginal` is tested against, and what ``nuts_sampler="pymc"`` samples).  Its
    random draws use new group effects b ~ N(0, Σ) (prior and posterior predictive).
    """
    import pytensor.sparse as ps

    n = design.nobs
    Z = design.Z().tocsr()
    Zt = Z.T.tocsr()
    A = (Zt @ Z).toarray()
    terms = list(design.terms)
    log2pi = np.log(2.0 * np.pi)

    def logp(value: Any, mu: Any, sigma: Any, *Ts: Any) -> Any:
        r = value - mu
        ztr = ps.structured_dot(ps.as_sparse_variable(Zt), r[:, None])[:, 0]
        blocks = [pt.linalg.kron(pt.eye(t.nl), T) for t, T in zip(terms, Ts, strict=True)]
        lam = (pt.linalg.block_diag(*blocks) if len(blocks) > 1 else blocks[0]) / sigma
        L = pt.linalg.cholesky(pt.eye(A.shape[0]) + lam.T @ A @ lam)
        w = pt.linalg.solve_triangular(L, lam.T @ ztr, lower=True)
        logdet = 2.0 * pt.log(pt.diagonal(L)).sum()
        return -0.5 * (n * (log2pi + 2.0 * pt.log(sigma)) + logdet + (r @ r - w @ w) / sigma**2)

    def random(
        mu: np.ndarray, sigma: np.ndarray, *Ts: np.ndarray, rng: Any = None, size: Any = None
    ) -> np.ndarray:
        b = [
            (rng.standard_normal((t.nl, t.nc)) @ np.asarray(T).T).ravel()
            for t, T in zip(terms, Ts, strict=True)
        ]
        return np.asarray(mu + Z @ np.concatenate(b) + sigma * rng.standard_normal(n))

    signature = "(n),()," + ",".join(f"(k{i},k{i})" for i in range(len(terms))) + "->(n)"
    with pm.Model(coords=design.coords()) as model:
        mu, _ = _fixed_effects(design, priors)
        Ts = [covariance_factor(t, priors) for t in terms]
        sigma = _rv(priors, [names.SIGMA], names.SIGMA)
        pm.CustomDist(
            names.Y,
            mu,
            sigma,
            *Ts,
            logp=logp,
            random=random,
            signature=signature,
            observed=design.y,
            dims=names.OBS,
        )
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


def covariance_factor(term: ReTerm, priors: Mapping[str, Prior]) -> Any:
    """Add term g's ``sd_g`` (and, k >= 2, ``corr_chol_g`` ~ LKJ and the Deterministic
    ``corr_g``) to the model; return T_g = diag(sd_g) L_g, the Cholesky factor of Σ_g."""
    g, k = term.group, term.nc
    tdim, bis = names.term_dim(g), names.term_dim_bis(g)
    sd = _rv(priors, [names.sd_label(g, c) for c in term.cnames], names.sd(g), tdim)
    if k == 1:
        return sd[:, None]
    eta = np.float64(priors[names.corr(g)].args["eta"])
    L = pm.LKJCorr(names.corr_chol(g), n=k, eta=eta, dims=(tdim, bis))
    pm.Deterministic(names.corr(g), L @ L.T, dims=(tdim, bis))
    return sd[:, None] * L


def _ranef_contribution(
    term: ReTerm, priors: Mapping[str, Prior], param: str, loc: Any = None
) -> Any:
    """Add term g's variables to the model; return Σ_c b_g[codes, c] · X_g[:, c].

    With ``loc`` (hierarchical centring) the free variable is ``coef_g = loc + b`` and the
    return value is Σ_c coef_g[codes, c] · X_g[:, c].
    """
    g, k = term.group, term.nc
    dims = (term.factor, names.term_dim(g))
    T = covariance_factor(term, priors)
    if k == 1:  # scalar effects: Normal, not a 1 x 1 MvNormal
        sd = T[:, 0]
        if loc is not None:
            b = pm.Normal(names.coef(g), loc, sd, dims=dims)
            pm.Deterministic(names.ranef(g), b - loc, dims=dims)
        elif param == "centered":
            b = pm.Normal(names.ranef(g), 0.0, sd, dims=dims)
        else:
            z = pm.Normal(names.z(g), 0.0, 1.0, dims=dims)
            b = pm.Deterministic(names.ranef(g), z * sd, dims=dims)
    elif loc is not None:
        b = pm.MvNormal(names.coef(g), mu=loc, chol=T, dims=dims)
        pm.Deterministic(names.ranef(g), b - loc, dims=dims)
    elif param == "centered":
        b = pm.MvNormal(names.ranef(g), mu=np.zeros(k), chol=T, dims=dims)
    else:
        z = pm.Normal(names.z(g), 0.0, 1.0, dims=dims)
        b = pm.Deterministic(names.ranef(g), pt.dot(z, T.T), dims=dims)
    gathered = b[term.codes]
    const_one = np.all(term.X == 1.0, axis=0)
    if const_one.all():
        return gathered.sum(axis=1) if k > 1 else gathered[:, 0]
    return (gathered * term.X).sum(axis=1)

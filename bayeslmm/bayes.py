"""Compile a :class:`~bayeslmm.design.Design` into a PyMC model, with data-scaled priors.

The model (``y`` is the response, ``X`` the fixed-effect matrix, term ``g`` has raw columns
``X_g`` (n x k_g), level codes ``ℓ(i)`` and effects ``b_g`` (levels x k_g))::

    y_i ~ Normal(μ_i, σ)
    μ_i = α + Σ_j (x_ij - x̄_j) β_j + Σ_g Σ_c b_g[ℓ_g(i), c] · X_g[i, c]
    b_g[l, :] ~ MvNormal(0, diag(τ_g) Ω_g diag(τ_g))      (independent over levels l)

The non-intercept columns of ``X`` are centred (as brms does); ``α`` is the intercept of
the centred design and the original-scale intercept is recovered exactly as
``fixef[(Intercept)] = α - Σ_j x̄_j β_j`` (a Deterministic).  ``Z`` is not centred, so
``τ_g`` and ``Ω_g`` mean what they mean in lme4.  Without an intercept nothing is centred.

PyMC variable names and dims (docs/CONTRACTS.md): ``fixef`` (dim ``fixef__term``: xarray
forbids a variable named like its own dimension), ``sigma``,
and per term ``g``: ``sd_g`` (dim ``g__term``), ``corr_g`` (dims ``g__term``,
``g__term_bis``) when k_g >= 2, ``ranef_g`` (dims ``(factor, g__term)``), observed ``y``
(dim ``obs``).  Free variables: ``Intercept``, ``beta`` (dim ``slope``: the non-intercept
fixed effects), ``sigma``, ``sd_g`` (k_g = 1) or ``chol_g`` (packed LKJ Cholesky factor,
k_g >= 2), and ``z_g`` (non-centred), ``coef_g`` (hierarchically centred) or ``ranef_g``
(centred, no shared fixed column).

Default priors (proper and weakly informative; s_y = sd(y), s_x = sd of a column, or
its root mean square when the column is constant)::

    Intercept            Normal(mean(y), 2.5 s_y)           (intercept of the centred design)
    fixef[x]             Normal(0, 2.5 s_y / s_x)           (slopes)
    fixef[x], no intercept in the model:  Normal(0, 2.5 rms(y) / rms(x))
    sd_g[c]              HalfStudentT(nu=3, sigma=s_y / s_x)   (s_y for an intercept column)
    corr_g               LKJ(eta=2)
    sigma                HalfStudentT(nu=3, sigma=s_y)

Overrides (``Model(..., priors=...)`` or ``sample(priors=...)``) are keyed by the
parameter names of :func:`prior_table` (``"sigma"``, ``"Intercept"``, ``"fixef[Days]"``,
``"sd_Subject[Days]"``, ``"corr_Subject"``) or by a block (``"fixef"``: every slope;
``"sd_Subject"``: every SD of that term).  A value is a :class:`Prior`, a tuple
``("HalfNormal", {"sigma": 10})`` or a string ``"HalfNormal(sigma=10)"`` /
``"Normal(0, 10)"``.  An override of the default family keeps the default arguments it
does not name.  The parameters of one block (the slopes; the SDs of one term) share one
distribution family.

Parameterisation (per term, ``parameterization="auto"``): the information ratio
``r_c = τ̂_c² / v̂_c`` compares the between-level variance of the per-level least-squares
coefficients of the OLS residuals (``τ̂_c²``, method of moments) with their mean sampling
variance ``v̂_c = mean_l σ̂² [(X_lᵀX_l)⁻¹]_cc`` (σ̂² the pooled within-level residual
variance).  It grows with the observations per level and with τ²/σ².  The posterior of
a level's effect shrinks by about ``1 / (1 + r)``, and for Gaussian models the centred
form mixes better than the non-centred one once r > 1 (Papaspiliopoulos, Roberts & Sköld
2007).  Rule: a term is centred when ``min_c r_c >= 3`` (a margin over 1), else
non-centred (``b = z·τ``; ``b = z Lᵀ`` with ``L`` the Cholesky factor of Σ), which also
covers few observations per level and variances near zero.  A centred term is
*hierarchically* centred on the fixed effects it shares columns with: its free variable is
``coef_g = β + b ~ MvNormal(β, Σ)`` (``ranef_g = coef_g - β`` is a Deterministic), which
removes the β-vs-mean(b) ridge; each fixed column is absorbed by the first centred term
(term order) that has it.  Measured (4 x 1000 draws unless noted): sleepstudy r = (2.7,
4.4): hierarchically centred min bulk ESS 2610 vs 1337 non-centred, same sampling time,
but an occasional divergence at target_accept 0.8 (18 levels), hence the margin of 3;
200 groups x 100 rows, (x | g), r = (20.9, 3.9), 2 x 500 draws: min ESS 54 non-centred,
54 plainly centred (the intercept ridge), 1291 hierarchically centred.  With crossed
factors the other factor's effects stay in the residuals, which lowers r (errs towards
non-centred).  A factor nested in another one (``cask:batch`` in ``batch``) stays
non-centred: centring it on β alone diverged on pastes (74 divergences vs 36).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from threadpoolctl import threadpool_limits

from .design import Design, ReTerm
from .errors import PriorError, SamplingError

Parameterization = Literal["auto", "centered", "noncentered"]

#: information ratio at and above which ``parameterization="auto"`` centres a term
CENTER_RATIO = 3.0
#: LKJ shape of the default correlation prior
LKJ_ETA = 2.0


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a PyMC distribution name and its keyword arguments.

    >>> Prior("HalfNormal", {"sigma": 10})
    Prior('HalfNormal(sigma=10)')
    """

    dist: str
    args: dict[str, Any] = field(default_factory=dict)
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.dist}({_format_args(self.args)})"

    def __repr__(self) -> str:
        return f"Prior({str(self)!r})"


def _format_args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in args.items())


def _num(value: Any) -> str:
    if isinstance(value, int | float | np.floating | np.integer):
        return f"{float(value):.4g}"
    return str(value)


# --------------------------------------------------------------------------------------
# Default priors and overrides
# --------------------------------------------------------------------------------------


def _scale(x: np.ndarray) -> float:
    """sd of a column, or its root mean square when it is constant."""
    sd = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return sd if sd > 0 else float(np.sqrt(np.mean(x**2)))


def default_priors(design: Design) -> dict[str, Prior]:
    """The data-scaled default prior of every parameter, keyed by parameter name."""
    y = design.y
    sy = float(np.std(y, ddof=1))
    if not sy > 0:
        sy = max(float(np.sqrt(np.mean(y**2))), 1.0)
    out: dict[str, Prior] = {}
    icpt = design.intercept_index
    if icpt is not None:
        out["Intercept"] = Prior(
            "Normal",
            {"mu": float(np.mean(y)), "sigma": 2.5 * sy},
            "Normal(mean(y), 2.5 sd(y)); intercept of the centred design",
        )
        for j, name in enumerate(design.fixef_names):
            if j != icpt:
                sx = _scale(design.X[:, j])
                out[f"fixef[{name}]"] = Prior(
                    "Normal", {"mu": 0.0, "sigma": 2.5 * sy / sx}, "Normal(0, 2.5 sd(y) / sd(x))"
                )
    else:
        ry = float(np.sqrt(np.mean(y**2)))
        for j, name in enumerate(design.fixef_names):
            rx = float(np.sqrt(np.mean(design.X[:, j] ** 2)))
            out[f"fixef[{name}]"] = Prior(
                "Normal",
                {"mu": 0.0, "sigma": 2.5 * ry / rx},
                "Normal(0, 2.5 rms(y) / rms(x)); no intercept",
            )
    for term in design.terms:
        for c, cname in enumerate(term.cnames):
            sx = _scale(term.X[:, c])
            const = np.ptp(term.X[:, c]) == 0
            rule = "HalfStudentT(3, sd(y))" if const else "HalfStudentT(3, sd(y) / sd(x))"
            out[f"sd_{term.group}[{cname}]"] = Prior(
                "HalfStudentT", {"nu": 3.0, "sigma": sy / sx}, rule
            )
        if term.nc > 1:
            out[f"corr_{term.group}"] = Prior("LKJ", {"eta": LKJ_ETA}, "LKJ(eta=2)")
    out["sigma"] = Prior("HalfStudentT", {"nu": 3.0, "sigma": sy}, "HalfStudentT(3, sd(y))")
    return out


def _blocks(design: Design) -> dict[str, list[str]]:
    """Block keys (``fixef``, ``sd_g``) and the parameter names each covers."""
    names = list(default_priors(design))
    blocks = {"fixef": [n for n in names if n.startswith("fixef[")]}
    for term in design.terms:
        blocks[f"sd_{term.group}"] = [f"sd_{term.group}[{c}]" for c in term.cnames]
    return blocks


def _parse_prior(key: str, spec: Any) -> Prior:
    """A Prior from a Prior, a ``(dist, args)`` tuple or a ``"Dist(a, b=1)"`` string."""
    if isinstance(spec, Prior):
        dist, args, positional = spec.dist, dict(spec.args), []
    elif isinstance(spec, tuple | list) and len(spec) in (1, 2) and isinstance(spec[0], str):
        dist, args, positional = spec[0], dict(spec[1]) if len(spec) == 2 else {}, []
    elif isinstance(spec, str):
        dist, args, positional = _parse_string(key, spec)
    else:
        raise PriorError(
            f"prior for {key!r} must be a Prior, a (distribution, {{arguments}}) tuple or a "
            f"string like 'HalfNormal(sigma=10)', got {spec!r}"
        )
    if dist == "LKJ":
        if positional:
            args = {"eta": positional[0], **args}
        return Prior(dist, args, "user")
    cls = getattr(pm, dist, None)
    if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
        raise PriorError(f"prior for {key!r}: {dist!r} is not a PyMC distribution")
    if positional:
        params = [p for p in inspect.signature(cls.dist).parameters if p not in ("args", "kwargs")]
        args = {**dict(zip(params, positional)), **args}
    return Prior(dist, args, "user")


def _parse_string(key: str, text: str) -> tuple[str, dict[str, Any], list[Any]]:
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            raise ValueError
        positional = [ast.literal_eval(a) for a in node.args]
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    except (SyntaxError, ValueError):
        raise PriorError(
            f"cannot read the prior {text!r} for {key!r}: write e.g. 'Normal(0, 10)' or "
            "'HalfNormal(sigma=10)'"
        ) from None
    return node.func.id, args, positional


def resolve_priors(design: Design, overrides: Mapping[str, Any] | None = None) -> dict[str, Prior]:
    """Defaults with ``overrides`` applied (blocks first, then single parameters).

    Raises :class:`PriorError` for an unknown parameter (listing the valid names), an
    unknown distribution, invalid arguments or a negative-support prior on an SD.
    """
    priors = default_priors(design)
    blocks = _blocks(design)
    overrides = dict(overrides or {})
    valid = list(priors) + [b for b in blocks if b not in priors]
    unknown = [k for k in overrides if k not in priors and k not in blocks]
    if unknown:
        hint = ""
        if "fixef[(Intercept)]" in unknown and "Intercept" in priors:
            hint = " (the intercept's prior is set on 'Intercept', the centred-design intercept)"
        raise PriorError(
            f"unknown prior parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}{hint}; valid: {', '.join(valid)}"
        )
    ordered = [k for k in overrides if k in blocks and k not in priors]
    ordered += [k for k in overrides if k in priors]
    for key in ordered:
        new = _parse_prior(key, overrides[key])
        for name in [key] if key in priors else blocks[key]:
            old = priors[name]
            args = {**old.args, **new.args} if new.dist == old.dist else new.args
            priors[name] = Prior(new.dist, args, f"user ({key})")
    for name, prior in priors.items():
        if prior.rule.startswith("user"):  # the defaults are valid by construction
            _validate(name, prior)
    for block in blocks.values():
        dists = {priors[n].dist for n in block}
        argsets = {tuple(sorted(priors[n].args)) for n in block}
        if len(dists) > 1 or len(argsets) > 1:
            detail = ", ".join(f"{n}: {priors[n]}" for n in block)
            raise PriorError(
                f"the parameters {', '.join(block)} share one distribution family and "
                f"arguments; got {detail}. Override the whole block with one family"
            )
    return priors


def _validate(name: str, prior: Prior) -> None:
    """Check a prior: LKJ only on correlations, positive support for SDs, valid args."""
    if name.startswith("corr_"):
        eta = prior.args.get("eta")
        if prior.dist != "LKJ" or set(prior.args) != {"eta"} or not _positive(eta):
            raise PriorError(f"prior for {name!r} must be LKJ(eta=...) with eta > 0, got {prior}")
        return
    if prior.dist == "LKJ":
        raise PriorError(f"LKJ is a prior for correlations (corr_...), not for {name!r}")
    try:
        dist = getattr(pm, prior.dist).dist(**prior.args)
        draws = np.asarray(pm.draw(dist, draws=64, random_seed=0), dtype=float)
        logp = np.asarray(pm.logp(dist, draws).eval()) if draws.ndim == 1 else np.zeros(1)
    except Exception as exc:
        raise PriorError(f"invalid prior {prior} for {name!r}: {exc}") from None
    if not np.all(np.isfinite(logp)):
        raise PriorError(f"invalid prior {prior} for {name!r}: check its arguments")
    if draws.shape != (64,):
        raise PriorError(f"prior {prior} for {name!r} must be scalar (got shape {draws.shape[1:]})")
    if not np.all(np.isfinite(draws)):
        raise PriorError(f"prior {prior} for {name!r} is improper or gives non-finite draws")
    positive = name == "sigma" or name.startswith("sd_")
    if positive and np.any(draws < 0):
        raise PriorError(f"prior for {name!r} must be on [0, inf), but {prior} has negative draws")


def _positive(x: Any) -> bool:
    return isinstance(x, int | float | np.floating | np.integer) and float(x) > 0


def prior_table(priors: Mapping[str, Prior]) -> pd.DataFrame:
    """One row per parameter: distribution, arguments, the rule that produced it."""
    rows = [(name, p.dist, _format_args(p.args), p.rule) for name, p in priors.items()]
    table = pd.DataFrame(rows, columns=["parameter", "distribution", "arguments", "rule"])
    return table.set_index("parameter")


# --------------------------------------------------------------------------------------
# Parameterisation
# --------------------------------------------------------------------------------------


def information_ratio(design: Design, term: ReTerm) -> np.ndarray:
    """Per column c of ``term``: ``τ̂_c² / v̂_c`` (see the module docstring).

    Per level l, least squares of the OLS residuals on the factor's random-effect
    columns gives ``β̂_l`` and
    ``v_l = σ̂² diag((X_lᵀX_l)⁻¹)`` with σ̂² the pooled within-level residual variance;
    levels with a singular ``X_lᵀX_l`` or no residual degrees of freedom are skipped.
    ``τ̂² = max(var_l β̂_l - mean_l v_l, 0)``.
    """
    X, y = design.X, design.y
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    # regress on every random-effect column of this factor, so that (x || g) terms
    # do not absorb each other's variation
    cols: dict[str, np.ndarray] = {}
    for t in design.terms:
        if t.factor == term.factor:
            for c, name in enumerate(t.cnames):
                cols.setdefault(name, t.X[:, c])
    names = list(cols)
    Xf = np.column_stack(list(cols.values()))
    k = Xf.shape[1]
    xtx = np.zeros((term.nl, k, k))
    xtr = np.zeros((term.nl, k))
    rtr = np.bincount(term.codes, weights=resid**2, minlength=term.nl)
    np.add.at(xtx, term.codes, Xf[:, :, None] * Xf[:, None, :])
    np.add.at(xtr, term.codes, Xf * resid[:, None])
    nobs = np.bincount(term.codes, minlength=term.nl)
    ok = (np.linalg.matrix_rank(xtx, tol=1e-8) == k) & (nobs > k)
    own = [names.index(c) for c in term.cnames]
    if ok.sum() < 2:
        return np.zeros(term.nc)
    inv = np.linalg.inv(xtx[ok])
    beta = np.einsum("lij,lj->li", inv, xtr[ok])
    rss = rtr[ok] - np.einsum("li,li->l", beta, xtr[ok])
    s2 = float(rss.sum()) / float((nobs[ok] - k).sum())
    if not s2 > 0:
        return np.full(term.nc, np.inf)
    v = s2 * np.einsum("lii->li", inv).mean(axis=0)
    tau2 = np.maximum(beta.var(axis=0, ddof=1) - v, 0.0)
    return (tau2 / v)[own]


def choose_parameterization(
    design: Design, parameterization: Parameterization = "auto"
) -> dict[str, str]:
    """``"centered"`` or ``"noncentered"`` per term group (see the module docstring)."""
    if parameterization not in ("auto", "centered", "noncentered"):
        raise SamplingError(
            f"parameterization must be 'auto', 'centered' or 'noncentered', "
            f"got {parameterization!r}"
        )
    if parameterization != "auto":
        return {t.group: parameterization for t in design.terms}
    return {
        t.group: "centered"
        if not any(t.nested_in(other) for other in design.terms)
        and information_ratio(design, t).min() >= CENTER_RATIO
        else "noncentered"
        for t in design.terms
    }


# --------------------------------------------------------------------------------------
# The PyMC model
# --------------------------------------------------------------------------------------


def _vector_args(priors: Mapping[str, Prior], names: list[str]) -> dict[str, np.ndarray]:
    """The arguments of a block of priors sharing a family, stacked into vectors."""
    return {
        a: np.array([priors[n].args[a] for n in names], dtype=float) for a in priors[names[0]].args
    }


def _vector_rv(priors: Mapping[str, Prior], names: list[str], rv_name: str, dims: str) -> Any:
    return getattr(pm, priors[names[0]].dist)(rv_name, **_vector_args(priors, names), dims=dims)


def coords(design: Design) -> dict[str, list[str]]:
    """The named coordinates of the PyMC model."""
    out: dict[str, list[Any]] = {
        "fixef__term": list(design.fixef_names),
        "obs": list(range(design.nobs)),
    }
    icpt = design.intercept_index
    slopes = [n for j, n in enumerate(design.fixef_names) if j != icpt]
    if slopes:
        out["slope"] = slopes
    for t in design.terms:
        out[t.factor] = list(t.levels)
        out[f"{t.group}__term"] = list(t.cnames)
        out[f"{t.group}__term_bis"] = list(t.cnames)
    return out


def build_pymc_model(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
) -> pm.Model:
    """The PyMC model of ``design`` (see the module docstring for the math and names)."""
    X, y = design.X, design.y
    icpt = design.intercept_index
    slope_idx = [j for j in range(design.p) if j != icpt]
    slopes = [f"fixef[{design.fixef_names[j]}]" for j in slope_idx]
    absorbed = _absorbed_columns(design, parameterization)
    with pm.Model(coords=coords(design)) as model:
        mu = pt.zeros(design.nobs)
        if slope_idx:
            beta = _vector_rv(priors, slopes, "beta", "slope")
        if icpt is not None:
            means = X[:, slope_idx].mean(axis=0)
            alpha = getattr(pm, priors["Intercept"].dist)("Intercept", **priors["Intercept"].args)
            mu = alpha
            if slope_idx:
                mu = mu + pt.dot(X[:, slope_idx] - means, beta)
                intercept = alpha - pt.dot(means, beta)
            else:
                intercept = alpha
            parts = [None] * design.p
            parts[icpt] = intercept
            for i, j in enumerate(slope_idx):
                parts[j] = beta[i]
            fixef = pm.Deterministic("fixef", pt.stack(parts), dims="fixef__term")
        elif slope_idx:
            mu = pt.dot(X, beta)
            fixef = pm.Deterministic("fixef", beta, dims="fixef__term")
        else:
            fixef = pm.Deterministic("fixef", pt.zeros(0), dims="fixef__term")
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
        sigma = getattr(pm, priors["sigma"].dist)("sigma", **priors["sigma"].args)
        pm.Normal("y", mu=mu, sigma=sigma, observed=y, dims="obs")
    return model


def _absorbed_columns(design: Design, parameterization: Mapping[str, str]) -> dict:
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
    tdim, bis = f"{g}__term", f"{g}__term_bis"
    names = [f"sd_{g}[{c}]" for c in term.cnames]
    if k == 1:
        sd = _vector_rv(priors, names, f"sd_{g}", tdim)
        if loc is not None:
            b = pm.Normal(f"coef_{g}", loc, sd, dims=(term.factor, tdim))
            pm.Deterministic(f"ranef_{g}", b - loc, dims=(term.factor, tdim))
        elif param == "centered":
            b = pm.Normal(f"ranef_{g}", 0.0, sd, dims=(term.factor, tdim))
        else:
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=(term.factor, tdim))
            b = pm.Deterministic(f"ranef_{g}", z * sd, dims=(term.factor, tdim))
    else:
        chol, corr, stds = pm.LKJCholeskyCov(
            f"chol_{g}",
            eta=float(priors[f"corr_{g}"].args["eta"]),
            n=k,
            sd_dist=getattr(pm, priors[names[0]].dist).dist(**_vector_args(priors, names)),
            compute_corr=True,
            store_in_trace=False,
        )
        pm.Deterministic(f"sd_{g}", stds, dims=tdim)
        pm.Deterministic(f"corr_{g}", corr, dims=(tdim, bis))
        if loc is not None:
            b = pm.MvNormal(f"coef_{g}", mu=loc, chol=chol, dims=(term.factor, tdim))
            pm.Deterministic(f"ranef_{g}", b - loc, dims=(term.factor, tdim))
        elif param == "centered":
            b = pm.MvNormal(f"ranef_{g}", mu=np.zeros(k), chol=chol, dims=(term.factor, tdim))
        else:
            z = pm.Normal(f"z_{g}", 0.0, 1.0, dims=(term.factor, tdim))
            b = pm.Deterministic(f"ranef_{g}", pt.dot(z, chol.T), dims=(term.factor, tdim))
    gathered = b[term.codes]
    const_one = np.all(term.X == 1.0, axis=0)
    if const_one.all():
        return gathered.sum(axis=1) if k > 1 else gathered[:, 0]
    return (gathered * term.X).sum(axis=1)


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------

NUTS_SAMPLERS = ("pymc", "nutpie", "numpyro", "blackjax")
_RESERVED = {
    "random_seed": "seed=",
    "model": "the bayeslmm Model",
    "nuts_sampler_kwargs": "nuts={...}",
    "step": "target_accept= / nuts={...}",
}
_SAMPLER_MODULES = {"nutpie": "nutpie", "numpyro": "numpyro", "blackjax": "blackjax"}


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SamplingError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_sampler_settings(
    draws: Any,
    tune: Any,
    chains: Any,
    cores: Any,
    target_accept: Any,
    nuts_sampler: Any,
    seed: Any = None,
) -> None:
    """Raise :class:`SamplingError` for settings NUTS cannot run with."""
    if seed is not None:
        _check_int("seed", seed, 0)
    _check_int("draws", draws, 1)
    _check_int("tune", tune, 0)
    _check_int("chains", chains, 1)
    if cores is not None:
        _check_int("cores", cores, 1)
    if not isinstance(target_accept, float | int) or not 0 < float(target_accept) < 1:
        raise SamplingError(f"target_accept must be in (0, 1), got {target_accept!r}")
    if nuts_sampler not in NUTS_SAMPLERS:
        raise SamplingError(
            f"nuts_sampler must be one of {', '.join(NUTS_SAMPLERS)}, got {nuts_sampler!r}"
        )
    module = _SAMPLER_MODULES.get(nuts_sampler)
    if module is not None and importlib.util.find_spec(module) is None:
        raise SamplingError(
            f"nuts_sampler={nuts_sampler!r} needs the {module!r} package: "
            f"pip install {module} (or use nuts_sampler='pymc')"
        )


def run_nuts(
    pymc_model: pm.Model,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int | None,
    target_accept: float,
    nuts_sampler: str,
    cores: int | None,
    progressbar: bool,
    **kwargs: Any,
) -> xr.DataTree:
    """``pm.sample`` with BLAS limited to one thread (chains run in parallel processes)."""
    check_sampler_settings(draws, tune, chains, cores, target_accept, nuts_sampler, seed)
    for reserved, ours in _RESERVED.items():
        if reserved in kwargs:
            raise SamplingError(f"pass {ours} instead of {reserved!r}")
    nuts = {**kwargs.pop("nuts", {}), "target_accept": float(target_accept)}
    kwargs.setdefault("compute_convergence_checks", False)
    if cores is None:
        # PyMC guesses cpu_count() // 2 (assuming hyper-threads): 1 on a 2-core machine.
        # Use the cores this process may run on; PyMC limits each worker's BLAS to 1 thread.
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        cores = max(1, min(chains, len(usable) if usable else os.cpu_count() or 1, 4))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # our own ConvergenceWarning follows; PyMC's "fewer than 4 chains" note is noise
        warnings.filterwarnings("ignore", message=".*chains.*", category=UserWarning)
        # pip's PyTensor cannot link numpy's bundled BLAS; our models use no dense matmul
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler=nuts_sampler,
            nuts=nuts,
            progressbar=progressbar,
            model=pymc_model,
            **kwargs,
        )


def sample_posterior(
    model: Any,
    *,
    priors: Mapping[str, Any] | None,
    parameterization: Parameterization,
    **options: Any,
) -> Any:
    """Resolve priors and parameterisation, run NUTS, wrap the draws in a Posterior."""
    from .posterior import Posterior, frame_to_dataset

    resolved = resolve_priors(model.design, {**model.prior_overrides, **(priors or {})})
    param = choose_parameterization(model.design, parameterization)
    check_sampler_settings(
        options["draws"],
        options["tune"],
        options["chains"],
        options["cores"],
        options["target_accept"],
        options["nuts_sampler"],
        options["seed"],
    )
    idata = run_nuts(build_pymc_model(model.design, resolved, param), **options)
    idata.attrs.update(
        {
            "bayeslmm_formula": model.design.formula,
            "bayeslmm_priors": json.dumps(
                {k: [p.dist, p.args, p.rule] for k, p in resolved.items()}, default=float
            ),
            "bayeslmm_parameterization": json.dumps(param),
            "nuts_sampler": options["nuts_sampler"],
        }
    )
    idata["model_frame"] = xr.DataTree(dataset=frame_to_dataset(model.design.frame))
    posterior = Posterior(idata, model, priors=resolved, parameterization=param)
    posterior.check_convergence(stacklevel=4)
    return posterior

"""Exploring a posterior as brms users do: predictions, LOO, hypotheses and Bayesian R².

Every function here reads a posterior through its public vocabulary only (``design``,
``parameter_draws()``, ``ranef_draws(factor)``, ``priors``, ``ci_prob``, ``ci_kind``: the
:class:`PosteriorLike` protocol), never a sampler variable, so latent and marginalised
posteriors give the same answers.  With S draws (chains stacked) of β, σ, per term
Σ_t = diag(τ_t) Ω_t diag(τ_t) and the group effects b_t:

- :func:`predict`: η_s = x β_s + Σ_t z_t b_t,s[level] per draw (brms's ``posterior_epred``);
  ``kind="response"`` adds ε_s ~ N(0, σ_s²) (``posterior_predict``).
- :func:`loo`: PSIS-LOO (ArviZ) of the pointwise log-likelihood
  log N(y_i | η_i,s, σ_s²) (by observation, conditional on b), or of each group's
  marginal log-likelihood with its effects integrated out (by group; :func:`group_loglik`).
- :func:`hypothesis`: brms's ``hypothesis()`` on expressions of parameter labels.
- :func:`bayes_r2`: Gelman, Goodrich, Gabry & Vehtari (2019), marginal and conditional.
- :func:`compare_models`: ``az.compare`` of the models' LOO.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy import stats

from .. import names
from ..design import (
    Design,
    check_prediction_kind,
    group_effect_modes,
    new_rows,
)
from ..errors import BayesLMMError, LOOWarning
from ..rng import rng_from
from .priors import Prior
from .summary import summarize

#: Pareto k above which PSIS-LOO is unreliable (Vehtari et al. 2024): 0.7, or ArviZ's lower
#: ``min(1 - 1/log10(S), 0.7)`` for fewer than 2,154 draws
PARETO_K_MAX = 0.7
#: what ``loo``'s ``by`` may be
LOO_BY = ("observation", "group")
#: bytes of draws x groups x K x K arrays computed at once by :func:`group_loglik`
_CHUNK_BYTES = 64 * 2**20


class PosteriorLike(Protocol):
    """What the functions here read of a :class:`~bayeslmm.bayes.posterior.Posterior`."""

    @property
    def design(self) -> Design: ...

    @property
    def ci_prob(self) -> float: ...

    @property
    def ci_kind(self) -> str: ...

    @property
    def priors(self) -> Mapping[str, Prior]: ...

    def parameter_draws(self) -> xr.DataArray: ...

    def ranef_draws(self, factor: str) -> xr.DataArray: ...


def term_draws(
    design: Design, flat: Callable[[list[str]], np.ndarray], n: int
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per term, the SD draws (n, k) and correlation matrices (n, k, k); ``flat(labels)``
    gives the (n, len(labels)) draws of parameters labelled as compare() labels them."""
    sd, corr = [], []
    for t in design.terms:
        sd.append(flat([names.sd_label(t.group, c) for c in t.cnames]))
        omega = np.repeat(np.eye(t.nc)[None], n, axis=0)
        for j in range(t.nc):
            for i in range(j + 1, t.nc):
                r = flat([names.corr_label(t.group, t.cnames[j], t.cnames[i])])[:, 0]
                omega[:, i, j] = omega[:, j, i] = r
        corr.append(omega)
    return tuple(sd), tuple(corr)


@dataclass(frozen=True)
class Draws:
    """Every draw of a posterior, chains stacked (S = chains x draws), in the design's
    term order: ``fixef`` (S, p), ``sigma`` (S,), per term ``sd`` (S, k), ``corr`` (S, k, k)
    and ``ranef`` (S, ℓ, k)."""

    chains: int
    length: int
    fixef: np.ndarray
    sigma: np.ndarray
    sd: tuple[np.ndarray, ...]
    corr: tuple[np.ndarray, ...]
    ranef: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, post: PosteriorLike) -> Draws:
        """The draws of ``post``, read through its public vocabulary."""
        design = post.design
        draws = post.parameter_draws().transpose(*names.SAMPLE_DIMS, "parameter")
        chains, length = draws.shape[:2]
        S = chains * length
        values = draws.to_numpy().reshape(S, -1)
        where = {label: i for i, label in enumerate(draws.coords["parameter"].values)}

        def flat(labels: list[str]) -> np.ndarray:
            return values[:, [where[label] for label in labels]]

        sd, corr = term_draws(design, flat, S)
        ranef = []
        by_factor = {f: post.ranef_draws(f) for f in design.group_factors}
        start: dict[str, int] = {}
        for t in design.terms:
            b = by_factor[t.factor].transpose(*names.SAMPLE_DIMS, t.factor, "term")
            levels = [str(v) for v in b.coords[t.factor].values]
            if levels != list(t.levels):
                raise BayesLMMError(f"the posterior's levels of {t.factor!r} are not the design's")
            first = start.get(t.factor, 0)  # the factor's terms side by side, in term order
            start[t.factor] = first + t.nc
            ranef.append(b.to_numpy()[..., first : first + t.nc].reshape(S, t.nl, t.nc))
        return cls(
            chains=chains,
            length=length,
            fixef=flat([names.fixef_label(c) for c in design.fixef_names]),
            sigma=flat([names.SIGMA])[:, 0],
            sd=sd,
            corr=corr,
            ranef=tuple(ranef),
        )

    @property
    def n(self) -> int:
        """S, the number of draws."""
        return len(self.sigma)

    def cov_factor(self, i: int) -> np.ndarray:
        """L with L Lᵀ = Σ_t = diag(τ) Ω diag(τ) of term ``i``, per draw: (S, k, k)."""
        return self.sd[i][:, :, None] * _psd_factor(self.corr[i])

    def as_array(self, dim: str, values: np.ndarray, coords: Any = None) -> xr.DataArray:
        """(S, m) values as a DataArray (chain, draw, ``dim``)."""
        return xr.DataArray(
            values.reshape(self.chains, self.length, -1),
            dims=(*names.SAMPLE_DIMS, dim),
            coords=None if coords is None else {dim: np.asarray(coords)},
        )


def _psd_factor(omega: np.ndarray) -> np.ndarray:
    """A lower factor L of each (k, k) correlation matrix (L Lᵀ = Ω): Cholesky, or the
    symmetric square root where Cholesky fails (Ω singular at ±1)."""
    try:
        return np.linalg.cholesky(omega)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(omega)
        return v * np.sqrt(np.clip(w, 0, None))[..., None, :]


def _rng(seed: Any) -> np.random.Generator:
    return rng_from(seed, BayesLMMError)


# --------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------


def predict(
    post: PosteriorLike,
    newdata: pd.DataFrame | None = None,
    group_effects: str | Mapping[str, str] = "observed",
    kind: str = "mean",
    seed: int | np.random.Generator | None = None,
    summary: bool = True,
) -> pd.DataFrame | xr.DataArray:
    """Posterior predictions on ``newdata``'s rows (the data's own when None).

    Per draw s: ``η_s = x β_s + Σ_t z_t b_t`` with, per grouping factor, ``b`` by
    ``group_effects``: "observed" each level's own draw b_s (a level the data lack:
    b = 0, the population line); "new" a fresh b ~ N(0, Σ_t,s) per level of ``newdata``
    and draw, shared by that level's rows (every level treated as a new group: brms's
    ``sample_new_levels = "gaussian"``); "none" b = 0 (brms's ``re_formula = NA``).  A
    dict sets it per factor (others "observed").  ``kind="response"`` adds
    ε ~ N(0, σ_s²) (``posterior_predict``; "mean" is ``posterior_epred``).

    ``summary=True``: a DataFrame indexed like ``newdata``: ``mean``, ``sd`` and the
    posterior's interval columns; ``summary=False``: the draws, DataArray (chain, draw,
    obs).  ``seed`` makes "new" and "response" reproducible.
    """
    design = post.design
    modes = group_effect_modes(design, group_effects)
    check_prediction_kind(kind)
    rng = _rng(seed)
    rows = new_rows(design, newdata)
    d = Draws.of(post)
    observed = [
        d.ranef[i] if modes[t.factor] == "observed" else None for i, t in enumerate(design.terms)
    ]
    eta = rows.linear_predictor(d.fixef, observed)
    for i, tr in enumerate(rows.terms):
        if modes[tr.term.factor] != "new":
            continue
        _, level = np.unique(tr.labels.astype(str), return_inverse=True)
        z = rng.standard_normal((d.n, level.max() + 1, tr.term.nc))
        b = np.einsum("skl,sjl->sjk", d.cov_factor(i), z)
        eta += np.einsum("smk,mk->sm", b[:, level], tr.X)
    if kind == "response":
        scale = design.residual_scale() if newdata is None else None  # weights: own rows
        noise = d.sigma[:, None] * rng.standard_normal(eta.shape)
        eta += noise if scale is None else noise * scale
    draws = d.as_array(names.OBS, eta, rows.index)
    if not summary:
        return draws
    return summarize(
        draws, rows.index, kind=post.ci_kind, prob=post.ci_prob, stats=("mean", "sd", "ci")
    )


# --------------------------------------------------------------------------------------
# Log-likelihoods and LOO
# --------------------------------------------------------------------------------------


def pointwise_loglik(post: PosteriorLike) -> xr.DataArray:
    """log N(y_i | η_i,s, σ_s²) with η = Xβ + Zb per draw: (chain, draw, obs)."""
    design, d = post.design, Draws.of(post)
    ll = new_rows(design).linear_predictor(d.fixef, d.ranef)  # η, then in place:
    np.subtract(design.y[None, :], ll, out=ll)
    scale = design.residual_scale()  # 1/sqrt(w_i) with weights: σ_i = σ·scale_i
    if scale is not None:
        ll /= scale
    np.divide(ll, d.sigma[:, None], out=ll)
    np.square(ll, out=ll)
    ll *= -0.5
    ll -= (np.log(d.sigma) + 0.5 * math.log(2 * math.pi))[:, None]
    if scale is not None:
        ll -= np.log(scale)
    return d.as_array(names.OBS, ll)


def integrated_terms(design: Design, factor: str) -> tuple[list[int], list[int]]:
    """Leaving out a level of ``factor``: the terms whose effects its marginal likelihood
    integrates out (the factor's own terms and those of factors nested in it: all their
    rows lie in one level) and the terms it conditions on (crossed factors, and factors
    ``factor`` is nested in), as indices into ``design.terms``."""
    own = design.factor_terms(factor)
    if not own:
        raise BayesLMMError(
            f"unknown grouping factor {factor!r}; have {', '.join(design.group_factors)}"
        )
    inner = [
        i
        for i, t in enumerate(design.terms)
        if t.factor == factor or (t.factor != factor and t.nested_in(own[0]))
    ]
    return inner, [i for i in range(len(design.terms)) if i not in inner]


def group_loglik(post: PosteriorLike, factor: str) -> xr.DataArray:
    """Each level j of ``factor``: log p(y_j | β, σ, Σ, b_other) per draw, the group's
    effects integrated out exactly: (chain, draw, factor).

    ``y_j ~ N(X_jβ + Σ_{conditioned t} Z_t,j b_t, σ²I + W_j S W_jᵀ)`` with W_j the
    columns of every integrated effect in the group's rows (:func:`integrated_terms`:
    the level's own effects and those of levels nested in it) and S their prior
    covariance blkdiag(Σ_t).  With L Lᵀ = S (per draw, block diagonal) and
    M = I + LᵀW_jᵀW_jL/σ² (Woodbury and the determinant lemma)::

        log|C| = n_j log σ² + log|M|
        rᵀC⁻¹r = (rᵀr − vᵀM⁻¹v/σ²)/σ²,   v = LᵀW_jᵀr,  r = y_j − mean

    vectorised over draws and groups (groups padded to the largest K_j with zero
    columns, which add nothing).
    """
    design, d = post.design, Draws.of(post)
    if design.residual_scale() is not None:
        raise BayesLMMError(
            "leave-one-group-out LOO does not take weights yet: use loo(by='observation')"
        )
    inner, outer = integrated_terms(design, factor)
    main = design.factor_terms(factor)[0]
    group = main.codes
    J, n = main.nl, design.nobs
    # residual after the fixed part and the conditioned terms
    ranef = [d.ranef[i] if i in outer else None for i in range(len(design.terms))]
    r = design.y[None, :] - new_rows(design).linear_predictor(d.fixef, ranef)
    # per row and integrated term, its column offset within its group's block
    offset = np.zeros(J, dtype=np.intp)
    slots: list[tuple[int, np.ndarray, np.ndarray]] = []  # (term, row offsets, group of level)
    for i in inner:
        t = design.terms[i]
        level_group = np.zeros(t.nl, dtype=np.intp)
        level_group[t.codes] = group  # nested: each level lies in one group
        level_offset = np.empty(t.nl, dtype=np.intp)
        for level in range(t.nl):  # levels in order, each takes k columns of its group
            g = level_group[level]
            level_offset[level] = offset[g]
            offset[g] += t.nc
        slots.append((i, level_offset, level_group))
    K = int(offset.max())
    W = np.zeros((n, K))  # each row's integrated columns, at their offsets in its group
    for i, level_offset, _ in slots:
        t = design.terms[i]
        W[np.arange(n)[:, None], level_offset[t.codes][:, None] + np.arange(t.nc)] = t.X
    G = np.zeros((J, K, K))  # W_jᵀW_j
    np.add.at(G, group, W[:, :, None] * W[:, None, :])
    counts = np.bincount(group, minlength=J)
    indicator = sp.csr_matrix((np.ones(n), (group, np.arange(n))), shape=(J, n))
    rT = np.ascontiguousarray(r.T)  # (n, S): sums over a group's rows as sparse products
    del r
    Wr = np.stack([indicator.multiply(W[:, c]).tocsr() @ rT for c in range(K)], axis=-1)
    rr = indicator @ (rT**2)  # (J, S)
    del rT
    factors = {i: d.cov_factor(i) for i in inner}
    out = np.empty((d.n, J))
    step = max(1, _CHUNK_BYTES // (8 * J * K * K * 4))
    for s0 in range(0, d.n, step):
        sl = slice(s0, s0 + step)
        m = len(d.sigma[sl])
        L = np.zeros((m, J, K, K))
        for i, level_offset, level_group in slots:
            for a in range(design.terms[i].nc):
                for b in range(design.terms[i].nc):
                    L[:, level_group, level_offset + a, level_offset + b] = factors[i][
                        sl, None, a, b
                    ]
        Lt = np.swapaxes(L, -1, -2)
        s2 = d.sigma[sl, None] ** 2
        M = np.eye(K) + (Lt @ G[None] @ L) / s2[..., None, None]
        chol = np.linalg.cholesky(M)
        logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        v = Lt @ np.swapaxes(Wr[:, sl], 0, 1)[..., None]  # LᵀWᵀr: (m, J, K, 1)
        w = np.linalg.solve(chol, v)[..., 0]  # chol⁻¹ v: vᵀM⁻¹v = |w|²
        quad = (rr[:, sl].T - (w**2).sum(-1) / s2) / s2
        out[sl] = -0.5 * (counts * (math.log(2 * math.pi) + np.log(s2)) + logdet + quad)
    return d.as_array(factor, out, list(main.levels))


def loo(post: PosteriorLike, by: str = "observation", factor: str | None = None) -> Any:
    """PSIS-LOO (``az.loo``, pointwise) by observation or by group.

    ``by="observation"``: leave one observation out, the log-likelihood conditional on
    the group effects (brms's ``loo``).  ``by="group"``: leave one level of ``factor`` out
    (its marginal likelihood, :func:`group_loglik`): how well the model predicts a new
    group.  ``factor`` must be named when the model has several grouping factors; its
    nested factors' effects are integrated with it, crossed factors' effects are
    conditioned on.  Returns ArviZ's ELPDData (``elpd``, ``se``, ``p``, ``pareto_k``,
    ``elpd_i``); warns (:class:`~bayeslmm.LOOWarning`) naming the observations or groups
    whose Pareto k exceeds 0.7 (ArviZ's ``good_k``, lower for fewer than 2,154 draws).
    """
    design = post.design
    if by not in LOO_BY:
        raise BayesLMMError(f"by must be 'observation' or 'group', got {by!r}")
    if by == "observation":
        if factor is not None:
            raise BayesLMMError("factor is for by='group'")
        ll = pointwise_loglik(post)
        what = "observation{}"
    else:
        factor = _loo_factor(design, factor)
        ll = group_loglik(post, factor)
        what = "level{} of " + factor
    import arviz as az  # 2 s to import: only LOO pays

    params = post.parameter_draws()
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"parameters": params.drop_vars(list(params.coords))}),
            "log_likelihood": xr.Dataset({names.Y: ll}),
        }
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        result = az.loo(tree, pointwise=True)
    k = result.pareto_k
    threshold = min(float(result.good_k), PARETO_K_MAX)
    bad = np.flatnonzero(k.to_numpy() > threshold)
    if len(bad):
        labels = (
            ll.coords[ll.dims[-1]].values if ll.dims[-1] in ll.coords else np.arange(ll.shape[-1])
        )
        shown = ", ".join(f"{labels[i]} (k={float(k[i]):.2f})" for i in bad[:8])
        warnings.warn(
            f"PSIS-LOO {by}: Pareto k > {threshold:.2f} for {len(bad)} "
            f"{what.format('s' if len(bad) > 1 else '')}: {shown}"
            f"{', ...' if len(bad) > 8 else ''}; the elpd estimate is unreliable there (more "
            "draws, or exact refits without them)",
            LOOWarning,
            stacklevel=3,
        )
    return result


def _loo_factor(design: Design, factor: str | None) -> str:
    if factor is None:
        if len(design.group_factors) > 1:
            raise BayesLMMError(
                "by='group' leaves out one level of a grouping factor: name it with factor= "
                f"(one of {', '.join(design.group_factors)}); the effects of factors nested "
                "in it are integrated out with it, those of crossed factors conditioned on"
            )
        return design.group_factors[0]
    integrated_terms(design, factor)  # checks the name
    return factor


def compare_models(
    models: Mapping[str, Any],
    by: str = "observation",
    factor: str | None = None,
    *,
    round_to: int | str = "none",
) -> pd.DataFrame:
    """Rank posteriors by their expected log predictive density (``az.compare``).

    ``models`` maps a name to a Posterior (its :func:`loo` by ``by`` / ``factor`` is
    computed) or to a LOO result already computed.  Posteriors must share the data (the
    same response values; by group the same levels of ``factor``).  Returns ArviZ's table:
    ``rank``, ``elpd``, ``elpd_diff``, ``dse``, ``p``, ``weight``, ... best first, unrounded
    (``round_to="auto"``: ArviZ's rounding by the standard errors).  REML fits are
    compared by their AIC and BIC (``fit.aic``, ``fit.bic``) and the likelihood-ratio test
    (:func:`bayeslmm.anova`), not here.
    """
    if not isinstance(models, Mapping) or len(models) < 2:
        raise BayesLMMError("compare_models needs a dict of at least two named models")
    results, ys, groups = {}, {}, {}
    for name, model in models.items():
        if hasattr(model, "elpd") and hasattr(model, "pareto_k"):
            results[name] = model
            continue
        if not (hasattr(model, "design") and hasattr(model, "parameter_draws")):
            hint = " (REML fits: fit.aic, fit.bic, blm.anova)" if hasattr(model, "aic") else ""
            raise BayesLMMError(
                f"model {name!r} is a {type(model).__name__}, not a Posterior or a LOO result{hint}"
            )
        ys[name] = model.design.y
        if by == "group":
            used = _loo_factor(model.design, factor)
            groups[name] = (used, model.design.factor_terms(used)[0].levels)
        results[name] = loo(model, by=by, factor=factor)
    first = next(iter(ys.values()), None)
    for name, y in ys.items():
        if first is not None and not (len(y) == len(first) and np.array_equal(y, first)):
            raise BayesLMMError(f"model {name!r} was fitted to other data than the others")
    if len(set(groups.values())) > 1:
        left_out = {name: g[0] for name, g in groups.items()}
        raise BayesLMMError(f"by group, the models leave out different groups: {left_out}")
    sizes = {name: r.n_data_points for name, r in results.items()}
    if len(set(sizes.values())) > 1:
        raise BayesLMMError(f"the LOO results have different numbers of data points: {sizes}")
    import arviz as az

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        table: pd.DataFrame = az.compare(results, round_to=round_to)
    return table


# --------------------------------------------------------------------------------------
# Hypotheses
# --------------------------------------------------------------------------------------

_OPS: dict[type, str] = {ast.Lt: "<", ast.Gt: ">", ast.LtE: "<=", ast.GtE: ">=", ast.Eq: "="}
_FUNCS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}
_BINOPS = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}


@dataclass(frozen=True)
class Hypothesis:
    """A parsed hypothesis ``lhs op rhs``: ``expr`` the AST of lhs − rhs, ``op`` one of
    <, >, <=, >=, =; ``labels`` the parameter labels it uses."""

    text: str
    expr: ast.expr
    op: str
    labels: tuple[str, ...]

    def evaluate(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """lhs − rhs with each label's draws from ``values``."""
        return np.asarray(_evaluate(self.expr, values, self.labels), dtype=float)


def parse_hypothesis(text: str, labels: Sequence[str]) -> Hypothesis:
    """Parse ``"fixef[Days] > 5"``, ``"fixef[Days] - 10 = 0"``, ``"sd_Subject[Days] <
    sd_Subject[(Intercept)] / 2"`` (safely: an AST of numbers, the parameter ``labels``,
    + − * / **, exp/log/sqrt/abs and one comparison)."""
    if not isinstance(text, str) or not text.strip():
        raise BayesLMMError(f"a hypothesis is a string such as 'fixef[Days] > 5', got {text!r}")
    code = text
    used: list[str] = []
    for label in sorted(labels, key=len, reverse=True):
        pattern = re.escape(label).replace(r",\ ", r"\s*,\s*").replace(r"\[", r"\[\s*")
        pattern = pattern[: -len(r"\]")] + r"\s*\]" if pattern.endswith(r"\]") else pattern
        pattern = r"(?<![\w.\]])" + pattern + (r"(?![\w.\[])" if not label.endswith("]") else "")
        placeholder = f" _p{len(used)}_ "
        code, hits = re.subn(pattern, placeholder, code)
        if hits:
            used.append(label)
    rest = re.sub(r"_p\d+_", "", code)
    words = re.finditer(r"(?<![\w.])[A-Za-z_][\w.]*(?:\s*\[[^\]]*\])?", rest)
    leftover = next((w for w in words if w.group(0) not in _FUNCS), None)
    if leftover:
        import difflib

        near = difflib.get_close_matches(leftover.group(0), list(labels), n=3, cutoff=0.5)
        raise BayesLMMError(
            f"unknown parameter {leftover.group(0)!r} in hypothesis {text!r}"
            + (f"; did you mean {', '.join(repr(x) for x in near)}?" if near else "")
            + f" (labels: {', '.join(labels)})"
        )
    code = re.sub(r"(?<![<>=!])=(?!=)", "==", code)
    try:
        tree = ast.parse(code.strip(), mode="eval").body
    except SyntaxError:
        raise BayesLMMError(f"cannot parse hypothesis {text!r}") from None
    if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and type(tree.ops[0]) in _OPS):
        raise BayesLMMError(
            f"a hypothesis compares two sides with one of <, >, <=, >=, =: {text!r} "
            "(e.g. 'fixef[Days] > 5' or 'fixef[Days] - 10 = 0')"
        )
    expr = ast.BinOp(left=tree.left, op=ast.Sub(), right=tree.comparators[0])
    _check_nodes(expr, text)
    return Hypothesis(text, expr, _OPS[type(tree.ops[0])], tuple(used))


def _check_nodes(node: ast.AST, text: str) -> None:
    allowed: tuple[type, ...] = (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call)
    allowed += (ast.Load, *_BINOPS, ast.USub, ast.UAdd)
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            raise BayesLMMError(f"hypothesis {text!r} uses {type(sub).__name__}: not allowed")
        if isinstance(sub, ast.Constant) and not isinstance(sub.value, int | float):
            raise BayesLMMError(f"hypothesis {text!r} has a non-number constant {sub.value!r}")
        if isinstance(sub, ast.Call) and not (
            isinstance(sub.func, ast.Name) and sub.func.id in _FUNCS and len(sub.args) == 1
        ):
            raise BayesLMMError(
                f"hypothesis {text!r}: only {', '.join(_FUNCS)} of one argument may be called"
            )


def _evaluate(node: ast.expr, values: Mapping[str, np.ndarray], labels: Sequence[str]) -> Any:
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # _check_nodes
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[labels[int(node.id[2:-1])]]
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, values, labels)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        op = _BINOPS[type(node.op)]
        return op(_evaluate(node.left, values, labels), _evaluate(node.right, values, labels))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _FUNCS[node.func.id](_evaluate(node.args[0], values, labels))
    raise BayesLMMError(f"cannot evaluate {ast.dump(node)}")  # _check_nodes prevents it


def hypothesis(
    post: PosteriorLike,
    hypotheses: str | Sequence[str],
    *,
    prior_draws: int = 4000,
    seed: int | None = None,
) -> pd.DataFrame:
    """brms's ``hypothesis()``: one row per hypothesis ``lhs op rhs`` on parameter labels.

    Columns: ``estimate`` and ``sd`` of lhs − rhs over the draws, its interval (the
    posterior's kind and probability, two-sided), ``post_prob`` and ``evid_ratio``, and
    ``star`` ("*" where the interval excludes 0).  One-sided (``<``, ``>``, ``<=``,
    ``>=``): ``post_prob`` = the share of draws where the hypothesis holds,
    ``evid_ratio`` = post_prob / (1 − post_prob) (inf when every draw agrees).
    Two-sided (``=``): ``post_prob`` NaN and ``evid_ratio`` the Savage–Dickey ratio
    p(lhs − rhs = 0 | y) / p(lhs − rhs = 0), Gaussian KDEs of the posterior draws and of
    ``prior_draws`` draws from the model's priors (> 1 favours the hypothesis; NaN with
    ``prior_draws=0``).  Labels are those of ``compare()``: ``fixef[Days]``,
    ``sd_Subject[Days]``, ``corr_Subject[(Intercept), Days]``, ``sigma``.
    """
    texts = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    draws = post.parameter_draws()
    labels = [str(x) for x in draws.coords["parameter"].values]
    parsed = [parse_hypothesis(t, labels) for t in texts]
    flat = draws.transpose(*names.SAMPLE_DIMS, "parameter").to_numpy()
    values = {label: flat[..., j] for j, label in enumerate(labels)}
    prior: dict[str, np.ndarray] | None = None
    if prior_draws and any(h.op == "=" for h in parsed):
        prior = _prior_values(post, int(prior_draws), seed)
    lb, ub = names.ci_columns(post.ci_kind, post.ci_prob)
    rows = []
    for h in parsed:
        x = h.evaluate(values)
        da = xr.DataArray(x[..., None], dims=(*names.SAMPLE_DIMS, "h"))
        table = summarize(
            da, pd.Index([0]), kind=post.ci_kind, prob=post.ci_prob, stats=("mean", "sd", "ci")
        )
        row = table.iloc[0].rename({"mean": "estimate"}).to_dict()
        flat_x = x.ravel()
        if h.op == "=":
            row["post_prob"] = math.nan
            row["evid_ratio"] = (
                math.nan if prior is None else _savage_dickey(flat_x, h.evaluate(prior))
            )
        else:
            holds = {"<": flat_x < 0, "<=": flat_x <= 0, ">": flat_x > 0, ">=": flat_x >= 0}[h.op]
            p = float(holds.mean())
            row["post_prob"] = p
            row["evid_ratio"] = math.inf if p == 1 else p / (1 - p)
        row["star"] = "*" if not row[lb] <= 0 <= row[ub] else ""
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(texts, name="hypothesis"))
    return out[["estimate", "sd", lb, ub, "post_prob", "evid_ratio", "star"]]


def _prior_values(post: PosteriorLike, n: int, seed: int | None) -> dict[str, np.ndarray]:
    """``n`` prior draws of every parameter label, from the model's PyMC model (not
    :func:`~bayeslmm.bayes.sampling.prior_parameter_draws`: sampling imports posterior)."""
    import pymc as pm

    from .model import build_pymc_model
    from .parameterization import choose_parameterization

    design = post.design
    pymc_model = build_pymc_model(design, post.priors, choose_parameterization(design))
    wanted = [names.FIXEF, names.SIGMA] + [names.sd(t.group) for t in design.terms]
    wanted += [names.corr(t.group) for t in design.terms if t.nc > 1]
    values = pm.draw([pymc_model[v] for v in wanted], draws=n, random_seed=_rng(seed))
    drawn = {v: np.asarray(a).reshape(n, -1) for v, a in zip(wanted, values, strict=True)}
    out: dict[str, np.ndarray] = {}
    for p in design.parameters:
        if p.kind == "fixef":
            out[p.label] = drawn[names.FIXEF][:, design.fixef_names.index(str(p.var1))]
        elif p.kind == "sigma":
            out[p.label] = drawn[names.SIGMA][:, 0]
        else:
            assert p.grp is not None
            term = next(t for t in design.terms if t.group == p.grp)
            j = term.cnames.index(str(p.var1))
            if p.kind == "sd":
                out[p.label] = drawn[names.sd(p.grp)][:, j]
            else:
                i = term.cnames.index(str(p.var2))
                out[p.label] = drawn[names.corr(p.grp)][:, i * term.nc + j]
    return out


def _savage_dickey(posterior: np.ndarray, prior: np.ndarray) -> float:
    """p(0 | y) / p(0), Gaussian KDEs (Scott's bandwidth) of the draws."""
    posterior, prior = posterior[np.isfinite(posterior)], prior[np.isfinite(prior)]
    if np.ptp(prior) == 0 or np.ptp(posterior) == 0:
        return math.nan
    return float(stats.gaussian_kde(posterior)(0.0)[0] / stats.gaussian_kde(prior)(0.0)[0])


# --------------------------------------------------------------------------------------
# Bayesian R²
# --------------------------------------------------------------------------------------


def bayes_r2(post: PosteriorLike, summary: bool = True) -> pd.DataFrame | xr.DataArray:
    """Bayesian R² (Gelman, Goodrich, Gabry & Vehtari 2019), per draw s::

        R²_s = V(ŷ_s) / (V(ŷ_s) + V(y − ŷ_s))       (V: variance over the observations)

    ``conditional``: ŷ_s = Xβ_s + Zb_s; ``marginal``: ŷ_s = Xβ_s (brms's ``bayes_R2``,
    with ``re_formula = NA`` for the marginal one: residual-based, so the group effects
    count as unexplained variance in it).  ``summary=True``: a DataFrame indexed
    ``marginal``, ``conditional`` with ``mean``, ``sd`` and the interval columns;
    ``summary=False``: the draws, DataArray (chain, draw, r2).
    """
    design, d = post.design, Draws.of(post)
    rows = new_rows(design)
    out = []
    for ranef in (None, d.ranef):
        fitted = rows.linear_predictor(d.fixef, ranef)
        v_fit = fitted.var(axis=1, ddof=1)
        v_res = (design.y[None, :] - fitted).var(axis=1, ddof=1)
        out.append(v_fit / (v_fit + v_res))
    kinds = pd.Index(["marginal", "conditional"], name="r2")
    draws = d.as_array("r2", np.stack(out, axis=1), kinds)
    if not summary:
        return draws
    return summarize(draws, kinds, kind=post.ci_kind, prob=post.ci_prob, stats=("mean", "sd", "ci"))

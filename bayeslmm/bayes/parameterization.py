"""How the random effects are sampled: integrated out ("marginal") or, per term, centred
or non-centred.

``parameterization="auto"`` integrates b out (:mod:`.marginal`): every effect
("marginal": the sampled posterior then has no funnel and no centring choice), or, where
crossed factors make that dear, the effects of the factor with the most effects only
("partial": the other terms' effects are sampled, centred or not per term as below); the
choice is by estimated time per iteration (:func:`auto_choice`).  "centered" and
"noncentered" give the latent forms (PyMC), per term as follows.

Per term, the information ratio
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..design import Design, ReTerm
from ..errors import SamplingError

Parameterization = Literal["auto", "marginal", "partial", "centered", "noncentered"]
FORMS = ("auto", "marginal", "partial", "centered", "noncentered")

#: information ratio at and above which a latent term is centred
CENTER_RATIO = 3.0
#: the measured cost of a marginal gradient's crossed part (2-core x86_64): ms per 10⁶
#: pairs of block-2 effects met in one block-1 level (Σ_l m_l²) and per 10⁶ of q₂³ (the
#: dense block 2's Cholesky and inverse).  Predicted / measured: 100 x 100 fully crossed
#: 8.5 / 7.7 ms; 2000 students x 200, 400, 800 instructors (10 ratings each) 5.6 / 5.7,
#: 33.6 / 30, 258 / 260 ms.
MS_PER_MILLION_PAIRS, MS_PER_MILLION_Q2_CUBED = 8.0, 0.5
#: the partially marginal gradient (2-core x86_64, shared): ms per 10⁶ block-1 x sampled
#: couplings (pairs of levels met x k₁ x k) and per block-1 level x k₁²; predicted /
#: measured: 40 x 40 and 100 x 100 2-condition crossed 0.085 / 0.078, 0.31 / 0.21 ms,
#: KB07-shaped reduced 0.42 / 0.42, nested 300 x 4 0.46 / 0.47 ms
MS_PER_MILLION_ENTRIES, MS_PER_LEVEL_K2 = 3.0, 3.7e-4
#: leapfrog steps per iteration per dim^¼ (:func:`leapfrogs`)
LEAPFROGS_PER_DIM4 = 8.0
#: the partially marginal form is chosen when estimated this many times cheaper
PARTIAL_MARGIN = 0.5


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


def choose_parameterization(design: Design, parameterization: str = "auto") -> dict[str, str]:
    """Per term group ``"marginal"``, ``"centered"`` or ``"noncentered"`` from a
    :data:`Parameterization` (see the module docstring); "partial" and, where it pays,
    "auto" mix integrated (``"marginal"``) and sampled terms (:func:`auto_choice`)."""
    if parameterization not in FORMS:
        raise SamplingError(
            f"parameterization must be one of {', '.join(repr(f) for f in FORMS)}, "
            f"got {parameterization!r}"
        )
    if parameterization in ("marginal", "centered", "noncentered"):
        return {t.group: parameterization for t in design.terms}
    if parameterization == "partial":
        return partial_parameterization(design)
    choice = auto_choice(design)
    return choice.form


def latent_parameterization(design: Design) -> dict[str, str]:
    """Per term: centred when not nested and min_c r_c >= ``CENTER_RATIO``, else non-centred."""
    return {
        t.group: "centered"
        if not any(t.nested_in(other) for other in design.terms)
        and information_ratio(design, t).min() >= CENTER_RATIO
        else "noncentered"
        for t in design.terms
    }


def block_terms(design: Design) -> tuple[list[int], list[int]]:
    """Term indices of the marginal kernel's block 1 (every term of the grouping factor with
    the most random effects: block diagonal, one small block per level) and block 2 (the
    other terms: one dense block)."""
    q: dict[str, int] = {}
    for t in design.terms:
        q[t.factor] = q.get(t.factor, 0) + t.q
    first = max(q, key=lambda f: q[f])
    block1 = [i for i, t in enumerate(design.terms) if t.factor == first]
    return block1, [i for i in range(len(design.terms)) if i not in block1]


@dataclass(frozen=True)
class Choice:
    """What ``parameterization="auto"`` chose (``form``: per term group) and why
    (``reason``, with the estimated milliseconds per NUTS iteration of each option)."""

    form: dict[str, str]
    reason: str
    ms_marginal: float
    ms_partial: float | None


def leapfrogs(dim: int) -> float:
    """The leapfrog steps a NUTS iteration takes, estimated from the sampled dimension:
    ``LEAPFROGS_PER_DIM4 · dim^¼`` (measured at the defaults: 7 parameters about 12, 21
    about 25, 87 and 207 (partially marginal crossed designs) 27-30)."""
    return LEAPFROGS_PER_DIM4 * float(dim) ** 0.25


def _hyper_dim(design: Design) -> int:
    return 1 + sum(t.nc + t.nc * (t.nc - 1) // 2 for t in design.terms)


def _met(design: Design, block1: list[int], others: list[int]) -> tuple[np.ndarray, int]:
    """Per level of block 1, the block-2 columns it meets; and the (level, level) pairs
    weighted by k₁ x k (the couplings the partially marginal gradient walks)."""
    codes1 = design.terms[block1[0]].codes
    k1 = sum(design.terms[i].nc for i in block1)
    meets = np.zeros(design.terms[block1[0]].nl)
    entries = 0
    for i in others:
        t = design.terms[i]
        level = np.unique(codes1.astype(np.int64) * t.nl + t.codes) // t.nl
        meets += t.nc * np.bincount(level, minlength=len(meets))
        entries += len(level) * t.nc * k1
    return meets, entries


def auto_choice(design: Design) -> Choice:
    """The fastest form to a trustworthy posterior, by estimated time per NUTS iteration
    (gradient time x :func:`leapfrogs`; iterations are the same): b integrated out
    ("marginal"), or the grouping factor with the most effects integrated out and the other
    terms' effects sampled ("partial", centred or not per term by the latent rule).  The
    partial form is chosen when estimated ``PARTIAL_MARGIN`` times cheaper (the marginal
    one has no funnel to mix through).  The latent forms are never chosen: the partial one
    has the same sampled effects and fewer (Lai, Domke & Sheldon 2024: never worse)."""
    block1, block2 = block_terms(design)
    k1 = sum(design.terms[i].nc for i in block1)
    l1 = design.terms[block1[0]].nl
    per_level = MS_PER_LEVEL_K2 * l1 * k1 * k1
    q2 = sum(design.terms[i].q for i in block2)
    meets, entries = _met(design, block1, block2)
    pairs = int((meets**2).sum())
    grad_m = per_level + (MS_PER_MILLION_PAIRS * pairs + MS_PER_MILLION_Q2_CUBED * q2**3) / 1e6
    dim = _hyper_dim(design)
    ms_m = grad_m * leapfrogs(dim)
    marginal = {t.group: "marginal" for t in design.terms}
    if not block2:
        return Choice(marginal, "one grouping factor: its effects are integrated out", ms_m, None)
    grad_p = per_level + MS_PER_MILLION_ENTRIES * entries / 1e6
    ms_p = grad_p * leapfrogs(dim + q2)
    factor = design.terms[block1[0]].factor
    costs = f"(estimated {ms_m:,.2f} ms an iteration integrated, {ms_p:,.2f} ms partially)"
    if ms_p < PARTIAL_MARGIN * ms_m:
        return Choice(
            partial_parameterization(design),
            f"the effects of {factor} are integrated out and the other {q2:,} effects sampled "
            f"{costs}: integrating all would couple {pairs:,} pairs of levels",
            ms_m,
            ms_p,
        )
    return Choice(marginal, f"every effect is integrated out {costs}", ms_m, ms_p)


def partial_parameterization(design: Design) -> dict[str, str]:
    """The partially marginal form: the terms of block 1 (the grouping factor with the most
    effects) ``"marginal"``, every other term sampled, centred or not by the latent rule
    (:func:`latent_parameterization`); with one grouping factor, the marginal form."""
    block1, _ = block_terms(design)
    latent = latent_parameterization(design)
    return {
        t.group: "marginal" if i in block1 else latent[t.group] for i, t in enumerate(design.terms)
    }


def is_compiled_form(parameterization: Mapping[str, str]) -> bool:
    """Whether the compiled sampler runs this form: marginal, or partially marginal (some
    terms integrated out, the others sampled)."""
    return "marginal" in set(parameterization.values())


def latent_terms(design: Design, parameterization: Mapping[str, str]) -> dict[int, bool]:
    """The sampled terms of a partially marginal form: term index -> centred."""
    return {
        i: parameterization[t.group] == "centered"
        for i, t in enumerate(design.terms)
        if parameterization[t.group] != "marginal"
    }

"""Predictions with standard errors and Nakagawa's R² from a REML / ML fit.

Prediction (:func:`predict_fit`, behind :meth:`LmerFit.predict`) on rows with fixed-effect
row ``x``, and per term ``t`` the row's random-effect columns ``z_t`` (level ``j``)::

    group_effects="none"      x β̂                          Var: x V xᵀ
    group_effects="observed"  x β̂ + Σ_t z_t b̂_t[j]         Var: [z Λ, x] σ̂² A⁻¹ [z Λ, x]ᵀ
    group_effects="new"       x β̂                          Var: x V xᵀ + Σ_t z_t Σ̂_t z_tᵀ
    kind="response"           the same point               Var: + σ̂²

with V = vcov(β̂) = σ̂²(R_XR_Xᵀ)⁻¹ and A = [[ΛᵀZᵀZΛ + I, ΛᵀZᵀX], [XᵀZΛ, XᵀX]] the PLS
matrix at θ̂: σ̂²A⁻¹ is the covariance of (u, β) given y at θ̂ and σ̂ (its β block is V),
so the "observed" variance counts both the uncertainty of β̂ and that of the level's
conditional modes, and their covariance.  A level the data lack gets b = 0 and no
variance for that term (the population line, as lme4's ``allow.new.levels``).  Every
variance is conditional on the estimated variance components (θ̂, σ̂): the intervals
(normal, ``mean ± z·sd``) ignore their uncertainty, which the posterior's do not: with few
groups a "new" interval from REML is too narrow.

Nakagawa R² (:func:`nakagawa_r2`, behind :meth:`LmerFit.r2`), as
``performance::r2_nakagawa`` computes it for a Gaussian model::

    σ²_f = var(Xβ̂)                     (sample variance over the observations)
    σ²_r = Σ_t mean_i z_t,i Σ̂_t z_t,iᵀ  (Johnson 2014: random slopes over the observed design)
    R²_marginal = σ²_f / (σ²_f + σ²_r + σ̂²),   R²_conditional = (σ²_f + σ²_r) / (same)

For a random-intercept term z_t,i Σ̂_t z_t,iᵀ = τ̂², the Nakagawa & Schielzeth (2013) form.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import stats

from .. import names
from ..design import (
    Design,
    NewRows,
    TermRows,
    check_prediction_kind,
    group_effect_modes,
    new_rows,
)
from ..errors import BayesLMMError
from .pls import template

#: columns of L⁻¹ per sparse solve (bounds the dense right-hand sides)
_CHUNK = 1024


def term_covariances(design: Design, theta: np.ndarray, sigma: float) -> list[np.ndarray]:
    """Σ̂_t = σ̂² T_t T_tᵀ per term (design order)."""
    out = []
    for t, sl in zip(design.terms, design.theta_slices, strict=True):
        T = template(theta[sl], t.nc)
        out.append(sigma**2 * T @ T.T)
    return out


def predict_fit(
    design: Design,
    newdata: pd.DataFrame | None,
    *,
    beta: np.ndarray,
    b: np.ndarray,
    theta: np.ndarray,
    sigma: float,
    vcov: np.ndarray,
    group_effects: str | Mapping[str, str] = "observed",
    kind: str = "mean",
    summary: bool = False,
    ci_prob: float | None = None,
    ci_kind: str | None = None,
) -> np.ndarray | pd.DataFrame:
    """Point predictions (ndarray (m)) or, with ``summary``, a DataFrame indexed like
    ``newdata`` with ``mean`` (the point prediction), ``sd`` and the normal interval
    ``mean ± z·sd`` of probability ``ci_prob`` (default 0.89; columns named by
    :func:`names.ci_columns`; the interval is symmetric, so "eti" and "hdi" coincide).
    See the module docstring."""
    modes = group_effect_modes(design, group_effects)
    check_prediction_kind(kind)
    ci_prob = names.DEFAULT_CI_PROB if ci_prob is None else ci_prob
    ci_kind = names.DEFAULT_CI_KIND if ci_kind is None else ci_kind
    if ci_kind not in names.CI_KINDS:
        raise BayesLMMError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
    if not 0 < ci_prob < 1:
        raise BayesLMMError(f"ci_prob must be in (0, 1), got {ci_prob}")
    rows = new_rows(design, newdata)
    per_term = _split(design, b)
    observed = [modes[t.factor] == "observed" for t in design.terms]
    ranef = [bt[None] if obs else None for bt, obs in zip(per_term, observed, strict=True)]
    point = rows.linear_predictor(beta[None], ranef)[0]
    if not summary:
        return point
    var = _observed_variance(design, rows, observed, theta, sigma, vcov)
    for tr, cov in zip(rows.terms, term_covariances(design, theta, sigma), strict=True):
        if modes[tr.term.factor] == "new":
            var = var + np.einsum("mk,kl,ml->m", tr.X, cov, tr.X)
    if kind == "response":
        var = var + sigma**2
    sd = np.sqrt(np.clip(var, 0, None))
    z = stats.norm.ppf(0.5 + ci_prob / 2)
    lb, ub = names.ci_columns(ci_kind, ci_prob)
    return pd.DataFrame(
        {"mean": point, "sd": sd, lb: point - z * sd, ub: point + z * sd}, index=rows.index
    )


def _split(design: Design, b: np.ndarray) -> list[np.ndarray]:
    """b in Z's column order -> per term (ℓ, k)."""
    out, offset = [], 0
    for t in design.terms:
        out.append(b[offset : offset + t.q].reshape(t.nl, t.nc))
        offset += t.q
    return out


def _term_z(rows: TermRows) -> sp.csr_matrix:
    """The new rows' block of Z for one term (m x ℓk): zero where the level is unseen."""
    t, seen = rows.term, rows.seen
    m = len(rows.codes)
    r = np.repeat(np.flatnonzero(seen), t.nc)
    c = (rows.codes[seen][:, None] * t.nc + np.arange(t.nc)[None, :]).ravel()
    return sp.csr_matrix((rows.X[seen].ravel(), (r, c)), shape=(m, t.q))


def _observed_variance(
    design: Design,
    rows: NewRows,
    observed: list[bool],
    theta: np.ndarray,
    sigma: float,
    vcov: np.ndarray,
) -> np.ndarray:
    """Var(x β̂ + Σ_{observed t} z_t b̂_t) at θ̂ (module docstring), or x V xᵀ when no term
    is observed.

    With m = [zΛ, x] and A's blocks L = ΛᵀZᵀZΛ + I, C = ΛᵀZᵀX (the Schur complement
    XᵀX − CᵀL⁻¹C = σ̂²V⁻¹)::

        mᵀA⁻¹m = aᵀL⁻¹a + dᵀ(σ̂²V⁻¹)⁻¹d,   a = Λᵀzᵀ,  d = x − CᵀL⁻¹a

    L is sparse (block diagonal for one term): one sparse LU, solved for the p columns of
    C and for the columns of Z that the new rows use.
    """
    if not any(observed):
        return np.einsum("mp,pq,mq->m", rows.X, vcov, rows.X)
    lam_blocks, new_blocks = [], []
    for t, sl, tr, obs in zip(design.terms, design.theta_slices, rows.terms, observed, strict=True):
        lam_blocks.append(sp.kron(sp.identity(t.nl), sp.csr_matrix(template(theta[sl], t.nc))))
        zt = _term_z(tr)
        new_blocks.append(zt if obs else sp.csr_matrix(zt.shape))
    Lam = sp.block_diag(lam_blocks, format="csc")
    ZL = (design.Z() @ Lam).tocsc()
    q = ZL.shape[1]
    lu = spla.splu((ZL.T @ ZL + sp.identity(q)).tocsc())
    G = lu.solve(np.asarray(ZL.T @ design.X))  # L⁻¹C, (q, p)
    S = design.X.T @ design.X - np.asarray(ZL.T @ design.X).T @ G  # = σ̂² V⁻¹
    a = (sp.hstack(new_blocks, format="csr") @ Lam).tocsr()  # rows aᵀ = zΛ, (m, q)
    d = rows.X - np.asarray(a @ G)
    var = np.einsum("mp,pq,mq->m", d, np.linalg.inv(S), d)
    used = np.unique(a.indices)  # the columns of L⁻¹ the rows need
    if len(used):
        a_used = a[:, used]
        for start in range(0, len(used), _CHUNK):
            cols = used[start : start + _CHUNK]
            unit = np.zeros((q, len(cols)))
            unit[cols, np.arange(len(cols))] = 1.0
            inv_cols = lu.solve(unit)  # L⁻¹[:, cols]
            part = np.asarray(a @ inv_cols)  # (m, chunk): (aᵀL⁻¹)[:, cols]
            var += np.asarray(a_used[:, start : start + len(cols)].multiply(part).sum(axis=1))[:, 0]
    return sigma**2 * var


def nakagawa_r2(design: Design, beta: np.ndarray, theta: np.ndarray, sigma: float) -> pd.Series:
    """Marginal and conditional R² of Nakagawa, Johnson & Schielzeth (2017) (module
    docstring): a Series indexed ``marginal``, ``conditional``."""
    fixed = design.X @ beta
    var_f = float(np.var(fixed, ddof=1)) if design.nobs > 1 else 0.0
    var_r = sum(
        float(np.einsum("nk,kl,nl->n", t.X, cov, t.X).mean())
        for t, cov in zip(design.terms, term_covariances(design, theta, sigma), strict=True)
    )
    total = var_f + var_r + sigma**2
    return pd.Series({"marginal": var_f / total, "conditional": (var_f + var_r) / total}, name="r2")

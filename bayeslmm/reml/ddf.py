"""t-tests of the fixed effects with small-sample df: lmerTest 3.1-3's ``summary(m, ddf=)``.

Both methods work in q-space on the cross-products A = KᵀK, K = [Z X y] (no n x n
matrix).  With H = I + ZΛΛᵀZᵀ (Var y = σ²H), W = H⁻¹ and the REML projection
P = W − WX(XᵀWX)⁻¹XᵀW, Woodbury gives (:class:`Marginal`)

    𝒲 = KᵀWK = A − AᶻΛΩ⁻¹ΛᵀAᶻᵀ,   𝒫 = KᵀPK = 𝒲 − 𝒲_{·x}𝒲_{xx}⁻¹𝒲_{x·},   WK = K·N_w,

Ω = ΛᵀZᵀZΛ + I, N_w = I − S_zΩ⁻¹ΛᵀAᶻᵀ, so KᵀW²K = N_wᵀAN_w and KᵀW³K = N_wᵀ𝒲N_w.  For
θ_i (lme4's layout) ∂(ΛΛᵀ) = D_i = E_iΛᵀ + ΛE_iᵀ with E_i = ∂Λ/∂θ_i, and
∂²(ΛΛᵀ)/∂θ_i∂θ_j = E_iE_jᵀ + E_jE_iᵀ.

* Satterthwaite: df_j = 2·V_j²/(g_jᵀ C g_j) with V_j = Var(β̂_j) = σ²[(XᵀH⁻¹X)⁻¹]_jj,
  g_j = ∂V_j/∂(θ, σ) exact, and C = 2·H_D⁺ the asymptotic covariance of (θ, σ), H_D the
  exact Hessian of the fit's deviance in (θ, σ) (lmerTest's ``devfun_vp``).
* Kenward–Roger: pbkrtest's ``vcovAdj`` (the adjusted covariance Φ_A) and ``Lb_ddf``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import lower_triangle
from ..errors import ConvergenceWarning
from .dense import DenseDeviance
from .inference import Estimates, InferenceError, check_dense
from .optimize import blas_threads

#: ``ddf`` values and their names in lmerTest's summary header
DDF = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger"}


class Marginal:
    """Second-order quantities at one θ (module doc), unit scale (σ = 1).

    ``W`` = KᵀWK, ``P`` = KᵀPK, ``W2`` = KᵀW²K, ``W3`` = KᵀW³K, ``Minv`` = (XᵀWX)⁻¹,
    ``r2`` = yᵀPy, ``Lam`` = Λ, ``E`` the sparse ∂Λ/∂θ_i, ``offdiag`` whether θ_i is a
    covariance (below its template's diagonal).  Dense in q: one evaluation per fit.
    """

    def __init__(self, dev: DenseDeviance, theta: np.ndarray):
        q, p, A = dev.q, dev.p, dev.A
        self.q, self.p, self.n = q, p, dev.n
        self.theta = np.asarray(theta, dtype=float)
        rows, cols, index = dev.lambda_entries
        self.Lam = sp.csr_matrix((self.theta[index], (rows, cols)), shape=(q, q))
        G = np.asarray((self.Lam.T @ A[:q, :]).T)  # AᶻΛ, N x q
        Omega = np.asarray(self.Lam.T @ G[:q]) + np.eye(q)
        Omega_inv = sla.cho_solve(sla.cho_factor(Omega, lower=True), np.eye(q))
        OG = Omega_inv @ G.T  # Ω⁻¹ΛᵀAᶻᵀ, q x N
        self.W = A - G @ OG
        x = slice(q, q + p)
        self.Minv = np.linalg.inv(self.W[x, x])
        WX = self.W[:, x]
        self.P = self.W - WX @ self.Minv @ WX.T
        self.r2 = float(self.P[-1, -1])
        Nw = np.eye(len(A))
        Nw[:q] -= np.asarray(self.Lam @ OG)  # I − S_zΩ⁻¹ΛᵀAᶻᵀ
        self.W2 = Nw.T @ A @ Nw
        self.W3 = Nw.T @ self.W @ Nw
        #: tr(W²) = n − q + ‖Ω⁻¹‖²_F
        self.trace_w2 = float(self.n - q + np.sum(Omega_inv * Omega_inv))
        self.offdiag = np.concatenate(
            [np.not_equal(*lower_triangle(t.nc)) for t in dev.design.terms]
        )
        self.E = []
        for i in range(len(self.theta)):
            sel = index == i
            ones = np.ones(int(sel.sum()))
            self.E.append(sp.csr_matrix((ones, (rows[sel], cols[sel])), shape=(q, q)))

    def D(self, i: int) -> sp.csr_matrix:
        """∂(ΛΛᵀ)/∂θ_i."""
        EL = self.E[i] @ self.Lam.T
        return (EL + EL.T).tocsr()

    def D2(self, i: int, j: int) -> sp.csr_matrix:
        """∂²(ΛΛᵀ)/∂θ_i∂θ_j."""
        EE = self.E[i] @ self.E[j].T
        return (EE + EE.T).tocsr()


def ddf_method(ddf: object) -> str:
    """``ddf`` as a key of :data:`DDF` (lmerTest's spellings "Kenward-Roger",
    "kenward_roger" work too)."""
    key = ddf.lower().replace("_", "-") if isinstance(ddf, str) else ddf
    if key not in DDF:
        raise InferenceError(f"ddf must be 'satterthwaite' or 'kenward-roger', got {ddf!r}")
    return str(key)


def fixef_table(fit: Estimates, ddf: str = "satterthwaite") -> pd.DataFrame:
    """lmerTest's ``summary(m, ddf=...)`` coefficient table (module doc): ``estimate``,
    ``se``, ``df``, ``t`` and the two-sided ``p`` = 2·P(T_df > |t|), one row per fixed
    effect.  ``ddf``: ``"satterthwaite"`` (se from vcov(β̂)) or ``"kenward-roger"`` (REML
    fits only, as lmerTest; se from the adjusted covariance Φ_A)."""
    key = ddf_method(ddf)
    if key == "kenward-roger" and not fit.reml:
        raise InferenceError(
            "ddf='kenward-roger' needs a REML fit (as lmerTest); refit with reml=True "
            "or use ddf='satterthwaite'"
        )
    design = fit.design
    columns = ["estimate", "se", "df", "t", "p"]
    index = pd.Index(list(design.fixef_names), name="term")
    if design.p == 0:
        return pd.DataFrame(columns=columns, index=index, dtype=float)
    check_dense(design, f"ddf={ddf!r}")
    with blas_threads(1):
        mg = Marginal(DenseDeviance(design, reml=fit.reml), fit.theta.to_numpy())
        if key == "satterthwaite":
            V = fit.vcov.to_numpy()
            df = satterthwaite_df(mg, fit.sigma, fit.reml, V)
        else:
            V, df = kenward_roger(mg, fit.sigma, fit.vcov.to_numpy())
    beta = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(V))
    t = beta / se
    from scipy import stats  # loaded on first use

    p = 2 * stats.t.sf(np.abs(t), df)
    return pd.DataFrame(dict(zip(columns, (beta, se, df, t, p), strict=True)), index=index)


def varpar_hessian(mg: Marginal, sigma: float, reml: bool) -> np.ndarray:
    """Exact Hessian of the REML (ML) deviance D(θ, σ) = log|H| [+ log|XᵀH⁻¹X|] + r²(θ)/σ²
    + dof·log(2πσ²) (lmerTest's ``devfun_vp``; dof = n − p or n).

    With Q = ZᵀPZ (REML; ZᵀWZ in ML's log-determinant), Q̃ = ZᵀPZ, v = ZᵀPy, r² = yᵀPy:

        ∂²D/∂θ_i∂θ_j = tr(D_ij Q) − tr(D_iQD_jQ) + (2 vᵀD_iQ̃D_jv − vᵀD_ijv)/σ²
        ∂²D/∂θ_i∂σ   = 2 vᵀD_iv/σ³,     ∂²D/∂σ² = 6r²/σ⁴ − 2·dof/σ²
    """
    q = mg.q
    m = len(mg.theta)
    Qp = mg.P[:q, :q]
    Qd = Qp if reml else mg.W[:q, :q]
    v = mg.P[:q, -1]
    Ds = [mg.D(i) for i in range(m)]
    DQ = [np.asarray(D @ Qd) for D in Ds]
    Dv = [D @ v for D in Ds]
    s2 = sigma * sigma
    H = np.empty((m + 1, m + 1))
    for i in range(m):
        for j in range(i + 1):
            D2 = mg.D2(i, j)
            h = float(D2.multiply(Qd).sum()) - float(np.sum(DQ[i] * DQ[j].T))
            h += (2.0 * float(Dv[i] @ Qp @ Dv[j]) - float(v @ (D2 @ v))) / s2
            H[i, j] = H[j, i] = h
        H[i, m] = H[m, i] = 2.0 * float(v @ Dv[i]) / (s2 * sigma)
    dof = mg.n - mg.p if reml else mg.n
    H[m, m] = 6.0 * mg.r2 / (s2 * s2) - 2.0 * dof / s2
    return H


def vcov_jacobian(mg: Marginal, sigma: float) -> np.ndarray:
    """∂Var(β̂_j)/∂(θ, σ), (m + 1) x p, exact: with M = XᵀWX and B = ZᵀWX,
    ∂Var(β̂)/∂θ_i = σ²M⁻¹BᵀD_iBM⁻¹ and ∂Var(β̂)/∂σ = 2σM⁻¹."""
    q, p = mg.q, mg.p
    MB = mg.Minv @ mg.W[:q, q : q + p].T  # M⁻¹Bᵀ
    rows = [
        sigma**2 * np.einsum("jq,qj->j", MB, np.asarray(mg.D(i) @ MB.T))
        for i in range(len(mg.theta))
    ]
    rows.append(2.0 * sigma * np.diag(mg.Minv))
    return np.array(rows)


def satterthwaite_df(mg: Marginal, sigma: float, reml: bool, V: np.ndarray) -> np.ndarray:
    """Satterthwaite df of each β̂_j: 2·V_jj²/(g_jᵀ C g_j), C = 2·H_D⁺ (Moore–Penrose over
    eigenvalues > 1e-8, as lmerTest), g_j = ∂V_jj/∂(θ, σ)."""
    cov = varpar_covariance(mg, sigma, reml)
    G = vcov_jacobian(mg, sigma)
    return 2.0 * np.diag(V) ** 2 / np.einsum("aj,ab,bj->j", G, cov, G)


def kenward_roger(mg: Marginal, sigma: float, Phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pbkrtest's ``vcovAdj`` and ``Lb_ddf`` of each unit contrast: (Φ_A, df)."""
    PhiA, P, Wv = kenward_roger_parts(mg, sigma, Phi)
    p = Phi.shape[0]
    df = np.array([lb_ddf(np.eye(p)[j], Phi, P, Wv) for j in range(p)])
    return PhiA, df


def kenward_roger_parts(
    mg: Marginal, sigma: float, Phi: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """pbkrtest's ``vcovAdj`` (Kenward & Roger 1997 with a linear covariance structure,
    so no second-derivative term): (Φ_A, its attributes P and W).

    Σ = Σ_r γ_r G_r + σ²I with G_r = Z(I ⊗ E_r)Zᵀ for each covariance entry (E_r symmetric
    0/1), in q-space through Σ⁻¹ = W/σ²:

        P_r = −XᵀΣ⁻¹G_rΣ⁻¹X,  Q_rs = XᵀΣ⁻¹G_rΣ⁻¹G_sΣ⁻¹X,  K_rs = tr(Σ⁻¹G_rΣ⁻¹G_s),
        I_rs = K_rs − 2tr(ΦQ_rs) + tr(ΦP_rΦP_s),  W = 2I⁻¹,
        Φ_A = Φ + 2Φ[Σ_rs W_rs(Q_rs − P_rΦP_s)]Φ.
    """
    q, p = mg.q, mg.p
    B = mg.W[:q, q : q + p]
    Wzz = mg.W[:q, :q]
    s2 = sigma * sigma
    Gs = [(E + E.T).tocsr() if off else E for E, off in zip(mg.E, mg.offdiag, strict=True)]
    m = len(Gs) + 1  # + the residual
    GB = [np.asarray(G @ B) for G in Gs]
    GW = [np.asarray(G @ Wzz) for G in Gs]
    P = [-(B.T @ gb) / s2**2 for gb in GB] + [-mg.W2[q : q + p, q : q + p] / s2**2]
    Q: dict[tuple[int, int], np.ndarray] = {}
    K = np.empty((m, m))
    W2zz, W2zx = mg.W2[:q, :q], mg.W2[:q, q : q + p]
    for r in range(m - 1):
        for s in range(r, m - 1):
            Q[r, s] = GB[r].T @ Wzz @ GB[s] / s2**3
            K[r, s] = float(np.sum(GW[r] * GW[s].T)) / s2**2
        Q[r, m - 1] = GB[r].T @ W2zx / s2**3
        K[r, m - 1] = float(Gs[r].multiply(W2zz).sum()) / s2**2
    Q[m - 1, m - 1] = mg.W3[q : q + p, q : q + p] / s2**3
    K[m - 1, m - 1] = mg.trace_w2 / s2**2
    info = np.empty((m, m))
    for r in range(m):
        for s in range(r, m):
            info[r, s] = info[s, r] = (
                K[r, s]
                - 2 * float(np.sum(Phi * Q[r, s]))
                + float(np.sum((Phi @ P[r]) * (P[s] @ Phi)))
            )
    ev = np.linalg.eigvalsh(info)
    Wv = 2 * (np.linalg.inv(info) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(info))
    U = np.zeros((p, p))
    for r in range(m):
        for s in range(r + 1, m):
            U += Wv[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
    U = U + U.T
    for r in range(m):
        U += Wv[r, r] * (Q[r, r] - P[r] @ Phi @ P[r])
    return Phi + 2 * Phi @ U @ Phi, P, Wv


def lb_ddf(L: np.ndarray, V0: np.ndarray, P: list[np.ndarray], W: np.ndarray) -> float:
    """pbkrtest's ``Lb_ddf`` for a contrast matrix L (full row rank q, or one row):
    Kenward & Roger's E and V of the scaled Wald statistic matched to F(q, df)."""
    return kr_ddf_scale(L, V0, P, W)[0]


def kr_ddf_scale(
    L: np.ndarray, V0: np.ndarray, P: list[np.ndarray], W: np.ndarray
) -> tuple[float, float]:
    """Kenward & Roger's denominator df and F scaling λ for Lβ = 0 (pbkrtest's
    ``Lb_ddf`` and ``KRmodcomp``'s ``F.scaling``: 1 where df is within 0.01 of 4, else
    df·(1 − A₂/q)/(df − 2))."""
    Lm = np.atleast_2d(L)
    Theta = Lm.T @ np.linalg.solve(Lm @ V0 @ Lm.T, Lm)
    u = [Theta @ V0 @ Pi @ V0 for Pi in P]
    tr = [float(np.trace(ui)) for ui in u]
    A1 = A2 = 0.0
    m = len(P)
    for i in range(m):
        for j in range(i, m):
            e = 1.0 if i == j else 2.0
            A1 += e * W[i, j] * tr[i] * tr[j]
            A2 += e * W[i, j] * float(np.sum(u[i] * u[j].T))
    qq = float(Lm.shape[0])
    B = (A1 + 6 * A2) / (2 * qq)
    g = ((qq + 1) * A1 - (qq + 4) * A2) / ((qq + 2) * A2)
    denom = 3 * qq + 2 * (1 - g)
    c1, c2, c3 = g / denom, (qq - g) / denom, (qq + 2 - g) / denom
    V0_ = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0_ = 0.0 if abs(V0_) < 1e-10 else V0_
    num = 1 - A2 / qq
    ratio = 1.0 if abs(num) < 1e-14 and abs(V1) < 1e-14 else num / V1
    rho = (1 / qq) * ratio**2 * V0_ / V2
    df = 4 + (qq + 2) / (qq * rho - 1)
    scale = 1.0 if abs(df - 4) < 1e-2 else df * (1 - A2 / qq) / (df - 2)
    return df, scale


def vcov_derivatives(mg: Marginal, sigma: float) -> np.ndarray:
    """∂Var(β̂)/∂(θ_i, σ) as full p x p matrices, (m + 1, p, p), exact (the matrices whose
    diagonals :func:`vcov_jacobian` gives)."""
    q, p = mg.q, mg.p
    MB = mg.Minv @ mg.W[:q, q : q + p].T  # M⁻¹Bᵀ
    out = [sigma**2 * MB @ np.asarray(mg.D(i) @ MB.T) for i in range(len(mg.theta))]
    out.append(2.0 * sigma * mg.Minv)
    return np.array(out)


def varpar_covariance(mg: Marginal, sigma: float, reml: bool) -> np.ndarray:
    """C = 2·H_D⁺, the asymptotic covariance of (θ, σ) (lmerTest's ``vcov_varpar``)."""
    H = varpar_hessian(mg, sigma, reml)
    w, U = np.linalg.eigh(H)
    if (w < -1e-8).any():
        warnings.warn(
            f"the deviance's Hessian in (theta, sigma) has {int((w < -1e-8).sum())} negative "
            "eigenvalue(s): the model may not have converged",
            ConvergenceWarning,
            stacklevel=5,
        )
    pos = w > 1e-8
    return 2.0 * (U[:, pos] / w[pos]) @ U[:, pos].T


def fstat_ddf(nu: np.ndarray) -> float:
    """lmerTest's ``get_Fstat_ddf``: the F statistic's df from the t-statistics' df ν_m."""
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


class Contrasts:
    """Estimates, SEs, df and F tests of contrasts Lβ of a fit with small-sample df.

    ``ddf="satterthwaite"``: Var(Lβ̂) from vcov(β̂) and df = 2(ℓᵀVℓ)²/(gᵀCg), g_k = ℓᵀ(∂V/∂k)ℓ
    exact (:func:`vcov_derivatives`); F tests as lmerTest's ``contestMD``: the eigenvectors
    of LVLᵀ give independent t statistics, whose df combine by :func:`fstat_ddf`.
    ``ddf="kenward-roger"`` (REML fits): Var from pbkrtest's adjusted Φ_A, df from
    ``Lb_ddf``; F = (Lβ̂)ᵀ(LΦ_ALᵀ)⁻¹(Lβ̂)/q as lmerTest.  One evaluation of the fit's
    second-order quantities (dense in q + p + 1) serves every contrast.
    """

    def __init__(self, fit: Estimates, ddf: str = "kenward-roger"):
        self.method = ddf_method(ddf)
        if self.method == "kenward-roger" and not fit.reml:
            raise InferenceError(
                "ddf='kenward-roger' needs a REML fit (as lmerTest); refit with reml=True "
                "or use ddf='satterthwaite'"
            )
        check_dense(fit.design, f"ddf={ddf!r}")
        self.beta = fit.fixef.to_numpy()
        self.Phi = fit.vcov.to_numpy()
        with blas_threads(1):
            mg = Marginal(DenseDeviance(fit.design, reml=fit.reml), fit.theta.to_numpy())
            if self.method == "satterthwaite":
                self.V = self.Phi
                self.cov = varpar_covariance(mg, fit.sigma, fit.reml)
                self.J = vcov_derivatives(mg, fit.sigma)
            else:
                self.V, self.P, self.Wkr = kenward_roger_parts(mg, fit.sigma, self.Phi)

    def rows(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(estimate, SE, df) of each row ℓ of L."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        est = L @ self.beta
        var = np.einsum("ij,jk,ik->i", L, self.V, L)
        if self.method == "satterthwaite":
            g = np.einsum("ij,mjk,ik->im", L, self.J, L)
            df = 2.0 * var**2 / np.einsum("im,mn,in->i", g, self.cov, g)
        else:
            df = np.array([lb_ddf(row, self.Phi, self.P, self.Wkr) for row in L])
        return est, np.sqrt(var), df

    def f_test(self, L: np.ndarray) -> tuple[float, int, float, float]:
        """(F, NumDF, DenDF, the unscaled Wald F) of the hypothesis Lβ = 0 (L reduced to
        full row rank).  Kenward–Roger's F is the Wald F with Φ_A times the scaling λ
        (pbkrtest's ``KRmodcomp``, as lmerTest reports it); Satterthwaite's is unscaled."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if self.method == "satterthwaite":
            VL = L @ self.V @ L.T
            d, U = np.linalg.eigh(VL)
            keep = d > 1.5e-8 * max(d.max(), 0.0) if d.size else d > 0
            PtL = U[:, keep].T @ L
            t2 = (PtL @ self.beta) ** 2 / d[keep]
            _, _, nu = self.rows(PtL)
            F = float(t2.sum() / len(t2))
            return F, len(t2), fstat_ddf(nu), F
        L = row_basis(L)
        Lb = L @ self.beta
        F = float(Lb @ np.linalg.solve(L @ self.V @ L.T, Lb)) / L.shape[0]
        df, scale = kr_ddf_scale(L, self.Phi, self.P, self.Wkr)
        return F * scale, int(L.shape[0]), df, F


def row_basis(L: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Rows spanning L's row space (orthonormal, from the SVD): the same hypothesis Lβ = 0."""
    _, s, Vt = np.linalg.svd(np.atleast_2d(L), full_matrices=False)
    return Vt[: int((s > tol * max(s.max(), 1e-300)).sum())] if s.size else Vt[:0]

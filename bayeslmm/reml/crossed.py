"""The blocked criterion of crossed designs, block 2 coupled densely, with its exact gradient.

Where the terms after the first meet most levels of term 1 (subjects x items), the
coupling A₂₁ = Z₂ᵀZ₁ is dense and the blocked Cholesky is best done by BLAS-3, as
MixedModels.jl's ``updateL!`` does it (``setθ!`` → ``updateL!`` → ``objective``):

    L₁ₗL₁ₗᵀ = T₁ᵀA₁₁,ₗT₁ + I                   (ℓ₁ small Choleskys, batched)
    K      = Λ₂ᵀA₂₁Λ₁L₁⁻ᵀ                       (q₂ x q₁: one batched product)
    L₂₂L₂₂ᵀ = Λ₂ᵀA₂₂Λ₂ + I − KKᵀ               (``syrk``, ``potrf``)
    E₁ = L₁⁻¹Λ₁ᵀZ₁ᵀ[X y],  E₂ = L₂₂⁻¹(Λ₂ᵀZ₂ᵀ[X y] − KE₁)
    RRᵀ = [X y]ᵀ[X y] − E₁ᵀE₁ − E₂ᵀE₂           (R_X and r, as in :mod:`.blocked`)

The gradient (:meth:`CrossedDeviance.value_and_grad`) is the dense one of
:mod:`.dense` (∂log|Ω|/∂Λ[a, b] = 2(Ω⁻¹SᵀA)[b, a], ∂r²/∂Λ[a, b] = −2û_b(Zᵀr)_a) with
the level-diagonal blocks of Ω⁻¹ΛᵀA taken from the blocked factor (S = L₂₂L₂₂ᵀ):

    term 1, level l:  L₁ₗ⁻ᵀ[(I + VₗᵀVₗ)L₁ₗ⁻¹T₁ᵀA₁₁,ₗ − Uₗᵀ(Λ₂ᵀA₂₁)ₗ],  V = L₂₂⁻¹K, U = S⁻¹K
    block 2, level j: [S⁻¹Λ₂ᵀA₂₂ − U(A₂₁Λ₁L₁⁻ᵀ)ᵀ]ⱼⱼ

and, for REML, the X block's share Fₗ(A_ZZΛE_x − ZᵀX)ₗᵀ with E_x = Ω⁻¹ΛᵀZᵀX and
F = E_x(R_XR_Xᵀ)⁻¹ (the single-term correction of :meth:`.BlockedDeviance.value_and_grad`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import Design, lower_triangle
from .blocked import BlockedDeviance
from .pls import PLSSolution, chol_inverse, level_blocks, template

_dpotrf, _dsyrk = sla.lapack.dpotrf, sla.blas.dsyrk
_dtrtrs = sla.lapack.dtrtrs

#: the dense coupling is used where A₂₁ has at least this share of non-zeros ...
DENSE_SHARE = 0.25
#: ... and block 2 is at most this large (its selected inverse is a dense q₂ x q₂) ...
DENSE_Q2_MAX = 3000
#: ... and A₂₁ (q₂ x q₁, held dense) has at most this many entries (160 MB)
DENSE_ENTRIES_MAX = 20_000_000


def dense_coupling(design: Design) -> bool:
    """Whether ``design``'s blocked factor should couple block 2 densely (crossed designs):
    two or more terms, and the terms after the largest meet most of its levels."""
    terms = design.terms
    if len(terms) < 2:
        return False
    i1 = int(np.argmax([t.q for t in terms]))
    t1 = terms[i1]
    q2 = sum(t.q for i, t in enumerate(terms) if i != i1)
    if q2 > DENSE_Q2_MAX or q2 * t1.q > DENSE_ENTRIES_MAX:  # (bounds the markers below too)
        return False
    pairs = 0
    for i, t in enumerate(terms):
        if i != i1:
            seen = np.zeros(t.nl * t1.nl, dtype=bool)
            seen[t.codes.astype(np.int64) * t1.nl + t1.codes] = True
            pairs += int(seen.sum()) * t.nc
    return pairs * t1.nc >= DENSE_SHARE * q2 * t1.q


@dataclass(frozen=True)
class CrossedFactor:
    """The blocked factor at θ (module doc): T₁, L₁ₗ⁻¹ (ℓ₁, k₁, k₁), A₂₁Λ₁L₁⁻ᵀ and K
    (q₂ x q₁), L₂₂, E₁ (q₁ x (p+1)), E₂ (q₂ x (p+1)), R and log|L_θ|²."""

    theta: np.ndarray
    T1: np.ndarray
    L1inv: np.ndarray
    AF: np.ndarray
    K: np.ndarray
    L22: np.ndarray
    E1: np.ndarray
    E2: np.ndarray
    R: np.ndarray
    logdet: float


class CrossedDeviance(BlockedDeviance):
    """lme4's ``devfun`` by the blocked factor with a dense block-2 coupling (module doc);
    exact gradient for any number of terms."""

    has_gradient = True
    scaled_start = True

    def _couple(self, A21: sp.csr_matrix) -> None:
        """A₂₁ dense, level-major: (ℓ₁, q₂, k₁); Z₁ᵀ[X y] as (ℓ₁, k₁, p+1)."""
        self.has_gradient = True
        q2 = self.b2.q
        self.A21f = A21.toarray()  # (q₂, q₁)
        self.A21d = np.ascontiguousarray(self.A21f.reshape(q2, self.l1, self.k1).transpose(1, 0, 2))
        self.C1 = np.ascontiguousarray(np.transpose(self.A31, (1, 2, 0)))

    def factor(self, theta: np.ndarray) -> CrossedFactor:  # type: ignore[override]
        """Factorise at θ (raises LinAlgError where a block is not positive definite)."""
        theta = np.asarray(theta, dtype=float)
        b2, k1, q2 = self.b2, self.k1, self.b2.q
        T1 = template(theta[self.sl1], k1)
        M = T1.T @ self.A11 @ T1
        M[:, np.arange(k1), np.arange(k1)] += 1.0
        L1 = np.linalg.cholesky(M)
        L1inv = np.linalg.inv(L1)
        logdet = 2.0 * float(np.log(np.diagonal(L1, axis1=1, axis2=2)).sum())
        F = T1 @ np.transpose(L1inv, (0, 2, 1))  # T₁L₁ₗ⁻ᵀ
        AF = np.transpose(self.A21d @ F, (1, 0, 2)).reshape(q2, -1)  # A₂₁Λ₁L₁⁻ᵀ
        K = b2.lam_t(theta, AF)
        S = b2.sandwich(theta, self.A22)
        S[np.diag_indices_from(S)] += 1.0
        S = _dsyrk(-1.0, K, beta=1.0, c=S, lower=1, overwrite_c=1)
        L22, info = _dpotrf(S, lower=1, clean=1, overwrite_a=1)
        if info:
            raise np.linalg.LinAlgError("Cholesky of the random-effects block failed")
        logdet += 2.0 * float(np.log(np.diagonal(L22)).sum())
        E1 = (L1inv @ (T1.T @ self.C1)).reshape(-1, self.p + 1)
        E2 = _dtrtrs(L22, b2.lam_t(theta, self.A23) - K @ E1, lower=1)[0]
        B33 = self.A33 - E1.T @ E1 - E2.T @ E2
        R, info = _dpotrf(B33, lower=1, clean=1)
        if info and info <= self.p:
            raise np.linalg.LinAlgError("fixed-effects block is not positive definite")
        return CrossedFactor(theta, T1, L1inv, AF, K, L22, E1, E2, R, logdet)

    def objective(self, f: CrossedFactor) -> float:  # type: ignore[override]
        return self.profiled(f.logdet, f.R)[0]

    def _back(self, f: CrossedFactor, E1: np.ndarray, E2: np.ndarray) -> np.ndarray:
        """L_θ⁻ᵀ[E₁; E₂] (q x m), in the blocks' order (term 1, then block 2)."""
        W2 = _dtrtrs(f.L22, E2, lower=1, trans=1)[0]
        rhs = (E1 - f.K.T @ W2).reshape(self.l1, self.k1, -1)
        W1 = (np.transpose(f.L1inv, (0, 2, 1)) @ rhs).reshape(self.t1.q, -1)
        return np.vstack([W1, W2])

    def _lam(self, theta: np.ndarray, T1: np.ndarray, W: np.ndarray) -> np.ndarray:
        """ΛW for W (q x m) in the blocks' order."""
        q1 = self.t1.q
        W1 = (T1 @ W[:q1].reshape(self.l1, self.k1, -1)).reshape(q1, -1)
        return np.vstack([W1, self.b2.lam(theta, W[q1:])])

    def _azz(self, V: np.ndarray) -> np.ndarray:
        """A_ZZ V for V (q x m) in the blocks' order."""
        q1 = self.t1.q
        top = (self.A11 @ V[:q1].reshape(self.l1, self.k1, -1)).reshape(q1, -1)
        top += self.A21f.T @ V[q1:]
        return np.vstack([top, self.A21f @ V[:q1] + self.A22 @ V[q1:]])

    def _ztxy(self) -> np.ndarray:
        """Zᵀ[X y] in the blocks' order (q x (p+1))."""
        return np.vstack([self.C1.reshape(self.t1.q, -1), self.A23])

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ (module doc)."""
        theta = np.asarray(theta, dtype=float)
        try:
            f = self.factor(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(theta)
        p = self.p
        crit, r2 = self.profiled(f.logdet, f.R)
        Rx = f.R[:p, :p]
        beta = sla.solve_triangular(Rx.T, f.R[p, :p], lower=False) if p else np.zeros(0)
        coef = np.concatenate([-beta, [1.0]])
        W = self._back(f, f.E1, f.E2)  # Ω⁻¹ΛᵀZᵀ[X y]
        Y = self._ztxy() - self._azz(self._lam(theta, f.T1, W))  # Zᵀ([X y] − ZΛW)
        u, ztr = W @ coef, Y @ coef
        blocks = self._logdet_blocks(f)
        if self.reml and p:
            Fx = W[:, :p] @ sla.cho_solve((Rx, True), np.eye(p))  # E_x(R_XR_Xᵀ)⁻¹
            blocks = [
                G + self._per_level(Fx[sl], -Y[sl, :p], k)
                for G, (sl, k) in zip(blocks, self._term_rows(), strict=True)
            ]
        grad = np.empty_like(theta)
        coeff = 2.0 * self.dof / r2
        for G, (sl, k), tsl in zip(blocks, self._term_rows(), self._term_theta(), strict=True):
            uu = u[sl].reshape(-1, k)
            zz = ztr[sl].reshape(-1, k)
            D = 2.0 * G.sum(axis=0).T - coeff * (zz.T @ uu)
            grad[tsl] = D[lower_triangle(k)]
        return float(crit), grad

    def _term_rows(self) -> list[tuple[slice, int]]:
        """Each term's rows in the blocks' order (term 1, then block 2) and its k."""
        out = [(slice(0, self.t1.q), self.k1)]
        q1 = self.t1.q
        for t, a in zip(self.b2.terms, self.b2.offsets[:-1], strict=True):
            out.append((slice(q1 + int(a), q1 + int(a) + t.q), t.nc))
        return out

    def _term_theta(self) -> list[slice]:
        """Each term's θ slice in the blocks' order."""
        return [self.sl1, *self.b2.slices]

    @staticmethod
    def _per_level(A: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
        """The level blocks A_l B_lᵀ (ℓ, k, k) of rows grouped k at a time."""
        m = A.shape[1]
        return A.reshape(-1, k, m) @ np.transpose(B.reshape(-1, k, m), (0, 2, 1))

    def _logdet_blocks(self, f: CrossedFactor) -> list[np.ndarray]:
        """The level-diagonal blocks of Ω⁻¹ΛᵀA_ZZ per term (module doc), ML's share."""
        theta, b2, l1, k1, q2 = f.theta, self.b2, self.l1, self.k1, self.b2.q
        Sinv = chol_inverse(f.L22)
        U = Sinv @ f.K  # S⁻¹K; VₗᵀVₗ = KₗᵀUₗ
        K3 = np.transpose(f.K.reshape(q2, l1, k1), (1, 2, 0))  # (ℓ₁, k₁, q₂)
        U3 = U.reshape(q2, l1, k1).transpose(1, 0, 2)  # (ℓ₁, q₂, k₁)
        inner = K3 @ U3
        inner[:, np.arange(k1), np.arange(k1)] += 1.0
        TA = f.T1.T @ self.A11
        B3 = np.transpose(b2.lam_t(theta, self.A21f).reshape(q2, l1, k1), (1, 0, 2))
        G1 = np.transpose(f.L1inv, (0, 2, 1)) @ (
            inner @ f.L1inv @ TA - np.transpose(U3, (0, 2, 1)) @ B3
        )
        B22 = b2.lam_t(theta, self.A22)
        blocks = [G1]
        for t, a, b in zip(b2.terms, b2.offsets[:-1], b2.offsets[1:], strict=True):
            k = t.nc
            G = self._per_level(Sinv[a:b], B22[:, a:b].T, k)
            blocks.append(G - self._per_level(U[a:b], f.AF[a:b], k))
        return blocks

    def solution(self, theta: np.ndarray) -> PLSSolution:
        """β̂, r², R_X, û and the conditional variance blocks at θ by blocks."""
        f = self.factor(theta)
        p, q1, l1, k1, q2 = self.p, self.t1.q, self.l1, self.k1, self.b2.q
        Rx = f.R[:p, :p]
        beta = sla.solve_triangular(Rx.T, f.R[p, :p], lower=False) if p else np.zeros(0)
        coef = np.concatenate([-beta, [1.0]])
        u = self._back(f, f.E1 @ coef[:, None], f.E2 @ coef[:, None])[:, 0]
        # (Ω⁻¹)₁₁'s level blocks L₁ₗ⁻ᵀ(I + VₗᵀVₗ)L₁ₗ⁻¹ and (Ω⁻¹)₂₂ = S⁻¹
        Sinv = chol_inverse(f.L22)
        K3 = np.transpose(f.K.reshape(q2, l1, k1), (1, 2, 0))
        inner = K3 @ (Sinv @ f.K).reshape(q2, l1, k1).transpose(1, 0, 2)
        inner[:, np.arange(k1), np.arange(k1)] += 1.0
        V11 = np.transpose(f.L1inv, (0, 2, 1)) @ inner @ f.L1inv
        terms = self.design.terms
        u_parts, v_parts = {self.i1: u[:q1]}, {self.i1: V11}
        for j, i in enumerate(self.others):
            a, b = self.b2.offsets[j], self.b2.offsets[j + 1]
            u_parts[i] = u[q1 + a : q1 + b]
            v_parts[i] = level_blocks(Sinv[a:b, a:b], terms[i]).copy()
        return PLSSolution(
            fval=self.objective(f),
            beta=beta,
            r2=float(f.R[p, p] ** 2),
            Rx=Rx,
            u=np.concatenate([u_parts[i] for i in range(len(terms))]),
            V=tuple(v_parts[i] for i in range(len(terms))),
        )


def blocked_deviance(design: Design, reml: bool = True) -> BlockedDeviance:
    """The blocked criterion of ``design``: a dense coupling (with the exact gradient) for
    crossed designs (:func:`dense_coupling`), the sparse pairs of :mod:`.blocked` else."""
    cls = CrossedDeviance if dense_coupling(design) else BlockedDeviance
    return cls(design, reml)

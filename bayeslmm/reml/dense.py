"""The profiled criterion from one dense Cholesky factor (small models), with its gradient.

A = [Z X y]ᵀ[Z X y] is formed once.  At θ, with S = diag(Λ_θ, I_{p+1}),

    Ω = SᵀAS + diag(I_q, 0) = LLᵀ

gives log|L_θ|² from L's (u, u) block, R_X from its (β, β) block and r from its last
diagonal element; (û, β̂) = L_Ω⁻ᵀ l with l the last row of L.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..design import Design, lower_triangle
from .pls import Deviance, PLSSolution, level_blocks

_dpotrf, _dpotri = sla.lapack.dpotrf, sla.lapack.dpotri
_dtrtrs, _dpotrs = sla.lapack.dtrtrs, sla.lapack.dpotrs


class DenseDeviance(Deviance):
    """lme4's ``devfun`` by one dense Cholesky of the scaled augmented matrix Ω."""

    has_gradient = True

    def __init__(self, design: Design, reml: bool = True):
        super().__init__(design, reml)
        q, n, p = design.q, design.nobs, design.p
        N = q + p + 1
        if n * N <= 2_000_000:  # [Z X y] as one dense array: A from one product
            W = np.zeros((n, N))
            offset, rows_n = 0, np.arange(n)[:, None]
            for t in design.terms:
                W[rows_n, offset + t.codes[:, None] * t.nc + np.arange(t.nc)] = t.X
                offset += t.q
            W[:, q:-1] = design.X
            W[:, -1] = design.y
            A = W.T @ W
        else:
            Z = design.Z()
            C = np.column_stack([design.X, design.y])  # [X y]
            A = np.empty((N, N))
            A[:q, :q] = (Z.T @ Z).toarray()
            A[:q, q:] = np.asarray(Z.T @ C)
            A[q:, :q] = A[:q, q:].T
            A[q:, q:] = C.T @ C
        rows_l, cols_l, index_l, offset = [], [], [], 0
        for t, sl in zip(design.terms, design.theta_slices, strict=True):
            tr, tc = lower_triangle(t.nc)
            base = offset + np.arange(t.nl)[:, None] * t.nc
            rows_l.append((base + tr).ravel())
            cols_l.append((base + tc).ravel())
            index_l.append(np.tile(np.arange(sl.start, sl.stop), t.nl))
            offset += t.q
        rows, cols = np.concatenate(rows_l), np.concatenate(cols_l)  # Λ[rows, cols] = θ[index]
        self._A = A
        self._scalar = all(t.nc == 1 for t in design.terms)
        self._rows, self._cols, self._index = rows, cols, np.concatenate(index_l)
        self._lam_pos = rows * N + cols
        # scalar terms: Λ is diagonal, diag(Λ)[a] = θ[index[a]] with one entry per column
        self._s = np.ones(N)  # diag(S), reused
        self._S0 = np.zeros((N, N))  # S = diag(Λ, I_{p+1}) without θ
        self._S0[q:, q:] = np.eye(N - q)
        # (b, a) in the Fortran (k, q) array Ω⁻¹SᵀA[:k, :q], k = q + p (REML) or q (ML)
        self._trace_pos_f = cols + rows * (q + p if reml else q)
        self._diag = np.arange(q) * (N + 1)
        self._v = np.ones(N)

    def _factor(
        self, theta: np.ndarray, scaled_a: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
        """Scale A by S = diag(Λ, I_{p+1}) and factorise.

        Returns (SᵀA if ``scaled_a``, Λ (dense, or its diagonal when every term is
        scalar), L, info) with LLᵀ = SᵀAS + diag(I_q, 0).
        """
        q, A = self.q, self._A
        SA: np.ndarray | None
        if self._scalar:
            s = self._s
            lam = s[:q] = theta[self._index]
            At = A * s[:, None] * s[None, :]
            SA = A * s[:, None] if scaled_a else None
        else:
            S = self._S0.copy()
            S.flat[self._lam_pos] = theta[self._index]
            SA = S.T @ A
            At = SA @ S
            lam = S[:q, :q]
        At.flat[self._diag] += 1.0
        L, info = _dpotrf(At.T, lower=1, clean=0)  # symmetric: the transpose is Fortran order
        return SA, lam, L, int(info)

    def _criterion(self, L: np.ndarray) -> tuple[float, float]:
        """(criterion, r²) from the factor of the scaled augmented matrix."""
        q = self.q
        return self.profiled(2.0 * float(np.log(L.diagonal()[:q]).sum()), L[q:, q:])

    def __call__(self, theta: np.ndarray) -> float:
        L, info = self._factor(np.asarray(theta, dtype=float))[2:]
        if info and info <= self.q + self.p:
            return np.inf
        return self._criterion(L)[0]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ.

        With Ω = SᵀAS + diag(I_q, 0) the (u, β) system, x = Ω⁻¹c = (û, β̂), and
        dS_j = ∂Λ/∂θ_j (ones where θ_j sits in Λ):

            ∂ log|Ω| / ∂θ_j = 2 tr(Ω⁻¹ SᵀA dS_j) = 2 Σ_{Λ[a,b]=θ_j} (Ω⁻¹SᵀA)[b, a]
            ∂ r² / ∂θ_j     = −2 Σ_{Λ[a,b]=θ_j} û_b (Zᵀ(y − Xβ̂ − ZΛû))_a

        (ML uses log|Ω_uu| and the u-block of Ω⁻¹), so the REML criterion has gradient
        ∂log|Ω| + (n − p)·∂r²/r² and the ML deviance ∂log|Ω_uu| + n·∂r²/r².
        """
        theta = np.asarray(theta, dtype=float)
        q, p = self.q, self.p
        SA, lam, L, info = self._factor(theta, scaled_a=True)
        assert SA is not None
        if info and info <= q + p:
            return np.inf, np.zeros_like(theta)
        f, r2 = self._criterion(L)
        m = q + p
        x = _dtrtrs(L[:m, :m], L[m, :m], lower=1, trans=1)[0]
        u = x[:q]
        v = self._v  # (−Λû, −β̂, 1): Zᵀ(y − Xβ̂ − ZΛû) = A[:q] v
        v[:q] = -(lam * u if self._scalar else lam @ u)
        v[q:m] = -x[q:]
        ztr = self._A[:q] @ v
        k = m if self.reml else q  # log|Ω| (REML) or log|Ω_uu| (ML)
        Lk, SAk = np.asfortranarray(L[:k, :k]), np.asfortranarray(SA[:k, :q])
        solved = _dpotrs(Lk, SAk, lower=1)[0]  # Ω⁻¹SᵀA[:, :q]
        trace = solved.ravel(order="F")[self._trace_pos_f]
        dr2 = u[self._cols] * ztr[self._rows]
        weights = 2.0 * trace - (2.0 * self.dof / r2) * dr2
        return float(f), np.bincount(self._index, weights=weights, minlength=len(theta))

    def solution(self, theta: np.ndarray) -> PLSSolution:
        """x = L_Ω⁻ᵀ l gives (û, β̂), R_X is L's (β, β) block and (ΛᵀZᵀZΛ + I)⁻¹ comes
        from L's (u, u) block."""
        q, m = self.q, self.q + self.p
        L, info = self._factor(np.asarray(theta, dtype=float))[2:]
        if info and info <= m:
            raise np.linalg.LinAlgError("the penalised system is not positive definite")
        f = self._criterion(L)[0]
        x = _dtrtrs(L[:m, :m], L[m, :m], lower=1, trans=1)[0]
        inv = _dpotri(L[:q, :q], lower=1)[0]
        inv = np.tril(inv) + np.tril(inv, -1).T
        V, offset = [], 0
        for t in self.design.terms:
            V.append(level_blocks(inv[offset : offset + t.q, offset : offset + t.q], t).copy())
            offset += t.q
        return PLSSolution(
            fval=float(f),
            beta=x[q:],
            r2=float(L[m, m] ** 2),
            Rx=np.tril(L[q:m, q:m]),
            u=x[:q],
            V=tuple(V),
        )

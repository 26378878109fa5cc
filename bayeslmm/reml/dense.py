"""The profiled criterion from one dense Cholesky factor (small models), with its gradient.

A = [Z X y]ᵀ[Z X y] is formed once.  At θ, with S = diag(Λ_θ, I_{p+1}),

    Ω = SᵀAS + diag(I_q, 0) = LLᵀ

gives log|L_θ|² from L's (u, u) block, R_X from its (β, β) block and r from its last
diagonal element; (û, β̂) = L_Ω⁻ᵀ l with l the last row of L.

The same algebra takes any relative factors: term t's block of Λ is I_ℓ ⊗ F_t for a
k_t x k_t matrix F_t that need not be triangular (the criterion depends on F_tF_tᵀ only).
:meth:`DenseDeviance.pieces` works on those *full factors* (every F_t flattened row-major,
one term after another; θ_i is entry ``theta_positions[i]`` of them) or on θ; the profiles of
:mod:`bayeslmm.reml.profile` use them, the fit uses θ.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from ..design import Design, lower_triangle
from .pls import Deviance, PLSSolution, level_blocks

_dpotrf, _dpotri = sla.lapack.dpotrf, sla.lapack.dpotri
_dtrtrs, _dpotrs = sla.lapack.dtrtrs, sla.lapack.dpotrs


class PLSPieces(NamedTuple):
    """One factorisation of Ω at x (lme4's θ or full factors).

    logdet: log|L_θ|² = log|ΛᵀZᵀZΛ + I|; logdet_x: log|R_X|²; r2: penalised RSS r²;
    beta: β̂; v: (−Λû, −β̂, 1), the residual y − Xβ̂ − ZΛû in the columns of [Z X y].
    With gradients (in x): g_logdet of the criterion's log-determinant (log|L_θ|², plus
    log|R_X|² for REML) and g_r2 of r².
    """

    logdet: float
    logdet_x: float
    r2: float
    beta: np.ndarray
    v: np.ndarray
    g_logdet: np.ndarray | None = None
    g_r2: np.ndarray | None = None


@dataclass(frozen=True)
class _Entries:
    """Where a parameter vector x of ``size`` sits in Λ: Λ[rows, cols] = x[index];
    ``lam_pos`` the flat positions in S, ``trace_pos_f`` those of (b, a) in the Fortran
    (k, q) array Ω⁻¹SᵀA[:k, :q] that the log-determinant's gradient reads."""

    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    size: int
    lam_pos: np.ndarray
    trace_pos_f: np.ndarray

    @classmethod
    def of(
        cls, blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int, N: int, k: int
    ) -> _Entries:
        rows, cols, index = (
            np.concatenate(part).astype(np.intp) for part in zip(*blocks, strict=True)
        )
        return cls(rows, cols, index, size, rows * N + cols, cols + rows * k)


class DenseDeviance(Deviance):
    """lme4's ``devfun`` by one dense Cholesky of the scaled augmented matrix Ω."""

    has_gradient = True

    def __init__(self, design: Design, reml: bool = True, A: np.ndarray | None = None):
        """``A``: the cross-products [Z X y]ᵀ[Z X y] where they are known already (a
        submodel's, cut from a larger model's); else they are computed."""
        super().__init__(design, reml)
        q, n = design.q, design.nobs
        N = q + design.p + 1
        if A is not None:
            A = np.array(A, dtype=float)
        elif n * N <= 2_000_000:  # [Z X y] as one dense array: A from one product
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
        # Λ[rows, cols] = θ[index]
        lower, offset = [], 0
        for t, sl in zip(design.terms, design.theta_slices, strict=True):
            tr, tc = lower_triangle(t.nc)
            level = offset + np.arange(t.nl)[:, None] * t.nc
            theta_index = np.tile(np.arange(sl.start, sl.stop), t.nl)
            lower.append(((level + tr).ravel(), (level + tc).ravel(), theta_index))
            offset += t.q
        self._N = N
        self._k_inv = q + design.p if reml else q  # rows of Ω⁻¹SᵀA[:k, :q] in the gradient
        self._theta = _Entries.of(lower, design.theta_start.size, N, self._k_inv)
        self._A = A
        #: (rows, cols, index): Λ[rows, cols] = θ[index]
        self.lambda_entries = self._theta.rows, self._theta.cols, self._theta.index
        self._scalar = all(t.nc == 1 for t in design.terms)
        self._s = np.ones(N)  # diag(S) of scalar terms, reused
        self._S0 = np.zeros((N, N))  # S = diag(Λ, I_{p+1}) without Λ
        self._S0[q:, q:] = np.eye(N - q)
        self._diag = np.arange(q) * (N + 1)

    @cached_property
    def _full(self) -> _Entries:
        """Where the full factors sit in Λ (built on first use: the profiles need them)."""
        full, offset = [], 0
        for t, sl in zip(self.design.terms, self.full_slices, strict=True):
            k = t.nc
            r, c = np.divmod(np.arange(k * k), k)
            level = offset + np.arange(t.nl)[:, None] * k
            full.append(
                ((level + r).ravel(), (level + c).ravel(), np.tile(sl.start + r * k + c, t.nl))
            )
            offset += t.q
        return _Entries.of(full, self.nfull, self._N, self._k_inv)

    @cached_property
    def full_slices(self) -> list[slice]:
        """Each term's factor F_t (row-major k x k) in the full factors."""
        ends = np.cumsum([t.nc**2 for t in self.design.terms])
        return [
            slice(int(e) - t.nc**2, int(e)) for t, e in zip(self.design.terms, ends, strict=True)
        ]

    @property
    def nfull(self) -> int:
        """The length of the full factors."""
        return self.full_slices[-1].stop if self.full_slices else 0

    @cached_property
    def theta_positions(self) -> np.ndarray:
        """Where each θ_i sits in the full factors."""
        out = []
        for t, sl in zip(self.design.terms, self.full_slices, strict=True):
            tr, tc = lower_triangle(t.nc)
            out.append(sl.start + tr * t.nc + tc)
        return np.concatenate(out).astype(np.intp)

    @property
    def A(self) -> np.ndarray:
        """The cross-products [Z X y]ᵀ[Z X y] (read only)."""
        view = self._A.view()
        view.flags.writeable = False
        return view

    def set_response(self, ky: np.ndarray, yy: float) -> None:
        """Another response y*: [Z X]ᵀy* = ``ky`` and y*ᵀy* = ``yy`` replace A's last row
        and column (nothing else of A depends on y)."""
        self._A[:-1, -1] = self._A[-1, :-1] = ky
        self._A[-1, -1] = yy

    def _factor(
        self, x: np.ndarray, entries: _Entries, scaled_a: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
        """Scale A by S = diag(Λ, I_{p+1}) at x (θ or full factors: ``entries``) and
        factorise.

        Returns (SᵀA if ``scaled_a``, Λ (dense, or its diagonal when every term is
        scalar), L, info) with LLᵀ = SᵀAS + diag(I_q, 0).
        """
        q, A = self.q, self._A
        SA: np.ndarray | None
        if self._scalar:
            s = self._s
            lam = s[:q] = x[entries.index]
            At = A * s[:, None] * s[None, :]
            SA = A * s[:, None] if scaled_a else None
        else:
            S = self._S0.copy()
            S.flat[entries.lam_pos] = x[entries.index]
            SA = S.T @ A
            At = SA @ S
            lam = S[:q, :q]
        At.flat[self._diag] += 1.0
        L, info = _dpotrf(At.T, lower=1, clean=0)  # symmetric: the transpose is Fortran order
        return SA, lam, L, int(info)

    def pieces(self, x: np.ndarray, grad: bool = True, full: bool = True) -> PLSPieces | None:
        """The factorisation at x, full factors (``full``) or lme4's θ; None where Ω is not
        positive definite.

        With Ω = SᵀAS + diag(I_q, 0), (û, β̂) = Ω⁻¹c and dS_a,b = ∂Λ/∂Λ[a, b]:

            ∂ log|Ω| / ∂Λ[a, b] = 2 (Ω⁻¹SᵀA)[b, a]
            ∂ r² / ∂Λ[a, b]     = −2 û_b (Zᵀ(y − Xβ̂ − ZΛû))_a

        summed over the entries each x_j fills (ML: log|Ω_uu| and the u-block of Ω⁻¹).
        """
        q, p = self.q, self.p
        m = q + p
        entries = self._full if full else self._theta
        SA, lam, L, info = self._factor(np.asarray(x, dtype=float), entries, scaled_a=grad)
        if info and info <= m:  # info = m + 1: r = 0, a response the model fits exactly
            return None
        d = np.log(L.diagonal())
        sol = _dtrtrs(L[:m, :m], L[m, :m], lower=1, trans=1)[0]
        u = sol[:q]
        v = np.ones(q + p + 1)
        v[:q] = -(lam * u if self._scalar else lam @ u)
        v[q:m] = -sol[q:]
        g_logdet = g_r2 = None
        if grad:
            assert SA is not None
            k = m if self.reml else q  # log|Ω| (REML) or log|Ω_uu| (ML)
            Lk, SAk = np.asfortranarray(L[:k, :k]), np.asfortranarray(SA[:k, :q])
            trace = _dpotrs(Lk, SAk, lower=1)[0].ravel(order="F")[entries.trace_pos_f]
            ztr = self._A[:q] @ v  # Zᵀ(y − Xβ̂ − ZΛû)
            rows, cols, index = entries.rows, entries.cols, entries.index
            g_logdet = 2.0 * np.bincount(index, weights=trace, minlength=entries.size)
            g_r2 = -2.0 * np.bincount(index, weights=u[cols] * ztr[rows], minlength=entries.size)
        return PLSPieces(
            logdet=2.0 * float(d[:q].sum()),
            logdet_x=2.0 * float(d[q:m].sum()),
            r2=float(L[m, m] ** 2),
            beta=sol[q:],
            v=v,
            g_logdet=g_logdet,
            g_r2=g_r2,
        )

    def __call__(self, theta: np.ndarray) -> float:
        L, info = self._factor(np.asarray(theta, dtype=float), self._theta)[2:]
        if info and info <= self.q + self.p:
            return np.inf
        return self._criterion(L)[0]

    def _criterion(self, L: np.ndarray) -> tuple[float, float]:
        """(criterion, r²) from the factor of the scaled augmented matrix."""
        q = self.q
        return self.profiled(2.0 * float(np.log(L.diagonal()[:q]).sum()), L[q:, q:])

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ (:meth:`pieces`): the REML criterion
        has gradient ∂log|Ω| + (n − p)·∂r²/r², the ML deviance ∂log|Ω_uu| + n·∂r²/r²."""
        theta = np.asarray(theta, dtype=float)
        pc = self.pieces(theta, full=False)
        if pc is None:
            return np.inf, np.zeros_like(theta)
        assert pc.g_logdet is not None and pc.g_r2 is not None
        f = self.profiled_criterion(pc.logdet, pc.logdet_x, pc.r2)
        return f, pc.g_logdet + (self.dof / pc.r2) * pc.g_r2

    def solution(self, theta: np.ndarray) -> PLSSolution:
        """x = L_Ω⁻ᵀ l gives (û, β̂), R_X is L's (β, β) block and (ΛᵀZᵀZΛ + I)⁻¹ comes
        from L's (u, u) block."""
        q, m = self.q, self.q + self.p
        L, info = self._factor(np.asarray(theta, dtype=float), self._theta)[2:]
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

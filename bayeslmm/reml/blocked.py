"""The profiled criterion by blocks (larger models), as MixedModels.jl factorises it.

A = [Z X y]ᵀ[Z X y] is computed once, in blocks, so one evaluation costs nothing
proportional to n:

* block 1 is the term with the most random effects: Λ₁ᵀA₁₁Λ₁ + I is block diagonal
  (ℓ₁ blocks of k₁ x k₁), factorised by a batched Cholesky;
* block 2 holds the other terms, dense; its Schur complement
  Λ₂ᵀ(A₂₂ − A₂₁W A₁₂)Λ₂ + I, with W = Λ₁(Λ₁ᵀA₁₁Λ₁ + I)⁻¹Λ₁ᵀ block diagonal, is assembled
  from precomputed products of the non-zeros of A₂₁ (one scatter-add per evaluation);
* block 3 is [X y]: the last diagonal element of its Cholesky factor is r.

Models with a single term have the exact gradient (:meth:`BlockedDeviance.value_and_grad`),
and so do those whose block 2 holds scalar terms only (:mod:`.pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import Design, ReTerm, lower_triangle
from .pairs import cond_var_pairs, value_and_grad_pairs
from .pls import Deviance, PLSSolution, inv_logdet, level_blocks, template

_dpotrf = sla.lapack.dpotrf


class _OtherTerms:
    """Block 2, the terms after the first, dense: scaling by Λ₂ without forming it."""

    def __init__(self, terms: list[ReTerm], theta_slices: list[slice]):
        self.terms = terms
        self.slices = theta_slices
        self.offsets = np.cumsum([0] + [t.q for t in terms])
        self.q = int(self.offsets[-1])
        self.scalar = all(t.nc == 1 for t in terms)
        self._scale_index = np.repeat(
            np.array([s.start for s in theta_slices], dtype=np.intp), [t.q for t in terms]
        )

    def scale(self, theta: np.ndarray) -> np.ndarray:
        """Diagonal of Λ₂ when every term is scalar."""
        return theta[self._scale_index]

    def lam(self, theta: np.ndarray, M: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Λ₂ M (Λ₂ᵀ M with ``transpose``) for a dense M with q₂ rows."""
        if self.scalar:
            return self.scale(theta)[:, None] * M
        out = np.empty_like(M)
        bounds = zip(self.offsets[:-1], self.offsets[1:], strict=True)
        for t, sl, (a, b) in zip(self.terms, self.slices, bounds, strict=True):
            T = template(theta[sl], t.nc)
            block = M[a:b].reshape(t.nl, t.nc, -1)
            out[a:b] = ((T.T if transpose else T) @ block).reshape(b - a, -1)
        return out

    def lam_t(self, theta: np.ndarray, M: np.ndarray) -> np.ndarray:
        """Λ₂ᵀ M for a dense M with q₂ rows."""
        return self.lam(theta, M, transpose=True)

    def sandwich(self, theta: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Λ₂ᵀ B Λ₂ for a symmetric dense B."""
        if self.scalar:
            s = self.scale(theta)
            return B * s[:, None] * s[None, :]
        return self.lam_t(theta, self.lam_t(theta, B).T.copy())


@dataclass(frozen=True)
class BlockedFactor:
    """The factorisation at θ: T₁, L₂₂ (None with one term), the [X y] factor R, log|L_θ|²;
    for the gradient: M₁ₗ⁻¹ (ℓ₁, k₁, k₁), the pair sums g of A₂₁WA₁₂ and
    X₂₃ = L₂₂⁻¹Λ₂ᵀ(Z₂ᵀ[X y] − A₂₁WZ₁ᵀ[X y]) (None with one term)."""

    theta: np.ndarray
    T1: np.ndarray
    L22: np.ndarray | None
    R: np.ndarray
    logdet: float
    Minv: np.ndarray | None = None
    g: np.ndarray | None = None
    X23: np.ndarray | None = None


class BlockedDeviance(Deviance):
    """lme4's ``devfun`` by the blocked Cholesky factorisation."""

    def __init__(self, design: Design, reml: bool = True):
        super().__init__(design, reml)
        terms = list(design.terms)
        slices = design.theta_slices
        p = self.p
        # block 1: the term with the most random effects
        self.i1 = int(np.argmax([t.q for t in terms]))
        t1 = terms[self.i1]
        self.t1, self.sl1, self.k1, self.l1 = t1, slices[self.i1], t1.nc, t1.nl
        self.others = [i for i in range(len(terms)) if i != self.i1]
        self.b2 = _OtherTerms([terms[i] for i in self.others], [slices[i] for i in self.others])
        # one term: the batched gradient; scalar terms in block 2: by pairs (.pairs)
        self.has_gradient = not self.b2.q or self.b2.scalar

        C = np.column_stack([design.X, design.y])  # [X y]
        self.A11 = _term_scalars(t1)
        # A31: Z₁ᵀ[X y] as (p+1, ℓ₁, k₁)
        A31 = np.empty((p + 1, self.l1, self.k1))
        for r in range(p + 1):
            for c in range(self.k1):
                A31[r, :, c] = np.bincount(
                    t1.codes, weights=C[:, r] * t1.X[:, c], minlength=self.l1
                )
        self.A31 = A31
        self.A33 = C.T @ C
        if self.b2.q:
            Z2 = sp.hstack([terms[i].Z() for i in self.others], format="csc")
            Z1 = t1.Z()
            self.A22 = (Z2.T @ Z2).toarray()
            self.A23 = np.asarray(Z2.T @ C)
            A21 = (Z2.T @ Z1).tocsr()
            A21.sum_duplicates()
            self.A21 = A21
            self._couple(A21)

    def _couple(self, A21: sp.csr_matrix) -> None:
        """Set up the coupling of block 2 with block 1 (here: the pairs of non-zeros)."""
        self._pairs(A21.tocoo())

    def _pairs(self, coo: sp.coo_matrix) -> None:
        """Precompute products of the non-zeros of A₂₁ that meet in one level of term 1.

        (A₂₁WA₁₂)[i, j] = Σ_l a_{il}ᵀ W_l a_{jl}; for i ≥ j the constant factors
        a_{il} a_{jl}ᵀ, the level l and the flat position i·q₂ + j are stored.
        """
        k1, l1, q2 = self.k1, self.l1, self.b2.q
        level, comp = np.divmod(coo.col, k1)
        key = level.astype(np.int64) * q2 + coo.row
        ukey, inv = _unique(key, l1 * q2)
        vec = np.zeros((len(ukey), k1))
        np.add.at(vec, (inv, comp), coo.data)
        lev, row = np.divmod(ukey, q2)  # sorted by level, then row
        counts = np.bincount(lev, minlength=l1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[lev]
        reps = np.arange(len(ukey)) - starts + 1
        a = np.repeat(np.arange(len(ukey)), reps)
        b = starts[a] + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
        pos = row[a] * q2 + row[b]
        index = np.zeros(q2 * q2, dtype=np.intp)  # dense positions: no sort needed
        index[pos] = 1
        upos = np.flatnonzero(index)
        index[upos] = np.arange(len(upos))
        ipos = index[pos]
        if k1 == 1:
            prod, col = vec[a, 0] * vec[b, 0], lev[a]
        else:
            prod = (vec[a][:, :, None] * vec[b][:, None, :]).reshape(-1)
            ipos = np.repeat(ipos, k1 * k1)
            col = (lev[a][:, None] * k1 * k1 + np.arange(k1 * k1)).reshape(-1)
        # G_lower[upos] = P @ vec(W): one sparse mat-vec per evaluation; the entries come
        # by level, so P is built column-wise without a sort where k₁ = 1
        order = np.argsort(col, kind="stable") if k1 > 1 else slice(None)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(col, minlength=l1 * k1 * k1))])
        self._P = sp.csc_matrix((prod[order], ipos[order], indptr), shape=(len(upos), l1 * k1 * k1))
        self._upos = upos.astype(np.intp)
        self._urow, self._ucol = np.divmod(self._upos, q2)
        self._upos_t = (self._ucol * q2 + self._urow).astype(np.intp)
        # the non-zeros of A₂₂ (lower triangle)
        low = np.tril(self.A22)
        self._a22_pos = np.flatnonzero(low)
        self._a22_val = low.ravel()[self._a22_pos]
        self._a22_row, self._a22_col = np.divmod(self._a22_pos, q2)
        self._buf = np.zeros((q2, q2))

    # -- one evaluation --------------------------------------------------------------
    def _block1(self, theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """W = Λ₁(Λ₁ᵀA₁₁Λ₁ + I)⁻¹Λ₁ᵀ per level, log|L₁|², T₁ and M₁ₗ⁻¹."""
        th = theta[self.sl1]
        if self.k1 == 1:
            d = th[0] ** 2 * self.A11[:, 0, 0] + 1.0
            W = (th[0] ** 2 / d)[:, None, None]
            return W, float(np.log(d).sum()), th.reshape(1, 1), (1.0 / d)[:, None, None]
        T = template(th, self.k1)
        Minv, logdet = inv_logdet(self._m11(T))
        return T @ Minv @ T.T, logdet, T, Minv

    def _s22(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Lower triangle of Λ₂ᵀ(A₂₂ − A₂₁WA₁₂)Λ₂ + I (g: the pair sums of A₂₁WA₁₂),
        written into a reused buffer."""
        S = self._buf
        if self.b2.scalar:
            s = self.b2.scale(theta)
            S.fill(0.0)
            S.flat[self._upos] = -g * s[self._urow] * s[self._ucol]
            S.flat[self._a22_pos] += self._a22_val * s[self._a22_row] * s[self._a22_col]
        else:
            S[...] = self.A22
            S.flat[self._upos] -= g
            S.flat[self._upos_t] = S.flat[self._upos]
            S[...] = self.b2.sandwich(theta, S)
        S[np.diag_indices_from(S)] += 1.0
        return S

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        """Factorise at θ (raises LinAlgError where a block is not positive definite)."""
        theta = np.asarray(theta, dtype=float)
        W, logdet1, T1, Minv = self._block1(theta)
        if self.k1 == 1:
            AW = self.A31 * W[None, :, :, 0]
        else:
            AW = (self.A31[:, :, None, :] @ W[None])[:, :, 0, :]
        pk = self.p + 1
        B33 = self.A33 - AW.reshape(pk, -1) @ self.A31.reshape(pk, -1).T
        L22, logdet2, g, X23 = None, 0.0, None, None
        if self.b2.q:
            g = self._P @ W.ravel()
            L22, info = _dpotrf(self._s22(theta, g), lower=1, clean=0)
            if info:
                raise np.linalg.LinAlgError("Cholesky of the random-effects block failed")
            logdet2 = 2.0 * float(np.log(np.diagonal(L22)).sum())
            B23 = self.A23 - self.A21 @ AW.reshape(pk, -1).T
            X23 = sla.solve_triangular(
                L22, self.b2.lam_t(theta, B23), lower=True, check_finite=False
            )
            B33 = B33 - X23.T @ X23
        R, info = _dpotrf(B33, lower=1, clean=1)  # tiny: clean for Rx
        if info and info <= self.p:
            raise np.linalg.LinAlgError("fixed-effects block is not positive definite")
        return BlockedFactor(theta, T1, L22, R, logdet1 + logdet2, Minv, g, X23)

    def objective(self, f: BlockedFactor) -> float:
        """The profiled criterion from a factorisation."""
        return self.profiled(f.logdet, f.R)[0]

    def __call__(self, theta: np.ndarray) -> float:
        try:
            return self.objective(self.factor(theta))
        except np.linalg.LinAlgError:
            return np.inf

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Criterion and exact gradient for one random-effect term, batched over levels.

        Per level l: M_l = TᵀA₁₁,ₗT + I, C_l = Tᵀ Z_lᵀ[X y], E_l = M_l⁻¹C_l; the Schur
        complement [X y]ᵀ[X y] − Σ C_lᵀE_l = RRᵀ gives R_X, r and β̂, and û_l = E_l(−β̂, 1).
        The gradient is the dense one (:meth:`DenseDeviance.value_and_grad`) with
        (Ω⁻¹SᵀA) restricted to the level blocks:

            Q_l = (M_l⁻¹ + F_l E_xlᵀ) TᵀA₁₁,ₗ − F_l Z_lᵀX,   F_l = E_xl (R_XR_Xᵀ)⁻¹  (REML)
            Q_l = M_l⁻¹ TᵀA₁₁,ₗ                                                      (ML)

        and ∂/∂T[r, c] = 2 Σ_l Q_l[c, r] − (coef/r²)·2 Σ_l (Z_lᵀr)[r] û_l[c].
        """
        if self.b2.q:
            if not self.has_gradient:
                raise NotImplementedError("the blocked gradient needs scalar terms in block 2")
            return value_and_grad_pairs(self, theta)
        theta = np.asarray(theta, dtype=float)
        k, p = self.k1, self.p
        T = template(theta, k)
        TA = T.T @ self.A11  # (ℓ, k, k): TᵀA₁₁,ₗ
        M = TA @ T
        M[:, np.arange(k), np.arange(k)] += 1.0
        Minv, logdet = inv_logdet(M)
        C = np.transpose(self.A31 @ T, (1, 2, 0))  # (ℓ, k, p+1)
        E = Minv @ C
        B33 = self.A33 - np.einsum("lkr,lks->rs", C, E)
        R, info = _dpotrf(B33, lower=1, clean=1)
        if info and info <= p:
            return np.inf, np.zeros_like(theta)
        f, r2 = self.profiled(logdet, R)
        Rx = R[:p, :p]
        beta = sla.solve_triangular(Rx.T, R[p, :p], lower=False) if p else np.zeros(0)
        coef = np.concatenate([-beta, [1.0]])
        u = E @ coef  # (ℓ, k)
        ztr = np.einsum("rlk,r->lk", self.A31, coef) - (self.A11 @ (u @ T.T)[:, :, None])[:, :, 0]
        Q = Minv @ TA
        if self.reml and p:
            Ex = E[:, :, :p]
            F = Ex @ sla.cho_solve((Rx, True), np.eye(p))
            Zx = np.transpose(self.A31[:p], (1, 0, 2))  # (ℓ, p, k): Z_lᵀX transposed
            Q = Q + F @ (np.transpose(Ex, (0, 2, 1)) @ TA) - F @ Zx
        G = 2.0 * Q.sum(axis=0).T - (2.0 * self.dof / r2) * (ztr.T @ u)  # G[r, c] = ∂/∂T[r, c]
        return float(f), G[lower_triangle(k)]

    # -- the solution at θ ---------------------------------------------------------------
    def solution(self, theta: np.ndarray) -> PLSSolution:
        """β̂ (R_Xᵀβ̂ = c_β), r², R_X, û = (ΛᵀZᵀZΛ + I)⁻¹ΛᵀZᵀ(y − Xβ̂) by blocks, and the
        conditional variance blocks (:meth:`cond_var`)."""
        f = self.factor(theta)
        p = self.p
        R = f.R
        Rx = R[:p, :p]
        beta = sla.solve_triangular(Rx.T, R[p, :p], lower=False) if p else np.zeros(0)
        theta, T1 = f.theta, f.T1
        # right-hand side ΛᵀZᵀ(y − Xβ)
        coef = np.concatenate([-beta, [1.0]])
        rhs1 = self._lam1(T1, np.einsum("rlc,r->lc", self.A31, coef).ravel(), True)
        if f.L22 is not None:
            rhs2 = self.b2.lam_t(theta, (self.A23 @ coef)[:, None])[:, 0]
            y1 = self._m11_solve(T1, rhs1)
            m21y = self.b2.lam_t(theta, (self.A21 @ self._lam1(T1, y1, False))[:, None])[:, 0]
            u2 = sla.cho_solve((f.L22, True), rhs2 - m21y, check_finite=False)
            m12u = self._lam1(T1, self.A21.T @ self.b2.lam(theta, u2[:, None])[:, 0], True)
            u1 = self._m11_solve(T1, rhs1 - m12u)
        else:
            u1, u2 = self._m11_solve(T1, rhs1), np.zeros(0)
        V11, V22 = self.cond_var(f)
        terms = self.design.terms
        u_parts, v_parts = {self.i1: u1}, {self.i1: V11}
        for j, i in enumerate(self.others):
            a, b = self.b2.offsets[j], self.b2.offsets[j + 1]
            u_parts[i] = u2[a:b]
            v_parts[i] = level_blocks(V22[a:b, a:b], terms[i])
        return PLSSolution(
            fval=self.objective(f),
            beta=beta,
            r2=float(R[p, p] ** 2),
            Rx=Rx,
            u=np.concatenate([u_parts[i] for i in range(len(terms))]),
            V=tuple(v_parts[i] for i in range(len(terms))),
        )

    def _lam1(self, T1: np.ndarray, v: np.ndarray, transpose: bool) -> np.ndarray:
        """Λ₁v or Λ₁ᵀv for v of length q₁ (level-major)."""
        V = v.reshape(self.l1, self.k1)
        return (V @ T1 if transpose else V @ T1.T).ravel()

    def _m11(self, T1: np.ndarray) -> np.ndarray:
        """The diagonal blocks Λ₁ᵀA₁₁Λ₁ + I, (ℓ₁, k₁, k₁)."""
        M = T1.T @ self.A11 @ T1
        M[:, np.arange(self.k1), np.arange(self.k1)] += 1.0
        return M

    def _m11_solve(self, T1: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(Λ₁ᵀA₁₁Λ₁ + I)⁻¹ v, batched over the levels."""
        M = self._m11(T1)
        return np.linalg.solve(M, v.reshape(self.l1, self.k1, 1))[:, :, 0].ravel()

    def cond_var(self, f: BlockedFactor, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal blocks of V = (ΛᵀZᵀZΛ + I)⁻¹: block 1 as (ℓ₁, k₁, k₁), block 2 dense.

        V₁₁ = M₁₁⁻¹ + NᵀN with N = L₂₂⁻¹ M₂₁ M₁₁⁻¹ and V₂₂ = (L₂₂L₂₂ᵀ)⁻¹ (lme4's condVar).
        """
        if f.L22 is None:
            return np.linalg.inv(self._m11(f.T1)), np.zeros((0, 0))
        if self.b2.scalar:
            return cond_var_pairs(self, f)
        M11inv = np.linalg.inv(self._m11(f.T1))
        theta, T1 = f.theta, f.T1
        q2 = self.b2.q
        Linv = sla.solve_triangular(f.L22, np.eye(q2), lower=True, check_finite=False)
        V22 = Linv.T @ Linv
        V11 = M11inv.copy()
        k1 = self.k1
        for a in range(0, self.l1, chunk):
            b = min(self.l1, a + chunk)
            # columns a*k1 .. b*k1 of M₂₁M₁₁⁻¹ = Λ₂ᵀ A₂₁ Λ₁ M₁₁⁻¹
            blk = np.einsum("cd,lde->lce", T1, M11inv[a:b])
            nb = b - a
            E = sp.bsr_matrix((blk, np.arange(nb), np.arange(nb + 1)), shape=(nb * k1, nb * k1))
            K = (self.A21[:, a * k1 : b * k1] @ E.tocsc()).toarray()
            N = Linv @ self.b2.lam_t(theta, K)
            N = N.reshape(q2, b - a, k1)
            V11[a:b] += np.einsum("rlc,rld->lcd", N, N)
        return V11, V22


def _term_scalars(term: ReTerm) -> np.ndarray:
    """Per-level sums of x_r x_rᵀ over the rows of each level: (ℓ, k, k)."""
    k, X = term.nc, term.X
    out = np.empty((term.nl, k, k))
    for c in range(k):
        for d in range(c, k):
            s = np.bincount(term.codes, weights=X[:, c] * X[:, d], minlength=term.nl)
            out[:, c, d] = s
            out[:, d, c] = s
    return out


def _unique(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, return_inverse=True) for integer keys in [0, size), by a dense
    marker where ``size`` allows (no sort)."""
    if size > 50_000_000:
        return np.unique(key, return_inverse=True)
    index = np.zeros(size, dtype=np.intp)
    index[key] = 1
    ukey = np.flatnonzero(index)
    index[ukey] = np.arange(len(ukey))
    return ukey, index[key]

"""Blocked penalised least squares for ``y = Xβ + Zb + ε`` (lme4's profiled criterion).

With spherical effects ``b = Λ_θ u`` the PLS system for (u, β) has the matrix

    M = [[ΛᵀZᵀZΛ + I, ΛᵀZᵀX], [XᵀZΛ, XᵀX]]

and the profiled criteria (Bates et al. 2015, eqs. 34 and 41) are

    ML:   log|L_θ|² + n·(1 + log(2π r²/n))
    REML: log|L_θ|² + log|R_X|² + (n−p)·(1 + log(2π r²/(n−p)))

where L_θL_θᵀ = ΛᵀZᵀZΛ + I, R_XR_Xᵀ is the Schur complement of the X block and r² the
penalised residual sum of squares.  As in MixedModels.jl, A = [Z X y]ᵀ[Z X y] is
computed once, in blocks, so one evaluation costs nothing proportional to n:

* block 1 is the term with the most random effects: Λ₁ᵀA₁₁Λ₁ + I is block diagonal
  (ℓ₁ blocks of k₁ x k₁), factorised by a batched Cholesky;
* block 2 holds the other terms, dense; its Schur complement
  Λ₂ᵀ(A₂₂ − A₂₁W A₁₂)Λ₂ + I, with W = Λ₁(Λ₁ᵀA₁₁Λ₁ + I)⁻¹Λ₁ᵀ block diagonal, is assembled
  from precomputed products of the non-zeros of A₂₁ (one scatter-add per evaluation);
* block 3 is [X y]: the last diagonal element of its Cholesky factor is r.

Models with q + p + 1 <= 100 use one dense Cholesky of the scaled augmented matrix
SᵀAS + diag(I_q, 0), S = diag(Λ, I_{p+1}), instead (less Python overhead), and have the
exact gradient of the criterion (:meth:`Deviance.value_and_grad`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .design import Design, ReTerm

_LOG2PI = np.log(2.0 * np.pi)


_dpotrf, _dpotri = sla.lapack.dpotrf, sla.lapack.dpotri
_dtrtrs, _dpotrs = sla.lapack.dtrtrs, sla.lapack.dpotrs
_DENSE_MAX = 100  # q + p + 1 up to this: dense Cholesky with the exact gradient
_TRIL: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _tril(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of a k x k lower triangle in lme4's column-wise θ order."""
    if k not in _TRIL:
        rows, cols = np.triu_indices(k)  # row-major upper = column-major lower, transposed
        _TRIL[k] = (cols, rows)
    return _TRIL[k]


def _template(theta: np.ndarray, k: int) -> np.ndarray:
    """Lower-triangular k x k factor T filled column-wise from θ (lme4's layout)."""
    T = np.zeros((k, k))
    T[_tril(k)] = theta
    return T


def _term_scalars(term: ReTerm, X: np.ndarray) -> np.ndarray:
    """Per-level sums of x_r x_rᵀ over the rows of each level: (ℓ, k, k)."""
    k = term.nc
    out = np.empty((term.nl, k, k))
    for c in range(k):
        for d in range(c, k):
            s = np.bincount(term.codes, weights=X[:, c] * X[:, d], minlength=term.nl)
            out[:, c, d] = s
            out[:, d, c] = s
    return out


def _level_blocks(V: np.ndarray, term: ReTerm) -> np.ndarray:
    """The (ℓ, k, k) diagonal blocks of a term's (ℓk x ℓk) part of a matrix (level-major)."""
    return np.einsum("lcld->lcd", V.reshape(term.nl, term.nc, term.nl, term.nc))


def _inv_logdet(M: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverses and Σ log det of a batch (ℓ, k, k) of symmetric positive definite
    matrices; closed forms for k <= 2."""
    k = M.shape[1]
    if k == 1:
        return 1.0 / M, float(np.log(M).sum())
    if k == 2:
        a, b, c = M[:, 0, 0], M[:, 1, 0], M[:, 1, 1]
        det = a * c - b * b
        inv = np.empty_like(M)
        inv[:, 0, 0], inv[:, 1, 1] = c / det, a / det
        inv[:, 0, 1] = inv[:, 1, 0] = -b / det
        return inv, float(np.log(det).sum())
    L = np.linalg.cholesky(M)
    return np.linalg.inv(M), 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())


class _Block2:
    """Dense block of the terms after the first: scaling by Λ₂ without forming it."""

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
        spec = "dc,ldj->lcj" if transpose else "cd,ldj->lcj"
        out = np.empty_like(M)
        for t, sl, a, b in zip(self.terms, self.slices, self.offsets[:-1], self.offsets[1:]):
            T = _template(theta[sl], t.nc)
            block = M[a:b].reshape(t.nl, t.nc, -1)
            out[a:b] = np.einsum(spec, T, block).reshape(b - a, -1)
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


class Deviance:
    """lme4's ``devfun``: θ -> profiled REML criterion (or ML deviance).

    Small models (``dense``; by default q + p + 1 <= 100) use one dense Cholesky of the
    scaled augmented matrix and have an exact gradient (``value_and_grad``); larger ones
    use the blocked factorisation (``state(theta)``).  ``result(theta)`` gives
    everything a fit reports at θ.
    """

    def __init__(self, design: Design, reml: bool = True, dense: bool | None = None):
        self.design = design
        self.reml = reml
        n, p = design.nobs, design.p
        self.n, self.p, self.q = n, p, design.q
        self.dof = n - p if reml else n  # the residual degrees of freedom in the criterion
        if dense is None:
            dense = design.q + p + 1 <= _DENSE_MAX
        self._dense = self._dense_setup(design) if dense else None
        if not dense:
            self._blocked_setup(design)
        self.has_gradient = dense or not self.b2.q  # one term: blocked gradient

    def _blocked_setup(self, design: Design) -> None:
        """A₁₁ per level, A₃₁, A₃₃ and (more terms) A₂₂, A₂₃, A₂₁ and its products."""
        terms = list(design.terms)
        slices = design.theta_slices
        p = self.p
        # block 1: the term with the most random effects
        self.i1 = int(np.argmax([t.q for t in terms]))
        t1 = terms[self.i1]
        self.t1, self.sl1, self.k1, self.l1 = t1, slices[self.i1], t1.nc, t1.nl
        others = [i for i in range(len(terms)) if i != self.i1]
        self.others = others
        self.b2 = _Block2([terms[i] for i in others], [slices[i] for i in others])
        q2 = self.b2.q

        C = np.column_stack([design.X, design.y])  # [X y]
        self.A11 = _term_scalars(t1, t1.X)
        # A31: Z₁ᵀ[X y] as (p+1, ℓ₁, k₁)
        A31 = np.empty((p + 1, self.l1, self.k1))
        for r in range(p + 1):
            for c in range(self.k1):
                A31[r, :, c] = np.bincount(
                    t1.codes, weights=C[:, r] * t1.X[:, c], minlength=self.l1
                )
        self.A31 = A31
        self.A33 = C.T @ C
        if q2:
            Z2 = sp.hstack([terms[i].Z() for i in others], format="csc")
            Z1 = t1.Z()
            self.A22 = (Z2.T @ Z2).toarray()
            self.A23 = np.asarray(Z2.T @ C)
            A21 = (Z2.T @ Z1).tocsr()
            A21.sum_duplicates()
            self.A21 = A21
            self._pairs(A21.tocoo())

    def _dense_setup(self, design: Design) -> dict:
        """Small models: the whole A = [Z X y]ᵀ[Z X y] dense, and where θ goes in Λ."""
        q, n = design.q, design.nobs
        N = q + self.p + 1
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
        rows, cols, index, offset = [], [], [], 0
        for t, sl in zip(design.terms, design.theta_slices):
            tr, tc = _tril(t.nc)
            base = offset + np.arange(t.nl)[:, None] * t.nc
            rows.append((base + tr).ravel())
            cols.append((base + tc).ravel())
            index.append(np.tile(np.arange(sl.start, sl.stop), t.nl))
            offset += t.q
        rows, cols = np.concatenate(rows), np.concatenate(cols)  # Λ[rows, cols] = θ[index]
        S0 = np.zeros((N, N))
        S0[q:, q:] = np.eye(N - q)
        return {
            "A": A,
            "scalar": all(t.nc == 1 for t in design.terms),
            "scale": _Block2(list(design.terms), design.theta_slices).scale,
            "s": np.ones(N),  # diag(S) when every term is scalar, reused
            "S0": S0,  # S = diag(Λ, I_{p+1}) without θ
            "lam_pos": rows * N + cols,
            "index": np.concatenate(index),
            "rows": rows,
            "cols": cols,
            # (b, a) in the Fortran (k, q) array Ω⁻¹SᵀA[:k, :q], k = q + p (REML) or q (ML)
            "trace_pos_f": cols + rows * (q + self.p if self.reml else q),
            "diag": np.arange(q) * (N + 1),
            "v": np.ones(N),
        }

    def _dense_factor(self, theta: np.ndarray, scaled_a: bool = False):
        """Scale A = [Z X y]ᵀ[Z X y] by S = diag(Λ, I_{p+1}) and factorise.

        Returns (SᵀA if ``scaled_a``, Λ (dense, or its diagonal when every term is
        scalar), L, info) with LLᵀ = SᵀAS + diag(I_q, 0).
        """
        d = self._dense
        q, A = self.q, d["A"]
        if d["scalar"]:
            s = d["s"]
            lam = s[:q] = d["scale"](theta)
            At = A * s[:, None] * s[None, :]
            SA = A * s[:, None] if scaled_a else None
        else:
            S = d["S0"].copy()
            S.flat[d["lam_pos"]] = theta[d["index"]]
            SA = S.T @ A
            At = SA @ S
            lam = S[:q, :q]
        At.flat[d["diag"]] += 1.0
        L, info = _dpotrf(At.T, lower=1, clean=0)  # symmetric: the transpose is Fortran order
        return SA, lam, L, info

    def _profiled(self, logdet: float, R: np.ndarray) -> tuple[float, float]:
        """(criterion, r²) from log|L_θ|² and the lower Cholesky factor R of the [X y]
        Schur complement: R_X is its (p x p) block and r its last diagonal element."""
        p, dof = self.p, self.dof
        r2 = R[p, p] ** 2
        if self.reml:
            logdet += 2.0 * float(np.log(np.diagonal(R)[:p]).sum())
        return logdet + dof * (1.0 + _LOG2PI + np.log(r2 / dof)), r2

    def _dense_criterion(self, L: np.ndarray) -> tuple[float, float]:
        """(criterion, r²) from the factor of the scaled augmented matrix."""
        q = self.q
        return self._profiled(2.0 * float(np.log(L.diagonal()[:q]).sum()), L[q:, q:])

    def _dense_objective(self, theta: np.ndarray) -> float:
        """The criterion from one dense Cholesky of [[ΛᵀZᵀZΛ + I, ΛᵀZᵀC], [CᵀZΛ, CᵀC]]."""
        L, info = self._dense_factor(theta)[2:]
        if info and info <= self.q + self.p:
            return np.inf
        return self._dense_criterion(L)[0]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ (dense models and single-term ones)."""
        if self._dense is not None:
            return self._dense_value_and_grad(theta)
        return self._single_value_and_grad(theta)

    def _dense_value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ (small models, dense algebra).

        With Ω = SᵀAS + diag(I_q, 0) the (u, β) system, x = Ω⁻¹c = (û, β̂), and
        dS_j = ∂Λ/∂θ_j (ones where θ_j sits in Λ):

            ∂ log|Ω| / ∂θ_j = 2 tr(Ω⁻¹ SᵀA dS_j) = 2 Σ_{Λ[a,b]=θ_j} (Ω⁻¹SᵀA)[b, a]
            ∂ r² / ∂θ_j     = −2 Σ_{Λ[a,b]=θ_j} û_b (Zᵀ(y − Xβ̂ − ZΛû))_a

        (ML uses log|Ω_uu| and the u-block of Ω⁻¹), so the REML criterion has gradient
        ∂log|Ω| + (n − p)·∂r²/r² and the ML deviance ∂log|Ω_uu| + n·∂r²/r².
        """
        theta = np.asarray(theta, dtype=float)
        d = self._dense
        q, p = self.q, self.p
        SA, lam, L, info = self._dense_factor(theta, scaled_a=True)
        if info and info <= q + p:
            return np.inf, np.zeros_like(theta)
        f, r2 = self._dense_criterion(L)
        m = q + p
        x = _dtrtrs(L[:m, :m], L[m, :m], lower=1, trans=1)[0]
        u = x[:q]
        v = d["v"]  # (−Λû, −β̂, 1): Zᵀ(y − Xβ̂ − ZΛû) = A[:q] v
        v[:q] = -(lam * u if d["scalar"] else lam @ u)
        v[q:m] = -x[q:]
        ztr = d["A"][:q] @ v
        k = m if self.reml else q  # log|Ω| (REML) or log|Ω_uu| (ML)
        Lk, SAk = np.asfortranarray(L[:k, :k]), np.asfortranarray(SA[:k, :q])
        solved = _dpotrs(Lk, SAk, lower=1)[0]  # Ω⁻¹SᵀA[:, :q]
        trace = solved.ravel(order="F")[d["trace_pos_f"]]
        dr2 = u[d["cols"]] * ztr[d["rows"]]
        weights = 2.0 * trace - (2.0 * self.dof / r2) * dr2
        return float(f), np.bincount(d["index"], weights=weights, minlength=len(theta))

    def _single_value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Criterion and exact gradient for one random-effect term, batched over levels.

        Per level l: M_l = TᵀA₁₁,ₗT + I, C_l = Tᵀ Z_lᵀ[X y], E_l = M_l⁻¹C_l; the Schur
        complement [X y]ᵀ[X y] − Σ C_lᵀE_l = RRᵀ gives R_X, r and β̂, and û_l = E_l(−β̂, 1).
        The gradient is the dense one (see :meth:`_dense_value_and_grad`) with
        (Ω⁻¹SᵀA) restricted to the level blocks:

            Q_l = (M_l⁻¹ + F_l E_xlᵀ) TᵀA₁₁,ₗ − F_l Z_lᵀX,   F_l = E_xl (R_XR_Xᵀ)⁻¹  (REML)
            Q_l = M_l⁻¹ TᵀA₁₁,ₗ                                                      (ML)

        and ∂/∂T[r, c] = 2 Σ_l Q_l[c, r] − (coef/r²)·2 Σ_l (Z_lᵀr)[r] û_l[c].
        """
        theta = np.asarray(theta, dtype=float)
        k, p = self.k1, self.p
        T = _template(theta, k)
        TA = T.T @ self.A11  # (ℓ, k, k): TᵀA₁₁,ₗ
        M = TA @ T
        M[:, np.arange(k), np.arange(k)] += 1.0
        Minv, logdet = _inv_logdet(M)
        C = np.transpose(self.A31 @ T, (1, 2, 0))  # (ℓ, k, p+1)
        E = Minv @ C
        B33 = self.A33 - np.einsum("lkr,lks->rs", C, E)
        R, info = _dpotrf(B33, lower=1, clean=1)
        if info and info <= p:
            return np.inf, np.zeros_like(theta)
        f, r2 = self._profiled(logdet, R)
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
        return float(f), G[_tril(k)]

    def _pairs(self, coo: sp.coo_matrix) -> None:
        """Precompute products of the non-zeros of A₂₁ that meet in one level of term 1.

        (A₂₁WA₁₂)[i, j] = Σ_l a_{il}ᵀ W_l a_{jl}; for i ≥ j the constant factors
        a_{il} a_{jl}ᵀ, the level l and the flat position i·q₂ + j are stored.
        """
        k1, l1, q2 = self.k1, self.l1, self.b2.q
        level, comp = np.divmod(coo.col, k1)
        key = level.astype(np.int64) * q2 + coo.row
        ukey, inv = np.unique(key, return_inverse=True)
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
        # G_lower[upos] = P @ vec(W): one sparse mat-vec per evaluation
        self._P = sp.csr_matrix((prod, (ipos, col)), shape=(len(upos), l1 * k1 * k1))
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
    def _block1(self, theta: np.ndarray):
        """W = Λ₁(Λ₁ᵀA₁₁Λ₁ + I)⁻¹Λ₁ᵀ per level, log|L₁|², and T₁."""
        th = theta[self.sl1]
        if self.k1 == 1:
            d = th[0] ** 2 * self.A11[:, 0, 0] + 1.0
            W = (th[0] ** 2 / d)[:, None, None]
            return W, float(np.log(d).sum()), th.reshape(1, 1)
        T = _template(th, self.k1)
        M = self._m11(T)
        Minv, logdet = _inv_logdet(M)
        return T @ Minv @ T.T, logdet, T

    def _s22(self, theta: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Lower triangle of Λ₂ᵀ(A₂₂ − A₂₁WA₁₂)Λ₂ + I, written into a reused buffer."""
        g = self._P @ W.ravel()
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

    def state(self, theta: np.ndarray) -> dict:
        """Factorise at θ: T₁, L₂₂, the [X y] factor R and log|L_θ|²."""
        theta = np.asarray(theta, dtype=float)
        W, logdet1, T1 = self._block1(theta)
        if self.k1 == 1:
            AW = self.A31 * W[None, :, :, 0]
        else:
            AW = (self.A31[:, :, None, :] @ W[None])[:, :, 0, :]
        pk = self.p + 1
        B33 = self.A33 - AW.reshape(pk, -1) @ self.A31.reshape(pk, -1).T
        L22, logdet2 = None, 0.0
        if self.b2.q:
            L22, info = sla.lapack.dpotrf(self._s22(theta, W), lower=1, clean=0)
            if info:
                raise np.linalg.LinAlgError("Cholesky of the random-effects block failed")
            logdet2 = 2.0 * float(np.log(np.diagonal(L22)).sum())
            B23 = self.A23 - self.A21 @ AW.reshape(pk, -1).T
            X23 = sla.solve_triangular(
                L22, self.b2.lam_t(theta, B23), lower=True, check_finite=False
            )
            B33 = B33 - X23.T @ X23
        R, info = sla.lapack.dpotrf(B33, lower=1, clean=1)  # tiny: clean for Rx
        if info and info <= self.p:
            raise np.linalg.LinAlgError("fixed-effects block is not positive definite")
        return {"theta": theta, "T1": T1, "L22": L22, "R": R, "logdet": logdet1 + logdet2}

    def objective(self, st: dict) -> float:
        """The profiled criterion from a factorisation."""
        return self._profiled(st["logdet"], st["R"])[0]

    def __call__(self, theta: np.ndarray) -> float:
        if self._dense is not None:
            return self._dense_objective(np.asarray(theta, dtype=float))
        try:
            return self.objective(self.state(theta))
        except np.linalg.LinAlgError:
            return np.inf

    # -- the solution at θ ---------------------------------------------------------------
    def result(self, theta: np.ndarray) -> dict:
        """Everything a fit reports at θ: the criterion ``fval``, β̂, r², R_X, û (Z's column
        order) and, per term, the diagonal blocks of (ΛᵀZᵀZΛ + I)⁻¹ as (ℓ, k, k)."""
        theta = np.asarray(theta, dtype=float)
        if self._dense is not None:
            return self._dense_result(theta)
        st = self.state(theta)
        sol = self.solution(st)
        V11, V22 = self.cond_var(st)
        terms = self.design.terms
        u_parts, v_parts = {self.i1: sol["u1"]}, {self.i1: V11}
        for j, i in enumerate(self.others):
            a, b = self.b2.offsets[j], self.b2.offsets[j + 1]
            u_parts[i] = sol["u2"][a:b]
            v_parts[i] = _level_blocks(V22[a:b, a:b], terms[i])
        return {
            "fval": self.objective(st),
            "beta": sol["beta"],
            "r2": sol["r2"],
            "Rx": sol["Rx"],
            "u": np.concatenate([u_parts[i] for i in range(len(terms))]),
            "V": [v_parts[i] for i in range(len(terms))],
        }

    def _dense_result(self, theta: np.ndarray) -> dict:
        """:meth:`result` from the dense factor L: x = L_Ω⁻ᵀ l gives (û, β̂), R_X is L's
        (β, β) block and (ΛᵀZᵀZΛ + I)⁻¹ comes from L's (u, u) block."""
        q, m = self.q, self.q + self.p
        L, info = self._dense_factor(theta)[2:]
        if info and info <= m:
            raise np.linalg.LinAlgError("the penalised system is not positive definite")
        f = self._dense_criterion(L)[0]
        x = _dtrtrs(L[:m, :m], L[m, :m], lower=1, trans=1)[0]
        inv = _dpotri(L[:q, :q], lower=1)[0]
        inv = np.tril(inv) + np.tril(inv, -1).T
        V, offset = [], 0
        for t in self.design.terms:
            V.append(_level_blocks(inv[offset : offset + t.q, offset : offset + t.q], t).copy())
            offset += t.q
        return {
            "fval": float(f),
            "beta": x[q:],
            "r2": L[m, m] ** 2,
            "Rx": np.tril(L[q:m, q:m]),
            "u": x[:q],
            "V": V,
        }

    def _lam1(self, T1: np.ndarray, v: np.ndarray, transpose: bool) -> np.ndarray:
        """Λ₁v or Λ₁ᵀv for v of length q₁ (level-major)."""
        V = v.reshape(self.l1, self.k1)
        return (V @ T1 if transpose else V @ T1.T).ravel()

    def _m11(self, T1: np.ndarray) -> np.ndarray:
        """The diagonal blocks Λ₁ᵀA₁₁Λ₁ + I, (ℓ₁, k₁, k₁)."""
        M = T1.T @ self.A11 @ T1
        M[:, np.arange(self.k1), np.arange(self.k1)] += 1.0
        return M

    def _m11_solve(self, st: dict, v: np.ndarray) -> np.ndarray:
        """(Λ₁ᵀA₁₁Λ₁ + I)⁻¹ v, batched over the levels."""
        M = self._m11(st["T1"])
        return np.linalg.solve(M, v.reshape(self.l1, self.k1, 1))[:, :, 0].ravel()

    def solution(self, st: dict) -> dict:
        """β̂ (R_Xᵀβ̂ = c_β), r², R_X and û = (ΛᵀZᵀZΛ + I)⁻¹ΛᵀZᵀ(y − Xβ̂) by blocks."""
        p = self.p
        R = st["R"]
        Rx = R[:p, :p]
        beta = sla.solve_triangular(Rx.T, R[p, :p], lower=False) if p else np.zeros(0)
        r2 = R[p, p] ** 2
        theta, T1 = st["theta"], st["T1"]
        # right-hand side ΛᵀZᵀ(y − Xβ)
        coef = np.concatenate([-beta, [1.0]])
        rhs1 = self._lam1(T1, np.einsum("rlc,r->lc", self.A31, coef).ravel(), True)
        if self.b2.q:
            L22 = st["L22"]
            rhs2 = self.b2.lam_t(theta, (self.A23 @ coef)[:, None])[:, 0]
            y1 = self._m11_solve(st, rhs1)
            m21y = self.b2.lam_t(theta, (self.A21 @ self._lam1(T1, y1, False))[:, None])[:, 0]
            u2 = sla.cho_solve((L22, True), rhs2 - m21y, check_finite=False)
            m12u = self._lam1(T1, self.A21.T @ self.b2.lam(theta, u2[:, None])[:, 0], True)
            u1 = self._m11_solve(st, rhs1 - m12u)
        else:
            u1, u2 = self._m11_solve(st, rhs1), np.zeros(0)
        return {"beta": beta, "r2": r2, "Rx": Rx, "u1": u1, "u2": u2}

    def cond_var(self, st: dict, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal blocks of V = (ΛᵀZᵀZΛ + I)⁻¹: block 1 as (ℓ₁, k₁, k₁), block 2 dense diag.

        V₁₁ = M₁₁⁻¹ + NᵀN with N = L₂₂⁻¹ M₂₁ M₁₁⁻¹ and V₂₂ = (L₂₂L₂₂ᵀ)⁻¹ (lme4's condVar).
        """
        M11inv = np.linalg.inv(self._m11(st["T1"]))
        if not self.b2.q:
            return M11inv, np.zeros((0, 0))
        theta, T1, L22 = st["theta"], st["T1"], st["L22"]
        q2 = self.b2.q
        Linv = sla.solve_triangular(L22, np.eye(q2), lower=True, check_finite=False)
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

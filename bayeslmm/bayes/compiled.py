"""The compiled core of the marginalised sampler (numba): the log density of the mixed
model with b integrated out, its gradient and exact draws of b; :func:`logp_fn` dispatches
on the kernel data's type for the NUTS in :mod:`.nuts`.

numba's on-disk cache (``cache=True``) is invalidated by a change to a function's own
source file only, not to the functions it calls: :mod:`.nuts.cache` stamps the sampler's
modules, which call these kernels, with this file too.  The code uses explicit
loops (no array expressions, slicing assignments or BLAS calls on tiny matrices), which
keeps the first compile short and each gradient free of call overhead; numba caches
recursive functions badly, so the NUTS tree is built iteratively.

The model (y = Xβ + Zb + ε, b ~ N(0, Σ), ε ~ N(0, σ²I)) with Σ = blockdiag_t(I ⊗ T_tT_tᵀ),
T_t = diag(sd_t) L_t, relative factor Λ̃ = Λ/σ, M = I + Λ̃ᵀZᵀZΛ̃ = LLᵀ, r = y − Xβ,
c = Λ̃ᵀZᵀr and v = M⁻¹c:

    log p(y | β, Σ, σ) = −½ [n log 2πσ² + log|M| + (rᵀr − cᵀv)/σ²]

(determinant lemma and Woodbury), from [Z X y]ᵀ[Z X y] computed once.  Block 1 holds every
term of one grouping factor (M₁₁ block diagonal, one k₁ x k₁ block per level), block 2 the
other terms (dense).  With E = M₁₁⁻¹M₁₂ and S = M₂₂ − M₂₁E = L₂₂L₂₂ᵀ, P = M⁻¹ has
P₂₂ = S⁻¹, P₁₂ = −EP₂₂, P₁₁ = M₁₁⁻¹ − P₁₂Eᵀ, formed only where ZᵀZ is non-zero.  Gradient:

    ∂ℓ/∂β = (Xᵀr − XᵀZΛ̃v)/σ²,    ∂ℓ/∂Λ̃ = −ZᵀZΛ̃P + w vᵀ/σ²  (w = Zᵀr − ZᵀZΛ̃v),
    ∂ℓ/∂T = G/σ,                  ∂ℓ/∂σ = −n/σ + (rᵀr − cᵀv)/σ³ − Σ_t ⟨G_t, T̃_t⟩/σ

with G the template-restricted ∂ℓ/∂Λ̃.  The draws of b afterwards are exact:
b = Λ̃(v + σL⁻ᵀε), ε ~ N(0, I).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

LOG2PI = math.log(2.0 * math.pi)

# prior families (constrained-space densities; positive ones are sampled on the log scale)
NORMAL, STUDENT_T, CAUCHY, LAPLACE = 0, 1, 2, 3
HALF_NORMAL, HALF_STUDENT_T, HALF_CAUCHY, EXPONENTIAL = 10, 11, 12, 13
GAMMA, INVERSE_GAMMA, LOG_NORMAL, WEIBULL = 14, 15, 16, 17
#: ``Parameters.term_block`` of a term whose effects are sampled (partially marginal kernel)
LATENT = 3


class Parameters(NamedTuple):
    """Where each parameter sits in θ and its prior (shared by both kernels' data).

    θ = (β of the centred design, per term: log sd (k), correlation parameters
    (k(k−1)/2, PyMC's ``CholeskyCorrTransform`` order), then log σ).  When β has Normal
    priors it is integrated out with b: p = 0 and the last term is β − m as a block-2
    effect with the fixed template diag(prior SDs) (``term_sd`` −1, ``fixed_sd``).
    """

    p: int
    dim: int
    kmax: int
    term_k: np.ndarray  # (nterms,)
    term_block: np.ndarray  # (nterms,) 1 or 2
    term_off1: np.ndarray  # (nterms,) first column within a block-1 level (-1 in block 2)
    term_sd: np.ndarray  # (nterms,) index of the first log sd in θ (−1: fixed template)
    term_corr: np.ndarray  # (nterms,) index of the first correlation parameter in θ
    spiral: np.ndarray  # (nterms, mmax, 2) (row, col) of L_t filled by each parameter
    lkj_eta: np.ndarray  # (nterms,)
    lkj_norm: np.ndarray  # (nterms,)
    prior_kind: np.ndarray  # (p + Σk + 1,) β, then every sd, then σ
    prior_par: np.ndarray  # (p + Σk + 1, 3)
    prior_const: np.ndarray  # (p + Σk + 1,) log normalising constants
    fixed_sd: np.ndarray  # (nterms, kmax) the diagonal template of a fixed term


class OneFactor(NamedTuple):
    """Sufficient statistics of a model with one grouping factor of k₁ <= 2 columns (its
    terms side by side): the fast kernel's data."""

    par: Parameters
    n: float
    ete: float  # residual sum of squares of the least squares fit e = y − Xβ_ols
    Xte: np.ndarray  # (p,) Xᵀe (0 up to rounding)
    XtX: np.ndarray  # (p, p)
    beta_ols: np.ndarray  # (p,): r = e − X(β − β_ols), free of cancellation
    l1: int
    k1: int
    A11: np.ndarray  # (l1, k1, k1)
    Zte1: np.ndarray  # (l1, k1)
    ZtX1: np.ndarray  # (l1, k1, p)


class KernelData(NamedTuple):
    """Sufficient statistics of any design, by blocks (see the module docstring)."""

    par: Parameters
    n: float
    ete: float
    Xte: np.ndarray
    XtX: np.ndarray
    beta_ols: np.ndarray
    l1: int
    k1: int
    A11: np.ndarray  # (l1, k1, k1)
    Zte1: np.ndarray  # (l1, k1)
    ZtX1: np.ndarray  # (l1, k1, p)
    q2: int
    unit_term: np.ndarray  # (nu,) term of each block-2 unit (one level of a term)
    unit_off: np.ndarray  # (nu,) its first column in block 2
    Zte2: np.ndarray  # (q2,)
    ZtX2: np.ndarray  # (q2, p)
    A22: np.ndarray  # (q2, q2)
    a12_ptr: np.ndarray  # (l1 + 1,) CSR over block-1 levels
    a12_off: np.ndarray  # (nnz,) first block-2 column of each entry's unit
    a12_k: np.ndarray  # (nnz,) its number of columns
    a12_term: np.ndarray  # (nnz,) its term
    a12_val: np.ndarray  # (nnz, k1, kmax) Z₁ₗᵀ Z_u


class OneFactorFixef(NamedTuple):
    """Sufficient statistics of a model with one grouping factor whose β (Normal priors)
    is integrated out: y′ = y − Xc m, Zte1 = Z₁ₗᵀy′, ZtX1 = Z₁ₗᵀXc, Xte = Xcᵀy′,
    XtX = XcᵀXc.  β − m is the last term (``par.fixed_sd``)."""

    par: Parameters
    n: float
    ete: float  # y′ᵀy′
    Xte: np.ndarray  # (p,)
    XtX: np.ndarray  # (p, p)
    l1: int
    k1: int
    A11: np.ndarray  # (l1, k1, k1)
    Zte1: np.ndarray  # (l1, k1)
    ZtX1: np.ndarray  # (l1, k1, p)


# --------------------------------------------------------------------------------------
# small dense linear algebra
# --------------------------------------------------------------------------------------

#: the smallest penalised residual sum of squares, relative to ‖r‖², that double precision
#: resolves: below it (σ under ~10⁻⁶ of the effects' SDs, where the posterior has no mass)
#: ``rᵀr − cᵀM⁻¹c`` is rounding error and the log density is taken as −∞
PWRSS_FLOOR = 1e-12
#: the smallest squared Cholesky pivot accepted for M = I + Λ̃ᵀZᵀZΛ̃ and its Schur
#: complements (>= 1 in exact arithmetic)
UNIT_PIVOT = 0.25


@njit(cache=True, nogil=True, error_model="numpy")
def _pwrss(rtr, cv):
    """rᵀr − cᵀM⁻¹c, or −1 (read as −∞ by :func:`_prior_terms`) below ``PWRSS_FLOOR``."""
    pwrss = rtr - cv
    return pwrss if pwrss > PWRSS_FLOOR * rtr else -1.0


@njit(cache=True, nogil=True, error_model="numpy")
def chol(A, L, floor=0.0):
    """Lower Cholesky factor of the SPD matrix A into L; False if A is not SPD with finite
    entries, or if a squared pivot falls to ``floor`` (for I + PSD matrices every one is
    >= 1 in exact arithmetic: 1/4 marks rounding error).  The sampler's metric uses it too."""
    k = A.shape[0]
    for j in range(k):
        s = A[j, j]
        for m in range(j):
            s -= L[j, m] * L[j, m]
        if not (s > floor and s < math.inf):
            return False
        dj = math.sqrt(s)
        L[j, j] = dj
        for i in range(j + 1, k):
            s = A[i, j]
            for m in range(j):
                s -= L[i, m] * L[j, m]
            L[i, j] = s / dj
        for i in range(j):
            L[i, j] = 0.0
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _fsolve(L, b):
    """L x = b in place (L lower triangular)."""
    for i in range(L.shape[0]):
        s = b[i]
        for m in range(i):
            s -= L[i, m] * b[m]
        b[i] = s / L[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def _bsolve(L, b):
    """Lᵀ x = b in place (L lower triangular)."""
    k = L.shape[0]
    for i in range(k - 1, -1, -1):
        s = b[i]
        for m in range(i + 1, k):
            s -= L[m, i] * b[m]
        b[i] = s / L[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def _chol_inverse(L, out):
    """(LLᵀ)⁻¹ into out: W = L⁻¹ (lower triangle of out), then WᵀW."""
    k = L.shape[0]
    for j in range(k):
        for i in range(k):
            out[i, j] = 0.0
        out[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, k):
            s = 0.0
            for m in range(j, i):
                s += L[i, m] * out[m, j]
            out[i, j] = -s / L[i, i]
    for i in range(k):
        for j in range(i + 1):
            s = 0.0
            for m in range(i, k):
                s += out[m, i] * out[m, j]
            out[j, i] = s
    for i in range(k):
        for j in range(i):
            out[i, j] = out[j, i]


# --------------------------------------------------------------------------------------
# priors and transforms
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _prior(kind, par, const, x):
    """(log density, d/dx) of one prior at x on its own scale."""
    a, b = par[0], par[1]
    if kind == NORMAL:  # mu, sigma
        z = (x - a) / b
        return const - 0.5 * z * z, -z / b
    if kind == STUDENT_T:  # nu, mu, sigma
        z = (x - b) / par[2]
        t = 1.0 + z * z / a
        return const - 0.5 * (a + 1.0) * math.log(t), -(a + 1.0) * z / (a * par[2] * t)
    if kind == CAUCHY:  # alpha, beta
        z = (x - a) / b
        t = 1.0 + z * z
        return const - math.log(t), -2.0 * z / (b * t)
    if kind == LAPLACE:  # mu, b
        z = x - a
        sgn = 1.0 if z > 0 else (-1.0 if z < 0 else 0.0)
        return const - abs(z) / b, -sgn / b
    if kind == HALF_NORMAL:  # sigma
        z = x / a
        return const - 0.5 * z * z, -z / a
    if kind == HALF_STUDENT_T:  # nu, sigma
        z = x / b
        t = 1.0 + z * z / a
        return const - 0.5 * (a + 1.0) * math.log(t), -(a + 1.0) * z / (a * b * t)
    if kind == HALF_CAUCHY:  # beta
        z = x / a
        t = 1.0 + z * z
        return const - math.log(t), -2.0 * z / (a * t)
    if kind == EXPONENTIAL:  # lam
        return const - a * x, -a
    if kind == GAMMA:  # alpha, beta
        return const + (a - 1.0) * math.log(x) - b * x, (a - 1.0) / x - b
    if kind == INVERSE_GAMMA:  # alpha, beta
        return const - (a + 1.0) * math.log(x) - b / x, -(a + 1.0) / x + b / (x * x)
    if kind == LOG_NORMAL:  # mu, sigma
        lx = math.log(x)
        z = (lx - a) / b
        return const - lx - 0.5 * z * z, (-1.0 - z / b) / x
    if kind == WEIBULL:  # alpha, beta
        lz = math.log(x / b)
        za = math.exp(a * lz)
        return const + (a - 1.0) * lz - za, ((a - 1.0) - a * za) / x
    return -math.inf, 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _templates(theta, par, T, Lc, nrm):
    """T[t] = diag(sd_t) L_t, Lc[t] = L_t (rows ṽ/‖ṽ‖, ṽ = (x, 1)), nrm = the norms ‖ṽ‖;
    a fixed term's T is diag(``fixed_sd``)."""
    kmax = par.kmax
    for t in range(par.term_k.shape[0]):
        k = par.term_k[t]
        for i in range(kmax):
            for j in range(kmax):
                Lc[t, i, j] = 0.0
                T[t, i, j] = 0.0
            Lc[t, i, i] = 1.0
            nrm[t, i] = 1.0
        if par.term_sd[t] < 0:
            for i in range(k):
                T[t, i, i] = par.fixed_sd[t, i]
            continue
        for j in range(k * (k - 1) // 2):
            Lc[t, par.spiral[t, j, 0], par.spiral[t, j, 1]] = theta[par.term_corr[t] + j]
        for i in range(k):
            s = 0.0
            for m in range(i + 1):
                s += Lc[t, i, m] * Lc[t, i, m]
            s = math.sqrt(s)
            nrm[t, i] = s
            sd = math.exp(theta[par.term_sd[t] + i])
            for m in range(i + 1):
                Lc[t, i, m] /= s
                T[t, i, m] = sd * Lc[t, i, m]


# --------------------------------------------------------------------------------------
# the blocked factorisation of M at one parameter value
# --------------------------------------------------------------------------------------


class Factor(NamedTuple):
    """M = LLᵀ by blocks, and what the solves and the gradient reuse."""

    sigma: float
    Tr: np.ndarray  # (nterms, kmax, kmax) relative templates T/σ
    Lam1: np.ndarray  # (k1, k1) the block-1 relative factor of one level
    L11: np.ndarray  # (l1, k1, k1)
    AL: np.ndarray  # (l1, k1, k1) A₁₁,ₗΛ̃₁
    M12: np.ndarray  # (nnz, k1, kmax)
    E: np.ndarray  # (nnz, k1, kmax) M₁₁⁻¹M₁₂
    L22: np.ndarray  # (q2, q2)
    ok: bool
    logdet: float


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_block2(d, Tr, B, rows):
    """B ← Λ̃₂ᵀB (``rows``) or BΛ̃₂, in place, for B (q2, q2)."""
    q2 = d.q2
    tmp = np.empty(d.par.kmax)
    for u in range(d.unit_term.shape[0]):
        t, o = d.unit_term[u], d.unit_off[u]
        k = d.par.term_k[t]
        for c in range(q2):
            for a in range(k):
                s = 0.0
                for m in range(a, k):
                    s += Tr[t, m, a] * (B[o + m, c] if rows else B[c, o + m])
                tmp[a] = s
            for a in range(k):
                if rows:
                    B[o + a, c] = tmp[a]
                else:
                    B[c, o + a] = tmp[a]


@njit(cache=True, nogil=True, error_model="numpy")
def _factor(theta, d, T):
    """Factorise M = I + Λ̃ᵀZᵀZΛ̃ by blocks at θ (T: the absolute templates)."""
    sigma = math.exp(theta[d.par.dim - 1])
    Tr, Lam1 = _relative_templates(d, T, sigma)
    L11, AL, logdet, ok = _factor_block1(d, Lam1)
    nnz, kmax = d.a12_off.shape[0], d.par.kmax
    M12 = np.zeros((nnz, d.k1, kmax))
    E = np.zeros((nnz, d.k1, kmax))
    L22 = np.zeros((d.q2, d.q2))
    if ok and d.q2 > 0:
        logdet2, ok = _factor_block2(d, Tr, Lam1, L11, M12, E, L22)
        logdet += logdet2
    return Factor(sigma, Tr, Lam1, L11, AL, M12, E, L22, ok, logdet)


@njit(cache=True, nogil=True, error_model="numpy")
def _relative_templates(d, T, sigma):
    """T̃ = T/σ per term, and Λ̃₁ (block 1's terms on one k₁ x k₁ lower triangle)."""
    nterms, kmax, k1 = d.par.term_k.shape[0], d.par.kmax, d.k1
    Tr = np.empty((nterms, kmax, kmax))
    for t in range(nterms):
        for i in range(kmax):
            for j in range(kmax):
                Tr[t, i, j] = T[t, i, j] / sigma
    Lam1 = np.zeros((k1, k1))
    for t in range(nterms):
        if d.par.term_block[t] == 1:
            o = d.par.term_off1[t]
            for i in range(d.par.term_k[t]):
                for j in range(i + 1):
                    Lam1[o + i, o + j] = Tr[t, i, j]
    return Tr, Lam1


@njit(cache=True, nogil=True, error_model="numpy")
def _factor_block1(d, Lam1):
    """Block 1 level by level: AL = A₁₁Λ̃₁, L₁₁ = chol(I + Λ̃₁ᵀ AL), with log|L₁₁|² summed
    (ok False at a pivot under the floor)."""
    l1, k1 = d.l1, d.k1
    L11 = np.empty((l1, k1, k1))
    AL = np.empty((l1, k1, k1))
    M = np.empty((k1, k1))
    logdet = 0.0
    for lv in range(l1):
        for m in range(k1):
            for b in range(k1):
                s = 0.0
                for c in range(b, k1):
                    s += d.A11[lv, m, c] * Lam1[c, b]
                AL[lv, m, b] = s
        for a in range(k1):
            for b in range(a + 1):
                s = 0.0
                for m in range(a, k1):
                    s += Lam1[m, a] * AL[lv, m, b]
                M[a, b] = s
                M[b, a] = s
            M[a, a] += 1.0
        if not chol(M, L11[lv], UNIT_PIVOT):
            return L11, AL, logdet, False
        for i in range(k1):
            logdet += 2.0 * math.log(L11[lv, i, i])
    return L11, AL, logdet, True


@njit(cache=True, nogil=True, error_model="numpy")
def _factor_block2(d, Tr, Lam1, L11, M12, E, L22):
    """The coupling M12_e = Λ̃₁ᵀ a_e T̃_t, E_e = L₁₁⁻ᵀL₁₁⁻¹M12_e, and L₂₂ = chol of the Schur
    complement I + Λ̃₂ᵀA₂₂Λ̃₂ − Σ M12ᵀE (filled in place); returns (log|L₂₂|², ok)."""
    q2 = d.q2
    S = np.empty((q2, q2))
    for i in range(q2):
        for j in range(q2):
            S[i, j] = d.A22[i, j]
    _scale_block2(d, Tr, S, False)
    _scale_block2(d, Tr, S, True)
    for i in range(q2):
        S[i, i] += 1.0
    _coupling(d, Tr, Lam1, L11, M12, E)
    _schur_update(d, M12, E, S)
    if not chol(S, L22, UNIT_PIVOT):
        return 0.0, False
    logdet = 0.0
    for i in range(q2):
        logdet += 2.0 * math.log(L22[i, i])
    return logdet, True


@njit(cache=True, nogil=True, error_model="numpy")
def _coupling(d, Tr, Lam1, L11, M12, E):
    """The coupling blocks M12_e = Λ̃₁ᵀ a_e T̃_t and E_e = (L₁₁L₁₁ᵀ)⁻¹M12_e, level by level
    (loops inside: a call per level would pay the data's reference counts each time)."""
    k1 = d.k1
    col = np.empty(k1)
    for lv in range(d.l1):
        for e in range(d.a12_ptr[lv], d.a12_ptr[lv + 1]):
            t, k = d.a12_term[e], d.a12_k[e]
            for a in range(k1):
                for b in range(k):
                    s = 0.0
                    for m in range(a, k1):
                        for c in range(b, k):
                            s += Lam1[m, a] * d.a12_val[e, m, c] * Tr[t, c, b]
                    M12[e, a, b] = s
            for b in range(k):
                for a in range(k1):
                    col[a] = M12[e, a, b]
                _fsolve(L11[lv], col)
                _bsolve(L11[lv], col)
                for a in range(k1):
                    E[e, a, b] = col[a]


@njit(cache=True, nogil=True, error_model="numpy")
def _schur_update(d, M12, E, S):
    """S −= Σ M12_eᵀ E_f over each level's pairs, lower triangle (units sorted)."""
    for lv in range(d.l1):
        lo, hi = d.a12_ptr[lv], d.a12_ptr[lv + 1]
        for e in range(lo, hi):
            ou, ku = d.a12_off[e], d.a12_k[e]
            for f in range(lo, e + 1):
                ow, kw = d.a12_off[f], d.a12_k[f]
                for a in range(ku):
                    for b in range(kw if f < e else a + 1):
                        s = 0.0
                        for m in range(d.k1):
                            s += M12[e, m, a] * E[f, m, b]
                        S[ou + a, ow + b] -= s


@njit(cache=True, nogil=True, error_model="numpy")
def _ztr(d, Zte1, Zte2, delta):
    """Zᵀr = Zᵀe − ZᵀX(β − β_ols) by blocks (Zte1, Zte2: Zᵀe)."""
    z1 = np.empty((d.l1, d.k1))
    for lv in range(d.l1):
        for a in range(d.k1):
            s = Zte1[lv, a]
            for j in range(d.par.p):
                s -= d.ZtX1[lv, a, j] * delta[j]
            z1[lv, a] = s
    z2 = np.empty(d.q2)
    for i in range(d.q2):
        s = Zte2[i]
        for j in range(d.par.p):
            s -= d.ZtX2[i, j] * delta[j]
        z2[i] = s
    return z1, z2


@njit(cache=True, nogil=True, error_model="numpy")
def _lam(d, F, v1, v2, transpose):
    """Λ̃v (or Λ̃ᵀv with ``transpose``) by blocks."""
    k1 = d.k1
    out1 = np.empty((d.l1, k1))
    for lv in range(d.l1):
        for a in range(k1):
            s = 0.0
            if transpose:
                for m in range(a, k1):
                    s += F.Lam1[m, a] * v1[lv, m]
            else:
                for m in range(a + 1):
                    s += F.Lam1[a, m] * v1[lv, m]
            out1[lv, a] = s
    out2 = np.empty(d.q2)
    for u in range(d.unit_term.shape[0]):
        t, o = d.unit_term[u], d.unit_off[u]
        k = d.par.term_k[t]
        for a in range(k):
            s = 0.0
            if transpose:
                for m in range(a, k):
                    s += F.Tr[t, m, a] * v2[o + m]
            else:
                for m in range(a + 1):
                    s += F.Tr[t, a, m] * v2[o + m]
            out2[o + a] = s
    return out1, out2


@njit(cache=True, nogil=True, error_model="numpy")
def _sub12(d, W, x2, out1):
    """out₁ −= W x₂ for a block-1/block-2 coupling W stored like ``a12_val`` (per
    entry e: a k₁ x k block between level lv and the block-2 unit at ``a12_off[e]``)."""
    for lv in range(d.l1):
        for e in range(d.a12_ptr[lv], d.a12_ptr[lv + 1]):
            o, k = d.a12_off[e], d.a12_k[e]
            for m in range(d.k1):
                s = 0.0
                for c in range(k):
                    s += W[e, m, c] * x2[o + c]
                out1[lv, m] -= s


@njit(cache=True, nogil=True, error_model="numpy")
def _sub21(d, W, x1, out2):
    """out₂ −= Wᵀ x₁ (:func:`_sub12`'s transpose)."""
    for lv in range(d.l1):
        for e in range(d.a12_ptr[lv], d.a12_ptr[lv + 1]):
            o, k = d.a12_off[e], d.a12_k[e]
            for c in range(k):
                s = 0.0
                for m in range(d.k1):
                    s += W[e, m, c] * x1[lv, m]
                out2[o + c] -= s


@njit(cache=True, nogil=True, error_model="numpy")
def _solve(d, F, c1, c2):
    """v = M⁻¹c by blocks (c1: (l1, k1), c2: (q2,))."""
    l1, k1 = d.l1, d.k1
    v1 = np.empty((l1, k1))
    for lv in range(l1):
        for a in range(k1):
            v1[lv, a] = c1[lv, a]
        _fsolve(F.L11[lv], v1[lv])
        _bsolve(F.L11[lv], v1[lv])
    v2 = np.empty(d.q2)
    for i in range(d.q2):
        v2[i] = c2[i]
    if d.q2 > 0:
        _sub21(d, F.M12, v1, v2)
        _fsolve(F.L22, v2)
        _bsolve(F.L22, v2)
        _sub12(d, F.E, v2, v1)
    return v1, v2


# --------------------------------------------------------------------------------------
# the log density and its gradient
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _loglik_blocked(theta, d, T, grad):
    """The marginal log-likelihood by blocks (any design): (ℓ, pwrss, G1, G2) with
    ∂ℓ/∂β written into ``grad[:p]`` and G the template-restricted ∂ℓ/∂Λ̃ (block 1 as one
    k₁ x k₁ matrix, block-2 terms in G2)."""
    out = _loglik_rhs(theta, d, T, grad, d.ete, d.Xte, d.Zte1, d.Zte2)
    return out[0], out[1], out[2], out[3]


@njit(cache=True, nogil=True, error_model="numpy")
def _loglik_rhs(theta, d, T, grad, ete, Xte, Zte1, Zte2):
    """:func:`_loglik_blocked` with the data's right-hand sides eᵀe, Xᵀe, Z₁ᵀe and Z₂ᵀe
    given (the partially marginal kernel passes those of e − Z_s b_s); also returns the
    conditional means (Λ̃₁v₁, Λ̃₂v₂) of the integrated effects."""
    nterms, kmax = d.par.term_k.shape[0], d.par.kmax
    p, l1, k1, q2 = d.par.p, d.l1, d.k1, d.q2
    F = _factor(theta, d, T)
    if not F.ok:
        G1, G2 = np.zeros((k1, k1)), np.zeros((nterms, kmax, kmax))
        return -math.inf, 0.0, G1, G2, np.zeros((l1, k1)), np.zeros(q2)
    s2 = F.sigma * F.sigma
    delta = np.empty(p)
    for j in range(p):
        delta[j] = theta[j] - d.beta_ols[j]
    Xtr = np.empty(p)  # Xᵀr = Xᵀe − XᵀXδ
    rtr = ete
    for j in range(p):
        s = 0.0
        for m in range(p):
            s += d.XtX[j, m] * delta[m]
        Xtr[j] = Xte[j] - s
        rtr += delta[j] * (s - 2.0 * Xte[j])
    z1, z2 = _ztr(d, Zte1, Zte2, delta)
    c1, c2 = _lam(d, F, z1, z2, True)
    v1, v2 = _solve(d, F, c1, c2)
    cv = 0.0
    for lv in range(l1):
        for a in range(k1):
            cv += c1[lv, a] * v1[lv, a]
    for i in range(q2):
        cv += c2[i] * v2[i]
    pwrss = _pwrss(rtr, cv)
    lp = -0.5 * (d.n * (LOG2PI + 2.0 * theta[d.par.dim - 1]) + F.logdet + pwrss / s2)
    b1, b2 = _lam(d, F, v1, v2, False)
    _grad_beta(d, Xtr, b1, b2, s2, grad)
    w1, w2 = _score_residual(d, F, z1, z2, v1, b2, b1)
    G1, G2 = _grad_lambda(d, F, w1, w2, v1, v2, s2)
    return lp, pwrss, G1, G2, b1, b2


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_beta(d, Xtr, b1, b2, s2, grad):
    """∂ℓ/∂β = (Xᵀr − XᵀZΛ̃v)/σ², written into ``grad[:p]``."""
    for j in range(d.par.p):
        s = Xtr[j]
        for lv in range(d.l1):
            for a in range(d.k1):
                s -= d.ZtX1[lv, a, j] * b1[lv, a]
        for i in range(d.q2):
            s -= d.ZtX2[i, j] * b2[i]
        grad[j] = s / s2


@njit(cache=True, nogil=True, error_model="numpy")
def _score_residual(d, F, z1, z2, v1, b2, b1):
    """w = Zᵀr − ZᵀZΛ̃v by blocks (A₁₁Λ̃₁v₁ = AL v₁)."""
    l1, k1, q2 = d.l1, d.k1, d.q2
    w1 = np.empty((l1, k1))
    for lv in range(l1):
        for a in range(k1):
            s = z1[lv, a]
            for m in range(k1):
                s -= F.AL[lv, a, m] * v1[lv, m]
            w1[lv, a] = s
    w2 = np.empty(q2)
    for i in range(q2):
        s = z2[i]
        for j in range(q2):
            s -= d.A22[i, j] * b2[j]
        w2[i] = s
    _sub12(d, d.a12_val, b2, w1)
    _sub21(d, d.a12_val, b1, w2)
    return w1, w2


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_lambda(d, F, w1, w2, v1, v2, s2):
    """G = ∂ℓ/∂Λ̃ on the templates, from the blocks of P = M⁻¹ where ZᵀZ is non-zero:
    block 1 and the coupling level by level, then the diagonal blocks of block 2."""
    k1, q2 = d.k1, d.q2
    G1 = np.zeros((k1, k1))
    G2 = np.zeros((d.par.term_k.shape[0], d.par.kmax, d.par.kmax))
    P11 = np.empty((d.l1, k1, k1))
    P12 = np.zeros((d.a12_off.shape[0], k1, d.par.kmax))
    P22 = np.empty((q2, q2))
    if q2 > 0:
        _chol_inverse(F.L22, P22)
    _block1_inverse(d, F, P22, P11, P12)
    _grad_block1(d, F, w1, v1, s2, P11, P12, G1, G2)
    if q2 > 0:
        _grad_block2(d, F, w2, v2, s2, P22, G2)
    return G1, G2


@njit(cache=True, nogil=True, error_model="numpy")
def _block1_inverse(d, F, P22, P11, P12):
    """Each level's blocks of P = M⁻¹: P11_l = (L₁₁L₁₁ᵀ)⁻¹, P12_e = −Σ_f E_f P22[u_f, u_e]
    (P22 symmetric: by rows), then P11_l −= Σ_e P12_e E_eᵀ (loops inside, one call)."""
    k1 = d.k1
    for lv in range(d.l1):
        _chol_inverse(F.L11[lv], P11[lv])
        lo, hi = d.a12_ptr[lv], d.a12_ptr[lv + 1]
        for e in range(lo, hi):
            ou, ku = d.a12_off[e], d.a12_k[e]
            for a in range(k1):
                for b in range(ku):
                    s = 0.0
                    for f in range(lo, hi):
                        ow = d.a12_off[f]
                        for c in range(d.a12_k[f]):
                            s += F.E[f, a, c] * P22[ou + b, ow + c]
                    P12[e, a, b] -= s
        for e in range(lo, hi):
            for a in range(k1):
                for b in range(k1):
                    s = 0.0
                    for c in range(d.a12_k[e]):
                        s += P12[e, a, c] * F.E[e, b, c]
                    P11[lv, a, b] -= s


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_block1(d, F, w1, v1, s2, P11, P12, G1, G2):
    """Block 1's G1 (−A₁₁Λ̃₁P₁₁ + w1 v1ᵀ/σ², −a_e T̃_t P12_eᵀ) and the block-2 units' share
    from the coupling (−a_eᵀ Λ̃₁ P12_e), level by level."""
    k1 = d.k1
    for lv in range(d.l1):
        for a in range(k1):
            for b in range(k1):
                s = w1[lv, a] * v1[lv, b] / s2
                for m in range(k1):
                    s -= F.AL[lv, a, m] * P11[lv, m, b]
                G1[a, b] += s
        for e in range(d.a12_ptr[lv], d.a12_ptr[lv + 1]):
            t, k = d.a12_term[e], d.a12_k[e]
            for a in range(k1):
                for b in range(k1):
                    s = 0.0
                    for c in range(k):
                        for m in range(c, k):
                            s += d.a12_val[e, a, m] * F.Tr[t, m, c] * P12[e, b, c]
                    G1[a, b] -= s
            for a in range(k):
                for b in range(k):
                    s = 0.0
                    for m in range(k1):
                        for c in range(m + 1):
                            s += d.a12_val[e, m, a] * F.Lam1[m, c] * P12[e, c, b]
                    G2[t, a, b] -= s


@njit(cache=True, nogil=True, error_model="numpy")
def _grad_block2(d, F, w2, v2, s2, P22, G2):
    """Block 2's diagonal blocks of G: −(A₂₂Λ̃₂P₂₂)_tt + w2 v2ᵀ/σ²."""
    q2 = d.q2
    B = np.empty((q2, q2))
    for i in range(q2):
        for j in range(q2):
            B[i, j] = d.A22[i, j]
    _scale_block2(d, F.Tr, B, False)
    for u in range(d.unit_term.shape[0]):
        t, o = d.unit_term[u], d.unit_off[u]
        k = d.par.term_k[t]
        for a in range(k):
            for b in range(k):
                s = 0.0
                for m in range(q2):
                    s += B[o + a, m] * P22[m, o + b]
                G2[t, a, b] += w2[o + a] * v2[o + b] / s2 - s


@njit(cache=True, nogil=True, error_model="numpy")
def _lambda1(par, T, sigma):
    """(l00, l10, l11) of a one-factor model's Λ̃₁ = [[l00, 0], [l10, l11]]/σ (one term of
    k <= 2 columns, or two scalar terms: l10 = 0; block-2 terms skipped)."""
    l00 = l10 = l11 = 0.0
    for t in range(par.term_k.shape[0]):
        if par.term_block[t] != 1:
            continue
        o = par.term_off1[t]
        for i in range(par.term_k[t]):
            for j in range(i + 1):
                if o + i == 0 and o + j == 0:
                    l00 = T[t, i, j] / sigma
                elif o + i == 1 and o + j == 0:
                    l10 = T[t, i, j] / sigma
                elif o + i == 1 and o + j == 1:
                    l11 = T[t, i, j] / sigma
    return l00, l10, l11


@njit(cache=True, nogil=True, error_model="numpy")
def _level_m(a00, a01, a11, l00, l10, l11):
    """One level's 2 x 2 algebra: AΛ̃ (al00, al01, al10, al11), M = I + Λ̃ᵀAΛ̃ (m00, m01,
    m11) and |M| = 1 + tr W + |A|(l00 l11)² (W = Λ̃ᵀAΛ̃), a sum of non-negative terms, so
    the determinant keeps its precision however large Λ̃ grows (m00 m11 − m01² does not)."""
    al00 = a00 * l00 + a01 * l10
    al01 = a01 * l11
    al10 = a01 * l00 + a11 * l10
    al11 = a11 * l11
    m00 = 1.0 + l00 * al00 + l10 * al10
    m01 = l00 * al01 + l10 * al11
    m11 = 1.0 + l11 * al11
    det = m00 + m11 - 1.0 + max(a00 * a11 - a01 * a01, 0.0) * (l00 * l11) ** 2
    return al00, al01, al10, al11, m00, m01, m11, det


@njit(cache=True, nogil=True, error_model="numpy")
def _loglik_one_factor(theta, d, T, grad):
    """:func:`_loglik_blocked` for :class:`OneFactor` data (k₁ <= 2, no block 2):
    one pass over the levels with the 1 x 1 or 2 x 2 algebra in closed form (M_l, its
    determinant and inverse, the solve and the gradient terms stay in registers)."""
    p, k1 = d.par.p, d.k1
    sigma = math.exp(theta[d.par.dim - 1])
    s2 = sigma * sigma
    l00, l10, l11 = _lambda1(d.par, T, sigma)
    delta = np.empty(p)
    for j in range(p):
        delta[j] = theta[j] - d.beta_ols[j]
    gb = np.empty(p)
    rtr = d.ete
    for j in range(p):
        s = 0.0
        for m in range(p):
            s += d.XtX[j, m] * delta[m]
        gb[j] = d.Xte[j] - s
        rtr += delta[j] * (s - 2.0 * d.Xte[j])
    logdet = 0.0
    cv = 0.0
    g00 = g10 = g11 = g01 = 0.0
    for lv in range(d.l1):
        z0 = d.Zte1[lv, 0]
        for j in range(p):
            z0 -= d.ZtX1[lv, 0, j] * delta[j]
        if k1 == 1:
            a = d.A11[lv, 0, 0]
            al = a * l00  # A Λ̃
            m = 1.0 + l00 * al
            logdet += math.log(m)
            c = l00 * z0
            v = c / m
            cv += c * v
            b = l00 * v
            for j in range(p):
                gb[j] -= d.ZtX1[lv, 0, j] * b
            g00 += (z0 - al * v) * v / s2 - al / m
            continue
        z1 = d.Zte1[lv, 1]
        for j in range(p):
            z1 -= d.ZtX1[lv, 1, j] * delta[j]
        a00, a01, a11 = d.A11[lv, 0, 0], d.A11[lv, 0, 1], d.A11[lv, 1, 1]
        al00, al01, al10, al11, m00, m01, m11, det = _level_m(a00, a01, a11, l00, l10, l11)
        logdet += math.log(det)
        i00, i01, i11 = m11 / det, -m01 / det, m00 / det  # M⁻¹
        c0 = l00 * z0 + l10 * z1  # c = Λ̃ᵀz
        c1 = l11 * z1
        v0 = i00 * c0 + i01 * c1
        v1 = i01 * c0 + i11 * c1
        cv += c0 * v0 + c1 * v1
        b0 = l00 * v0  # b = Λ̃v
        b1 = l10 * v0 + l11 * v1
        for j in range(p):
            gb[j] -= d.ZtX1[lv, 0, j] * b0 + d.ZtX1[lv, 1, j] * b1
        w0 = z0 - (al00 * v0 + al01 * v1)  # w = z − AΛ̃v
        w1 = z1 - (al10 * v0 + al11 * v1)
        g00 += w0 * v0 / s2 - (al00 * i00 + al01 * i01)  # G = w vᵀ/σ² − AΛ̃M⁻¹
        g01 += w0 * v1 / s2 - (al00 * i01 + al01 * i11)
        g10 += w1 * v0 / s2 - (al10 * i00 + al11 * i01)
        g11 += w1 * v1 / s2 - (al10 * i01 + al11 * i11)
    for j in range(p):
        grad[j] = gb[j] / s2
    pwrss = _pwrss(rtr, cv)
    lp = -0.5 * (d.n * (LOG2PI + 2.0 * theta[d.par.dim - 1]) + logdet + pwrss / s2)
    G1 = np.empty((k1, k1))
    G1[0, 0] = g00
    if k1 == 2:
        G1[0, 1], G1[1, 0], G1[1, 1] = g01, g10, g11
    return lp, pwrss, G1, np.zeros((d.par.term_k.shape[0], d.par.kmax, d.par.kmax))


@njit(cache=True, nogil=True, error_model="numpy")
def _level_stats(d, Zte1, lv):
    """Level lv's (a00, a01, a11, z0, z1) of Z₁ₗᵀZ₁ₗ and Z₁ₗᵀy′ (``Zte1``), zero-padded
    to 2 x 2."""
    if d.k1 == 1:
        return d.A11[lv, 0, 0], 0.0, 0.0, Zte1[lv, 0], 0.0
    return d.A11[lv, 0, 0], d.A11[lv, 0, 1], d.A11[lv, 1, 1], Zte1[lv, 0], Zte1[lv, 1]


@njit(cache=True, nogil=True, error_model="numpy")
def _one_factor_fixef_solve(d, Xte, Zte1, l00, l10, l11, sb, Minv, E, u, Sch):
    """The first pass over the levels of :class:`OneFactorFixef` data (k₁ <= 2 in closed
    form, k₁ = 1 as a 2 x 2 with a zero second column): per level M_l⁻¹ (``Minv`` (l1, 3):
    i00, i01, i11), E_l = M_l⁻¹F_l (F_l = Λ̃ᵀZ₁ₗᵀXcΛ̃_β) and u_l = M_l⁻¹c_l (c_l =
    Λ̃ᵀZ₁ₗᵀy′); the Schur complement S = I + Λ̃_βXcᵀXcΛ̃_β − Σ F_lᵀE_l into ``Sch`` and
    r̃ = Λ̃_βXcᵀy′ − Σ F_lᵀu_l.  Returns (Σ log|M_l|, Σ c_lᵀu_l, r̃)."""
    p = d.XtX.shape[0]
    two = d.k1 == 2
    F0 = np.empty(p)
    F1 = np.empty(p)
    rt = np.empty(p)
    for i in range(p):
        rt[i] = sb[i] * Xte[i]
        for j in range(p):
            Sch[i, j] = sb[i] * d.XtX[i, j] * sb[j]
        Sch[i, i] += 1.0
    logdet = 0.0
    cv = 0.0
    for lv in range(d.l1):
        a00, a01, a11, z0, z1 = _level_stats(d, Zte1, lv)
        _, _, _, _, m00, m01, m11, det = _level_m(a00, a01, a11, l00, l10, l11)
        logdet += math.log(det)
        i00, i01, i11 = m11 / det, -m01 / det, m00 / det
        Minv[lv, 0], Minv[lv, 1], Minv[lv, 2] = i00, i01, i11
        c0 = l00 * z0 + l10 * z1
        c1 = l11 * z1
        u0 = i00 * c0 + i01 * c1
        u1 = i01 * c0 + i11 * c1
        u[lv, 0], u[lv, 1] = u0, u1
        cv += c0 * u0 + c1 * u1
        for j in range(p):
            x0 = d.ZtX1[lv, 0, j]
            x1 = d.ZtX1[lv, 1, j] if two else 0.0
            f0 = (l00 * x0 + l10 * x1) * sb[j]
            f1 = l11 * x1 * sb[j]
            F0[j], F1[j] = f0, f1
            E[lv, 0, j] = i00 * f0 + i01 * f1
            E[lv, 1, j] = i01 * f0 + i11 * f1
            rt[j] -= f0 * u0 + f1 * u1
        for i in range(p):
            for j in range(i + 1):
                s = F0[i] * E[lv, 0, j] + F1[i] * E[lv, 1, j]
                Sch[i, j] -= s
                if j < i:
                    Sch[j, i] -= s
    return logdet, cv, rt


@njit(cache=True, nogil=True, error_model="numpy")
def _loglik_one_factor_fixef(theta, d, T, ete, Xte, Zte1):
    """:func:`_loglik_rhs` for :class:`OneFactorFixef` data: block 1 per level in
    closed form, β − m (p columns, Λ̃_β = diag(prior SDs)/σ) as block 2; two passes over
    the levels (the solve, then the gradient with P_ll = M_l⁻¹ + E_lS⁻¹E_lᵀ and
    P_lβ = −E_lS⁻¹).  Also returns the conditional means Λ̃v of b (l1, k1) and β − m."""
    par = d.par
    nterms, kmax = par.term_k.shape[0], par.kmax
    k1, l1, p = d.k1, d.l1, d.XtX.shape[0]
    two = k1 == 2
    sigma = math.exp(theta[par.dim - 1])
    s2 = sigma * sigma
    l00, l10, l11 = _lambda1(par, T, sigma)
    sb = np.empty(p)
    for j in range(p):
        sb[j] = par.fixed_sd[nterms - 1, j] / sigma
    Minv = np.empty((l1, 3))
    E = np.empty((l1, 2, p))
    u = np.empty((l1, 2))
    Sch = np.empty((p, p))
    logdet, cv, rt = _one_factor_fixef_solve(d, Xte, Zte1, l00, l10, l11, sb, Minv, E, u, Sch)
    G1 = np.zeros((k1, k1))
    G2 = np.zeros((nterms, kmax, kmax))
    LS = np.empty((p, p))
    bh1 = np.zeros((l1, k1))
    bb = np.empty(p)  # Λ̃_β v_β
    if not (math.isfinite(logdet) and chol(Sch, LS, UNIT_PIVOT)):
        return -math.inf, 0.0, G1, G2, bh1, bb
    for i in range(p):
        logdet += 2.0 * math.log(LS[i, i])
    vb = rt.copy()
    _fsolve(LS, vb)
    _bsolve(LS, vb)
    for i in range(p):
        cv += rt[i] * vb[i]
    pwrss = _pwrss(ete, cv)
    lp = -0.5 * (d.n * (LOG2PI + 2.0 * theta[par.dim - 1]) + logdet + pwrss / s2)

    Sinv = np.empty((p, p))
    _chol_inverse(LS, Sinv)
    wb = np.empty(p)  # w_β = Xcᵀy′ − Σ C_lᵀΛ̃v_l − XcᵀXcΛ̃_βv_β
    gb = np.zeros(p)  # diag of −Σ C_lᵀΛ̃P_lβ
    for j in range(p):
        bb[j] = sb[j] * vb[j]
    for i in range(p):
        s = Xte[i]
        for j in range(p):
            s -= d.XtX[i, j] * bb[j]
        wb[i] = s
    g00, g01, g10, g11 = _one_factor_fixef_levels(
        d, Zte1, (l00, l10, l11), sb, Minv, E, u, vb, Sinv, bb, s2, bh1, wb, gb
    )
    G1[0, 0] = g00
    if two:
        G1[0, 1], G1[1, 0], G1[1, 1] = g01, g10, g11
    t_b = nterms - 1
    for j in range(p):
        s = 0.0
        for m in range(p):
            s += d.XtX[j, m] * sb[m] * Sinv[m, j]
        G2[t_b, j, j] = gb[j] + wb[j] * vb[j] / s2 - s
    return lp, pwrss, G1, G2, bh1, bb


@njit(cache=True, nogil=True, error_model="numpy")
def _one_factor_fixef_levels(d, Zte1, lam, sb, Minv, E, u, vb, Sinv, bb, s2, bh1, wb, gb):
    """The gradient pass of :func:`_loglik_one_factor_fixef` over the levels: each
    level's conditional mean into ``bh1``, its share of w_β and of ∂ℓ/∂Λ̃_β's diagonal into
    ``wb`` and ``gb``; returns block 1's ∂ℓ/∂Λ̃₁ entries (g00, g01, g10, g11)."""
    l00, l10, l11 = lam
    p, l1, two = d.XtX.shape[0], d.l1, d.k1 == 2
    P0 = np.empty(p)  # P_lβ rows
    P1 = np.empty(p)
    g00 = g01 = g10 = g11 = 0.0
    for lv in range(l1):
        a00, a01, a11, z0, z1 = _level_stats(d, Zte1, lv)
        v0, v1 = u[lv, 0], u[lv, 1]
        for j in range(p):
            v0 -= E[lv, 0, j] * vb[j]
            v1 -= E[lv, 1, j] * vb[j]
        bh1[lv, 0] = l00 * v0
        if two:
            bh1[lv, 1] = l10 * v0 + l11 * v1
        p00, p01, p11 = Minv[lv, 0], Minv[lv, 1], Minv[lv, 2]
        for j in range(p):
            s0 = 0.0
            s1 = 0.0
            for m in range(p):
                s0 += E[lv, 0, m] * Sinv[m, j]
                s1 += E[lv, 1, m] * Sinv[m, j]
            P0[j], P1[j] = -s0, -s1
            p00 += s0 * E[lv, 0, j]
            p01 += s0 * E[lv, 1, j]
            p11 += s1 * E[lv, 1, j]
        al00 = a00 * l00 + a01 * l10
        al01 = a01 * l11
        al10 = a01 * l00 + a11 * l10
        al11 = a11 * l11
        w0 = z0 - (al00 * v0 + al01 * v1)
        w1 = z1 - (al10 * v0 + al11 * v1)
        c00 = c01 = c10 = c11 = 0.0  # C Λ̃_β P_βl
        for j in range(p):
            x0 = d.ZtX1[lv, 0, j]
            x1 = d.ZtX1[lv, 1, j] if two else 0.0
            w0 -= x0 * bb[j]
            w1 -= x1 * bb[j]
            c00 += x0 * sb[j] * P0[j]
            c01 += x0 * sb[j] * P1[j]
            c10 += x1 * sb[j] * P0[j]
            c11 += x1 * sb[j] * P1[j]
            wb[j] -= x0 * (l00 * v0) + x1 * (l10 * v0 + l11 * v1)
            gb[j] -= x0 * (l00 * P0[j]) + x1 * (l10 * P0[j] + l11 * P1[j])
        g00 += w0 * v0 / s2 - (al00 * p00 + al01 * p01) - c00
        g01 += w0 * v1 / s2 - (al00 * p01 + al01 * p11) - c01
        g10 += w1 * v0 / s2 - (al10 * p00 + al11 * p01) - c10
        g11 += w1 * v1 / s2 - (al10 * p01 + al11 * p11) - c11
    return g00, g01, g10, g11


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad_one_factor_fixef(theta, d, grad):
    """:func:`logp_grad` for :class:`OneFactorFixef` data."""
    T, Lc, nrm = _start(theta, d.par, grad)
    lp, pwrss, G1, G2, _, _ = _loglik_one_factor_fixef(theta, d, T, d.ete, d.Xte, d.Zte1)
    return _prior_terms(theta, d.par, d.n, T, Lc, nrm, lp, pwrss, G1, G2, grad)


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad(theta, d, grad):
    """Log posterior density of the unconstrained θ (priors, Jacobians, marginal
    likelihood, every normalising constant included) for :class:`KernelData`; its
    gradient goes into ``grad``."""
    T, Lc, nrm = _start(theta, d.par, grad)
    lp, pwrss, G1, G2 = _loglik_blocked(theta, d, T, grad)
    return _prior_terms(theta, d.par, d.n, T, Lc, nrm, lp, pwrss, G1, G2, grad)


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad_one_factor(theta, d, grad):
    """:func:`logp_grad` for :class:`OneFactor` data."""
    T, Lc, nrm = _start(theta, d.par, grad)
    lp, pwrss, G1, G2 = _loglik_one_factor(theta, d, T, grad)
    return _prior_terms(theta, d.par, d.n, T, Lc, nrm, lp, pwrss, G1, G2, grad)


@njit(cache=True, nogil=True, error_model="numpy")
def _start(theta, par, grad):
    """Zero the gradient; the templates T, the correlation factors and their row norms."""
    nterms, kmax = par.term_k.shape[0], par.kmax
    for i in range(par.dim):
        grad[i] = 0.0
    T = np.empty((nterms, kmax, kmax))
    Lc = np.empty((nterms, kmax, kmax))
    nrm = np.empty((nterms, kmax))
    _templates(theta, par, T, Lc, nrm)
    return T, Lc, nrm


@njit(cache=True, nogil=True, error_model="numpy")
def _prior_terms(theta, par, n, T, Lc, nrm, lp, pwrss, G1, G2, grad):
    """From the likelihood's ℓ and G = ∂ℓ/∂Λ̃ (block 1: G1, block 2: G2), the log density
    of θ: the chain rule to log σ, log sd and the correlation parameters, plus every prior
    and Jacobian term."""
    if lp == -math.inf or pwrss < 0.0:
        return -math.inf
    nterms, kmax, p = par.term_k.shape[0], par.kmax, par.p
    sigma = math.exp(theta[par.dim - 1])
    s2 = sigma * sigma

    # ∂ℓ/∂T = G/σ and ∂ℓ/∂σ; then sd = exp(x), L = rows ṽ/‖ṽ‖, priors and Jacobians
    gsig = -n / sigma + pwrss / (s2 * sigma)
    GT = np.zeros((nterms, kmax, kmax))
    for t in range(nterms):
        k = par.term_k[t]
        for a in range(k):
            for b in range(a + 1):
                if par.term_block[t] == LATENT:  # G2 holds ∂ℓ/∂T itself
                    GT[t, a, b] = G2[t, a, b]
                    continue
                if par.term_block[t] == 1:
                    o = par.term_off1[t]
                    g = G1[o + a, o + b]
                else:
                    g = G2[t, a, b]
                GT[t, a, b] = g / sigma
                gsig -= g * T[t, a, b] / s2
    for j in range(p):
        v, g = _prior(par.prior_kind[j], par.prior_par[j], par.prior_const[j], theta[j])
        lp += v
        grad[j] += g
    slot = p
    gL = np.empty((kmax, kmax))
    for t in range(nterms):
        k = par.term_k[t]
        if par.term_sd[t] < 0:  # integrated β: only its σ-dependence (above) counts
            continue
        for a in range(k):
            x = theta[par.term_sd[t] + a]
            sd = math.exp(x)
            gs = 0.0
            for b in range(a + 1):
                gs += GT[t, a, b] * Lc[t, a, b]
                gL[a, b] = sd * GT[t, a, b]
            v, g = _prior(par.prior_kind[slot], par.prior_par[slot], par.prior_const[slot], sd)
            lp += v + x
            grad[par.term_sd[t] + a] += (gs + g) * sd + 1.0
            slot += 1
        if k > 1:
            # LKJ density of L and the transform's Jacobian: (2η + k − 1) Σ log L_ii
            coef = 2.0 * par.lkj_eta[t] + k - 1.0
            lp += par.lkj_norm[t]
            for a in range(1, k):
                lp += coef * math.log(Lc[t, a, a])
                gL[a, a] += coef / Lc[t, a, a]
            for j in range(k * (k - 1) // 2):
                a, b = par.spiral[t, j, 0], par.spiral[t, j, 1]
                dot = 0.0
                for m in range(a + 1):
                    dot += gL[a, m] * Lc[t, a, m]
                grad[par.term_corr[t] + j] += (gL[a, b] - dot * Lc[t, a, b]) / nrm[t, a]
    v, g = _prior(par.prior_kind[slot], par.prior_par[slot], par.prior_const[slot], sigma)
    lp += v + theta[par.dim - 1]
    grad[par.dim - 1] += (gsig + g) * sigma + 1.0
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def draw_b(thetas, d, seed, b1, b2):
    """For each row of ``thetas``, one exact draw of b | β, Σ, σ, y:
    b = Λ̃(v + σL⁻ᵀε), ε ~ N(0, I), into b1 (N, l1, k1) and b2 (N, q2).  Its mean Λ̃v is
    the conditional mode and its covariance σ²Λ̃M⁻¹Λ̃ᵀ (lme4's condVar at fixed Σ, σ)."""
    np.random.seed(seed)
    nterms, kmax = d.par.term_k.shape[0], d.par.kmax
    T = np.empty((nterms, kmax, kmax))
    Lc = np.empty((nterms, kmax, kmax))
    nrm = np.empty((nterms, kmax))
    for i in range(thetas.shape[0]):
        _templates(thetas[i], d.par, T, Lc, nrm)
        _draw_row(thetas[i], d, T, d.Zte1, d.Zte2, b1[i], b2[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _draw_row(theta, d, T, Zte1, Zte2, b1, b2):
    """:func:`draw_b` at one θ, with Zᵀe given (Z₁ᵀe, Z₂ᵀe): b1 (l1, k1), b2 (q2,)."""
    l1, k1, q2 = d.l1, d.k1, d.q2
    F = _factor(theta, d, T)
    e1 = np.empty((l1, k1))
    e2 = np.empty(q2)
    for lv in range(l1):
        for a in range(k1):
            e1[lv, a] = np.random.standard_normal()
    for j in range(q2):
        e2[j] = np.random.standard_normal()
    if not F.ok:
        for lv in range(l1):
            for a in range(k1):
                b1[lv, a] = math.nan
        for j in range(q2):
            b2[j] = math.nan
        return
    delta = np.empty(d.par.p)
    for j in range(d.par.p):
        delta[j] = theta[j] - d.beta_ols[j]
    z1, z2 = _ztr(d, Zte1, Zte2, delta)
    c1, c2 = _lam(d, F, z1, z2, True)
    v1, v2 = _solve(d, F, c1, c2)
    if q2 > 0:  # x = L⁻ᵀε: x₂ = L₂₂⁻ᵀε₂, x₁ = L₁₁⁻ᵀε₁ − E x₂
        _bsolve(F.L22, e2)
    for lv in range(l1):
        _bsolve(F.L11[lv], e1[lv])
    _sub12(d, F.E, e2, e1)
    for lv in range(l1):
        for a in range(k1):
            v1[lv, a] += F.sigma * e1[lv, a]
    for j in range(q2):
        v2[j] += F.sigma * e2[j]
    r1, r2 = _lam(d, F, v1, v2, False)
    for lv in range(l1):
        for a in range(k1):
            b1[lv, a] = r1[lv, a]
    for j in range(q2):
        b2[j] = r2[j]


@njit(cache=True, nogil=True, error_model="numpy")
def draw_b_one_factor(thetas, d, seed, b1):
    """:func:`draw_b` for :class:`OneFactor` data, the 1 x 1 or 2 x 2 algebra in closed
    form: per level M = LLᵀ, v = M⁻¹Λ̃ᵀz, b = Λ̃(v + σL⁻ᵀε)."""
    np.random.seed(seed)
    par = d.par
    nterms, kmax, p, k1 = par.term_k.shape[0], par.kmax, par.p, d.k1
    T = np.empty((nterms, kmax, kmax))
    Lc = np.empty((nterms, kmax, kmax))
    nrm = np.empty((nterms, kmax))
    delta = np.empty(p)
    for i in range(thetas.shape[0]):
        theta = thetas[i]
        _templates(theta, par, T, Lc, nrm)
        sigma = math.exp(theta[par.dim - 1])
        l00, l10, l11 = _lambda1(par, T, sigma)
        for j in range(p):
            delta[j] = theta[j] - d.beta_ols[j]
        for lv in range(d.l1):
            z0 = d.Zte1[lv, 0]
            for j in range(p):
                z0 -= d.ZtX1[lv, 0, j] * delta[j]
            e0 = np.random.standard_normal()
            if k1 == 1:
                m = 1.0 + l00 * l00 * d.A11[lv, 0, 0]
                b1[i, lv, 0] = l00 * (l00 * z0 / m + sigma * e0 / math.sqrt(m))
                continue
            z1 = d.Zte1[lv, 1]
            for j in range(p):
                z1 -= d.ZtX1[lv, 1, j] * delta[j]
            e1 = np.random.standard_normal()
            a00, a01, a11 = d.A11[lv, 0, 0], d.A11[lv, 0, 1], d.A11[lv, 1, 1]
            _, _, _, _, m00, m01, m11, det = _level_m(a00, a01, a11, l00, l10, l11)
            c0, c1 = l00 * z0 + l10 * z1, l11 * z1
            v0 = (m11 * c0 - m01 * c1) / det
            v1 = (m00 * c1 - m01 * c0) / det
            q00 = math.sqrt(m00)  # L = [[q00, 0], [q10, q11]]; x = L⁻ᵀε
            q10 = m01 / q00
            q11 = math.sqrt(det / m00)  # m11 − q10² = |M|/m00
            x1 = e1 / q11
            x0 = (e0 - q10 * x1) / q00
            u0, u1 = v0 + sigma * x0, v1 + sigma * x1
            b1[i, lv, 0] = l00 * u0
            b1[i, lv, 1] = l10 * u0 + l11 * u1


@njit(cache=True, nogil=True, error_model="numpy")
def draw_b_one_factor_fixef(thetas, d, seed, b1, beta):
    """:func:`draw_b` for :class:`OneFactorFixef` data: (β − m, b) jointly
    (:func:`_draw_row_fixef`)."""
    np.random.seed(seed)
    par = d.par
    nterms, kmax = par.term_k.shape[0], par.kmax
    T = np.empty((nterms, kmax, kmax))
    Lc = np.empty((nterms, kmax, kmax))
    nrm = np.empty((nterms, kmax))
    for i in range(thetas.shape[0]):
        _templates(thetas[i], par, T, Lc, nrm)
        _draw_row_fixef(thetas[i], d, T, d.Xte, d.Zte1, b1[i], beta[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _draw_row_fixef(theta, d, T, Xte, Zte1, b1, beta):
    """One draw of (β − m, b) for :class:`OneFactorFixef` data at θ, with Xcᵀy′ and Z₁ᵀy′
    given.  x = L⁻ᵀε by blocks: x_β ~ N(0, S⁻¹) (S = L_SL_Sᵀ: x_β = L_S⁻ᵀε_β), then per
    level x_l = R_lε_l − E_lx_β (R_lR_lᵀ = M_l⁻¹); β − m = Λ̃_β(v_β + σx_β),
    b_l = Λ̃(v_l + σx_l)."""
    par = d.par
    nterms = par.term_k.shape[0]
    k1, l1, p = d.k1, d.l1, d.XtX.shape[0]
    Minv = np.empty((l1, 3))
    E = np.empty((l1, 2, p))
    u = np.empty((l1, 2))
    Sch = np.empty((p, p))
    LS = np.empty((p, p))
    sb = np.empty(p)
    xb = np.empty(p)
    sigma = math.exp(theta[par.dim - 1])
    l00, l10, l11 = _lambda1(par, T, sigma)
    for j in range(p):
        sb[j] = par.fixed_sd[nterms - 1, j] / sigma
    logdet, _, rt = _one_factor_fixef_solve(d, Xte, Zte1, l00, l10, l11, sb, Minv, E, u, Sch)
    for j in range(p):
        xb[j] = np.random.standard_normal()
    if not (math.isfinite(logdet) and chol(Sch, LS, UNIT_PIVOT)):
        for j in range(p):
            beta[j] = math.nan
        for lv in range(l1):
            for a in range(k1):
                b1[lv, a] = math.nan
        return
    vb = rt.copy()
    _fsolve(LS, vb)
    _bsolve(LS, vb)
    _bsolve(LS, xb)
    for j in range(p):
        xb[j] = vb[j] + sigma * xb[j]  # v_β + σx_β
        beta[j] = sb[j] * xb[j]
    for lv in range(l1):
        i00, i01, i11 = Minv[lv, 0], Minv[lv, 1], Minv[lv, 2]
        e0 = np.random.standard_normal()
        r00 = math.sqrt(i00)
        x0 = u[lv, 0] + sigma * r00 * e0
        for j in range(p):
            x0 -= E[lv, 0, j] * xb[j]
        if k1 == 1:
            b1[lv, 0] = l00 * x0
            continue
        e1 = np.random.standard_normal()
        r10 = i01 / r00
        r11 = math.sqrt(max(i11 - r10 * r10, 0.0))
        x1 = u[lv, 1] + sigma * (r10 * e0 + r11 * e1)
        for j in range(p):
            x1 -= E[lv, 1, j] * xb[j]
        b1[lv, 0] = l00 * x0
        b1[lv, 1] = l10 * x0 + l11 * x1


# --------------------------------------------------------------------------------------
# partially marginal: one grouping factor (and β) integrated out, the other effects sampled
# --------------------------------------------------------------------------------------


class PartialData(NamedTuple):
    """The partially marginal kernel's data (Lai, Domke & Sheldon 2024): ``base`` integrates
    block 1 (and β, and any dense block 2) out of y − Z_s b_s, where b_s, the effects of
    the sampled (``LATENT``) terms, are θ[hdim:], per unit (one level of a term) centred
    (b_s itself) or not (b_s = T z, z ~ N(0, I)).  Only the right-hand sides of ``base``
    depend on b_s: eᵀe − 2b_sᵀZ_sᵀe + b_sᵀZ_sᵀZ_sb_s, Z₁ᵀe − Z₁ᵀZ_sb_s, and Z₂ᵀe (or Xᵀe)
    − (Z₂ or X)ᵀZ_sb_s, from sparse products computed once."""

    base: KernelData | OneFactorFixef  # OneFactorFixef: k₁ <= 2, β integrated, no block 2
    beta_ols: np.ndarray  # (p,) the base's β_ols when β is sampled (else empty)
    hdim: int  # θ[:hdim]: base.par's parameters (β?, SDs, correlations, log σ)
    dim: int
    lat_term: np.ndarray  # (nu,) term of each sampled unit
    lat_off: np.ndarray  # (nu,) its first entry in b_s (θ[hdim + off])
    centred: np.ndarray  # (nterms,) 1: the term's effects are sampled as they are
    Zte: np.ndarray  # (qs,) Z_sᵀe
    ZtZ_ptr: np.ndarray  # (qs + 1,) CSR of Z_sᵀZ_s
    ZtZ_col: np.ndarray
    ZtZ_val: np.ndarray
    c1_ptr: np.ndarray  # (l1 + 1,) CSR over block-1 levels of Z₁ₗᵀZ_s
    c1_off: np.ndarray  # (nnz,) first b_s entry of the unit
    c1_k: np.ndarray  # (nnz,) its columns
    c1_val: np.ndarray  # (nnz, k1, kmax)
    ZtB: np.ndarray  # (qs, q2) Z_sᵀ[Z₂ X_c] (base block 2: dense terms, integrated β)
    ZtX: np.ndarray  # (qs, p) Z_sᵀX_c when β is sampled


@njit(cache=True, nogil=True, error_model="numpy")
def _latent_b(theta, d, T):
    """b_s from θ: centred units as they are, the others T z."""
    qs = d.dim - d.hdim
    b = np.empty(qs)
    for u in range(d.lat_term.shape[0]):
        t, o = d.lat_term[u], d.lat_off[u]
        k = d.base.par.term_k[t]
        for a in range(k):
            if d.centred[t]:
                b[o + a] = theta[d.hdim + o + a]
                continue
            s = 0.0
            for m in range(a + 1):
                s += T[t, a, m] * theta[d.hdim + o + m]
            b[o + a] = s
    return b


@njit(cache=True, nogil=True, error_model="numpy")
def _partial_rhs(theta, d, b):
    """(eᵀe, Z₁ᵀe) of e − Z_sb_s, Z_sᵀZ_sb_s, and the updates [Z₂ X_c]ᵀZ_sb_s (``Zb``)
    and X_cᵀZ_sb_s (``Xb``, β sampled) of the base's other right-hand sides."""
    base = d.base
    qs = b.shape[0]
    zzb = np.zeros(qs)
    for i in range(qs):
        s = 0.0
        for e in range(d.ZtZ_ptr[i], d.ZtZ_ptr[i + 1]):
            s += d.ZtZ_val[e] * b[d.ZtZ_col[e]]
        zzb[i] = s
    ete = base.ete
    for i in range(qs):
        ete += b[i] * (zzb[i] - 2.0 * d.Zte[i])
    Zte1 = base.Zte1.copy()
    for lv in range(base.l1):
        for e in range(d.c1_ptr[lv], d.c1_ptr[lv + 1]):
            o, k = d.c1_off[e], d.c1_k[e]
            for a in range(base.k1):
                s = 0.0
                for c in range(k):
                    s += d.c1_val[e, a, c] * b[o + c]
                Zte1[lv, a] -= s
    Zb = np.zeros(d.ZtB.shape[1])
    Xb = np.zeros(d.ZtX.shape[1])
    for i in range(qs):
        for j in range(Zb.shape[0]):
            Zb[j] += d.ZtB[i, j] * b[i]
        for j in range(Xb.shape[0]):
            Xb[j] += d.ZtX[i, j] * b[i]
    return ete, Zte1, zzb, Zb, Xb


def _base_loglik(theta, base, T, grad, ete, Zte1, Zb, Xb):
    """The integrated part's log-likelihood of e − Z_sb_s: (ℓ, pwrss, G1, G2, b̂₁, b̂₂)."""
    raise NotImplementedError  # compiled through the overload below


@overload(_base_loglik, jit_options={"nogil": True, "error_model": "numpy"})
def _base_loglik_impl(theta, base, T, grad, ete, Zte1, Zb, Xb):
    if getattr(base, "instance_class", None) is OneFactorFixef:

        def fixef(theta, base, T, grad, ete, Zte1, Zb, Xb):
            Xte = base.Xte - Zb
            return _loglik_one_factor_fixef(theta, base, T, ete, Xte, Zte1)

        return fixef

    def blocked(theta, base, T, grad, ete, Zte1, Zb, Xb):
        Zte2 = base.Zte2 - Zb
        Xte = base.Xte - Xb
        return _loglik_rhs(theta, base, T, grad, ete, Xte, Zte1, Zte2)

    return blocked


def _base_draw(theta, base, T, Zte1, Zb, Xb, b1, b2):
    """An exact draw of the integrated effects given b_s (b2: block 2, or β − m)."""
    raise NotImplementedError  # compiled through the overload below


@overload(_base_draw, jit_options={"nogil": True, "error_model": "numpy"})
def _base_draw_impl(theta, base, T, Zte1, Zb, Xb, b1, b2):
    if getattr(base, "instance_class", None) is OneFactorFixef:

        def fixef(theta, base, T, Zte1, Zb, Xb, b1, b2):
            _draw_row_fixef(theta, base, T, base.Xte - Zb, Zte1, b1, b2)

        return fixef

    def blocked(theta, base, T, Zte1, Zb, Xb, b1, b2):
        _draw_row(theta, base, T, Zte1, base.Zte2 - Zb, b1, b2)

    return blocked


@njit(cache=True, nogil=True, error_model="numpy")
def _latent_prior(theta, d, T, g, G2, grad):
    """The sampled effects' prior and the chain rule from g = ∂ℓ/∂b_s: θ[hdim:]'s gradient
    into ``grad``, ∂(ℓ + log prior)/∂T of every sampled term into ``G2`` (absolute T);
    returns the log prior.  Non-centred: z ~ N(0, I).  Centred: b ~ N(0, TTᵀ), with
    w = T⁻¹b: −½‖w‖² − Σ log T_ii, ∂/∂b = −T⁻ᵀw, ∂/∂T = T⁻ᵀwwᵀ − diag(1/T_ii)."""
    par = d.base.par
    nterms, kmax = par.term_k.shape[0], par.kmax
    h = d.hdim
    lp = 0.0
    W = np.zeros((nterms, kmax, kmax))
    nl = np.zeros(nterms)
    w = np.empty(kmax)
    for u in range(d.lat_term.shape[0]):
        t, o = d.lat_term[u], d.lat_off[u]
        k = par.term_k[t]
        nl[t] += 1.0
        lp -= 0.5 * k * LOG2PI
        if not d.centred[t]:
            for a in range(k):
                z = theta[h + o + a]
                s = -z
                for m in range(a, k):
                    s += T[t, m, a] * g[o + m]  # Tᵀg
                grad[h + o + a] = s
                lp -= 0.5 * z * z
                for m in range(a + 1):
                    G2[t, a, m] += g[o + a] * theta[h + o + m]
            continue
        for a in range(k):  # w = T⁻¹b
            s = theta[h + o + a]
            for m in range(a):
                s -= T[t, a, m] * w[m]
            w[a] = s / T[t, a, a]
            lp -= 0.5 * w[a] * w[a]
        for a in range(k):
            for m in range(k):
                W[t, a, m] += w[a] * w[m]
        for a in range(k - 1, -1, -1):  # w ← T⁻ᵀw
            s = w[a]
            for m in range(a + 1, k):
                s -= T[t, m, a] * w[m]
            w[a] = s / T[t, a, a]
        for a in range(k):
            grad[h + o + a] = g[o + a] - w[a]
    for t in range(nterms):
        if par.term_block[t] != LATENT or not d.centred[t]:
            continue
        k = par.term_k[t]
        for a in range(k):
            lp -= nl[t] * math.log(T[t, a, a])
            G2[t, a, a] -= nl[t] / T[t, a, a]
        for m in range(k):  # column m of T⁻ᵀW: back substitution
            for a in range(k - 1, -1, -1):
                s = W[t, a, m]
                for c in range(a + 1, k):
                    s -= T[t, c, a] * w[c]
                w[a] = s / T[t, a, a]
            for a in range(m, k):
                G2[t, a, m] += w[a]
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def logp_grad_partial(theta, d, grad):
    """:func:`logp_grad` for :class:`PartialData`: the base's marginal log-likelihood of
    y − Z_sb_s, the gradient in b_s, Z_sᵀV⁻¹r = (Z_sᵀr − Z_sᵀZ₁b̂₁ − Z_sᵀ[Z₂ X]b̂₂)/σ²
    (b̂ the integrated effects' conditional means), and the sampled effects' prior."""
    base = d.base
    T, Lc, nrm = _start(theta, base.par, grad)
    b = _latent_b(theta, d, T)
    ete, Zte1, zzb, Zb, Xb = _partial_rhs(theta, d, b)
    lp, pwrss, G1, G2, bh1, bh2 = _base_loglik(theta, base, T, grad, ete, Zte1, Zb, Xb)
    if lp == -math.inf:
        return -math.inf
    s2 = math.exp(2.0 * theta[d.hdim - 1])
    qs = b.shape[0]
    g = np.empty(qs)
    for i in range(qs):
        s = d.Zte[i] - zzb[i]
        for j in range(d.ZtB.shape[1]):
            s -= d.ZtB[i, j] * bh2[j]
        for j in range(d.ZtX.shape[1]):
            s -= d.ZtX[i, j] * (theta[j] - d.beta_ols[j])
        g[i] = s
    for lv in range(base.l1):
        for e in range(d.c1_ptr[lv], d.c1_ptr[lv + 1]):
            o, k = d.c1_off[e], d.c1_k[e]
            for c in range(k):
                s = 0.0
                for a in range(base.k1):
                    s += d.c1_val[e, a, c] * bh1[lv, a]
                g[o + c] -= s
    for i in range(qs):
        g[i] /= s2
    lp += _latent_prior(theta, d, T, g, G2, grad)
    return _prior_terms(theta, base.par, base.n, T, Lc, nrm, lp, pwrss, G1, G2, grad)


@njit(cache=True, nogil=True, error_model="numpy")
def draw_b_partial(thetas, d, seed, b1, b2, bs):
    """:func:`draw_b` for :class:`PartialData`: b_s from θ into bs (N, qs), then the
    integrated effects given b_s exactly (b1 (N, l1, k1), b2 (N, q2): block 2 of a
    :class:`KernelData` base, β − m of a :class:`OneFactorFixef` one)."""
    np.random.seed(seed)
    par = d.base.par
    nterms, kmax = par.term_k.shape[0], par.kmax
    T = np.empty((nterms, kmax, kmax))
    Lc = np.empty((nterms, kmax, kmax))
    nrm = np.empty((nterms, kmax))
    for i in range(thetas.shape[0]):
        _templates(thetas[i], par, T, Lc, nrm)
        b = _latent_b(thetas[i], d, T)
        _, Zte1, _, Zb, Xb = _partial_rhs(thetas[i], d, b)
        _base_draw(thetas[i], d.base, T, Zte1, Zb, Xb, b1[i], b2[i])
        for j in range(b.shape[0]):
            bs[i, j] = b[j]


# --------------------------------------------------------------------------------------
# a reference target with known moments, to validate the sampler
# --------------------------------------------------------------------------------------


class GaussianTarget(NamedTuple):
    """N(mean, precision⁻¹): the sampler's moments must match it exactly (tests)."""

    mean: np.ndarray
    precision: np.ndarray


@njit(cache=True, nogil=True, error_model="numpy")
def gaussian_logp_grad(theta, d, grad):
    n = theta.shape[0]
    lp = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += d.precision[i, j] * (theta[j] - d.mean[j])
        grad[i] = -s
        lp -= 0.5 * (theta[i] - d.mean[i]) * s
    return lp


def logp_fn(theta, data, grad):
    """log density of the target described by ``data`` (KernelData: the mixed model)."""
    raise NotImplementedError  # compiled through the overload below


@overload(logp_fn, jit_options={"nogil": True, "error_model": "numpy"})
def _logp_fn(theta, data, grad):
    cls = getattr(data, "instance_class", None)
    if cls is OneFactor:
        return lambda theta, data, grad: logp_grad_one_factor(theta, data, grad)
    if cls is OneFactorFixef:
        return lambda theta, data, grad: logp_grad_one_factor_fixef(theta, data, grad)
    if cls is KernelData:
        return lambda theta, data, grad: logp_grad(theta, data, grad)
    if cls is PartialData:
        return lambda theta, data, grad: logp_grad_partial(theta, data, grad)
    if cls is GaussianTarget:
        return lambda theta, data, grad: gaussian_logp_grad(theta, data, grad)
    return None

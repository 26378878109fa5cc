"""The exact gradient of the blocked criterion where block 2 holds scalar terms, by pairs.

Nested and sparsely crossed designs (InstEval's ``(1 | s) + (1 | d) + (1 | dept)``,
``(1 | a) + (1 | a:b)``) keep A₂₁ sparse: :class:`~.blocked.BlockedDeviance` forms
A₂₁WA₁₂ from the products of the non-zeros that meet in one level of term 1 (the pairs
matrix P: pair sums g = P vec(W)).  The gradient of the dense path
(∂log|Ω|/∂Λ[a, b] = 2(Ω⁻¹ΛᵀA)[b, a], ∂r²/∂Λ[a, b] = −2û_b(Zᵀr)_a, :mod:`.dense`) needs
the level-diagonal blocks of Ω⁻¹ΛᵀA only.  With Λ₂ = diag(s), M₁ = Λ₁ᵀA₁₁Λ₁ + I,
S = L₂₂L₂₂ᵀ and Sᵤ = A₂₂ − A₂₁WA₁₂ (so S = diag(s)Sᵤdiag(s) + I):

    Yₗ = Σᵢⱼ aᵢₗ sᵢ(S⁻¹)ᵢⱼ sⱼ aⱼₗᵀ                            (Pᵀ on S⁻¹'s pair entries)
    term 1, level l:  (M₁ₗ⁻¹ + M₁ₗ⁻¹T₁ᵀYₗT₁M₁ₗ⁻¹)T₁ᵀA₁₁,ₗ − M₁ₗ⁻¹T₁ᵀYₗ
    block 2, effect j: Σ_c (S⁻¹)ⱼ_c (Sᵤ)_cⱼ s_c

so one gradient costs the objective's potrf, a potri and two passes over the pairs.  REML
adds the X block's share Fₗ(A_ZZΛE_x − ZᵀX)ₗᵀ, E_x = Ω⁻¹ΛᵀZᵀX, F = E_x(R_XR_Xᵀ)⁻¹, as
on the dense path.  (M₁ₗ⁻¹ + M₁ₗ⁻¹T₁ᵀYₗT₁M₁ₗ⁻¹ and S⁻¹ are also the conditional
variance blocks: :func:`cond_var_pairs`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from ..design import lower_triangle
from .pls import chol_inverse

#: a :class:`~.blocked.BlockedDeviance` and its :class:`~.blocked.BlockedFactor` (typed
#: loosely: :mod:`.blocked` imports this module)
BlockedDeviance = Any
BlockedFactor = Any

_dpotri, _dtrtrs = sla.lapack.dpotri, sla.lapack.dtrtrs


def _level_sums(dev: BlockedDeviance, s: np.ndarray, Sinv_u: np.ndarray) -> np.ndarray:
    """Yₗ = Σᵢⱼ aᵢₗ sᵢ(S⁻¹)ᵢⱼ sⱼ aⱼₗᵀ over the pairs of each level, (ℓ₁, k₁, k₁), from S⁻¹
    at the pairs' (lower) positions."""
    x = s[dev._urow] * s[dev._ucol] * Sinv_u
    x[dev._urow == dev._ucol] *= 0.5  # the pairs hold i >= j: Y = Q + Qᵀ
    Q = (dev._P.T @ x).reshape(dev.l1, dev.k1, dev.k1)
    return Q + np.transpose(Q, (0, 2, 1))


def _row_sums(
    rows: np.ndarray, cols: np.ndarray, v: np.ndarray, s: np.ndarray, q2: int
) -> np.ndarray:
    """Σ_c V_jc s_c for a symmetric V given by its lower entries v at (rows, cols)."""
    off = np.where(rows == cols, 0.0, v)
    return np.bincount(rows, v * s[cols], minlength=q2) + np.bincount(
        cols, off * s[rows], minlength=q2
    )


def cond_var_pairs(dev: BlockedDeviance, f: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal blocks of (ΛᵀZᵀZΛ + I)⁻¹ (module doc): block 1 (ℓ₁, k₁, k₁), S⁻¹."""
    assert f.L22 is not None and f.Minv is not None
    Sinv = chol_inverse(f.L22)
    MT = f.Minv @ f.T1.T
    Y = _level_sums(dev, dev.b2.scale(f.theta), Sinv.flat[dev._upos])
    return f.Minv + MT @ Y @ np.transpose(MT, (0, 2, 1)), Sinv


def _modes(
    dev: BlockedDeviance, f: BlockedFactor, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W = Ω⁻¹ΛᵀZᵀ[X y] (block 1 as (ℓ₁, k₁, p+1), block 2) and Zᵀ([X y] − ZΛW)."""
    assert f.L22 is not None and f.Minv is not None and f.X23 is not None
    l1, k1, q1 = dev.l1, dev.k1, dev.t1.q
    m = dev.p + 1
    W2 = _dtrtrs(f.L22, f.X23, lower=1, trans=1)[0]
    sW2 = s[:, None] * W2
    C1 = np.transpose(dev.A31, (1, 2, 0))  # Z₁ᵀ[X y], (ℓ₁, k₁, m)
    A12W = np.asarray(dev.A21.T @ sW2).reshape(l1, k1, m)
    W1 = f.Minv @ (f.T1.T @ (C1 - A12W))
    LW1 = f.T1 @ W1
    Y1 = C1 - dev.A11 @ LW1 - A12W
    Y2 = dev.A23 - np.asarray(dev.A21 @ LW1.reshape(q1, m)) - dev.A22 @ sW2
    return W1, W2, Y1, Y2


def value_and_grad_pairs(dev: BlockedDeviance, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The criterion and its exact gradient in θ (module doc)."""
    theta = np.asarray(theta, dtype=float)
    try:
        f = dev.factor(theta)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    assert f.L22 is not None and f.Minv is not None and f.g is not None
    p, k1 = dev.p, dev.k1
    s = dev.b2.scale(theta)
    crit, r2 = dev.profiled(f.logdet, f.R)
    Rx = f.R[:p, :p]
    beta = sla.solve_triangular(Rx.T, f.R[p, :p], lower=False) if p else np.zeros(0)
    coef = np.concatenate([-beta, [1.0]])
    W1, W2, Y1, Y2 = _modes(dev, f, s)
    Sinv = _dpotri(f.L22, lower=1)[0]  # lower triangle
    Sinv_u = Sinv.flat[dev._upos]
    MT = f.Minv @ f.T1.T
    Yl = _level_sums(dev, s, Sinv_u)
    G1 = (f.Minv + MT @ Yl @ np.transpose(MT, (0, 2, 1))) @ (f.T1.T @ dev.A11) - MT @ Yl
    # G2 = (S⁻¹ ∘ Sᵤ)s over the non-zeros of Sᵤ = A₂₂ − A₂₁WA₁₂ (lower triangles)
    q2 = dev.b2.q
    G2 = _row_sums(dev._a22_row, dev._a22_col, Sinv.flat[dev._a22_pos] * dev._a22_val, s, q2)
    G2 -= _row_sums(dev._urow, dev._ucol, Sinv_u * f.g, s, q2)
    if dev.reml and p:
        Pinv = sla.cho_solve((Rx, True), np.eye(p))
        G1 -= (W1[:, :, :p] @ Pinv) @ np.transpose(Y1[:, :, :p], (0, 2, 1))
        G2 -= np.einsum("jp,jp->j", W2[:, :p] @ Pinv, Y2[:, :p])
    coeff = 2.0 * dev.dof / r2
    grad = np.empty_like(theta)
    u1, z1 = W1 @ coef, Y1 @ coef
    D = 2.0 * G1.sum(axis=0).T - coeff * (z1.T @ u1)
    grad[dev.sl1] = D[lower_triangle(k1)]
    u2, z2 = W2 @ coef, Y2 @ coef
    for sl, a, b in zip(dev.b2.slices, dev.b2.offsets[:-1], dev.b2.offsets[1:], strict=True):
        grad[sl.start] = 2.0 * G2[a:b].sum() - coeff * float(z2[a:b] @ u2[a:b])
    return float(crit), grad

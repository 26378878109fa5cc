"""Penalised least squares for ``y = Xβ + Zb + ε``: lme4's profiled criterion at θ.

With spherical effects ``b = Λ_θ u`` the PLS system for (u, β) has the matrix

    M = [[ΛᵀZᵀZΛ + I, ΛᵀZᵀX], [XᵀZΛ, XᵀX]]

and the profiled criteria (Bates et al. 2015, eqs. 34 and 41) are

    ML:   log|L_θ|² + n·(1 + log(2π r²/n))
    REML: log|L_θ|² + log|R_X|² + (n−p)·(1 + log(2π r²/(n−p)))

where L_θL_θᵀ = ΛᵀZᵀZΛ + I, R_XR_Xᵀ is the Schur complement of the X block and r² the
penalised residual sum of squares.  :class:`Deviance` is lme4's ``devfun`` (θ -> criterion);
:class:`~bayeslmm.reml.dense.DenseDeviance` and :class:`~bayeslmm.reml.blocked.BlockedDeviance`
factorise M two ways.  Λ_θ is block diagonal, ``I_ℓ ⊗ T_i`` per term, with T_i lower
triangular and filled column-wise from θ (lme4's layout).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..design import Design, ReTerm, lower_triangle

LOG2PI = float(np.log(2.0 * np.pi))


def template(theta: np.ndarray, k: int) -> np.ndarray:
    """Lower-triangular k x k factor T filled column-wise from θ (lme4's layout)."""
    T = np.zeros((k, k))
    T[lower_triangle(k)] = theta
    return T


def varcorr_values(
    design: Design, theta: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """R's ``as.data.frame(VarCorr())`` columns ``vcov`` and ``sdcor`` at (θ, σ).

    Per term (Σ = σ²TTᵀ): the variances, then the covariances of the lower triangle
    column-wise (the order of :func:`bayeslmm.names.parameters`); then σ².  ``sdcor``
    holds the SDs, the correlations (0 where an SD is 0, as lme4's ``VarCorr``) and σ.
    """
    vcov, sdcor = [], []
    for t, sl in zip(design.terms, design.theta_slices, strict=True):
        T = template(theta[sl], t.nc)
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        rows, cols = lower_triangle(t.nc)
        r, c = rows[rows != cols], cols[rows != cols]
        denom = sd[r] * sd[c]
        vcov += [np.diag(S), S[r, c]]
        sdcor += [sd, np.divide(S[r, c], denom, out=np.zeros(len(r)), where=denom > 0)]
    vcov.append(np.array([sigma**2]))
    sdcor.append(np.array([sigma]))
    return np.concatenate(vcov), np.concatenate(sdcor)


def level_blocks(V: np.ndarray, term: ReTerm) -> np.ndarray:
    """The (ℓ, k, k) diagonal blocks of a term's (ℓk x ℓk) part of a matrix (level-major)."""
    return np.einsum("lcld->lcd", V.reshape(term.nl, term.nc, term.nl, term.nc))


def chol_inverse(L: np.ndarray) -> np.ndarray:
    """(LLᵀ)⁻¹, both triangles, from a lower Cholesky factor L (LAPACK potri)."""
    from scipy.linalg import lapack

    inv = lapack.dpotri(L, lower=1)[0]
    return np.tril(inv) + np.tril(inv, -1).T


def inv_logdet(M: np.ndarray) -> tuple[np.ndarray, float]:
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


@dataclass(frozen=True)
class PLSSolution:
    """Everything a fit reports at θ.

    fval:  the criterion; beta: β̂ (R_Xᵀβ̂ = c_β); r2: penalised RSS r²; Rx: lower
    triangular R_X; u: û = (ΛᵀZᵀZΛ + I)⁻¹ΛᵀZᵀ(y − Xβ̂) in Z's column order; V: per term, the
    (ℓ, k, k) diagonal blocks of (ΛᵀZᵀZΛ + I)⁻¹.
    """

    fval: float
    beta: np.ndarray
    r2: float
    Rx: np.ndarray
    u: np.ndarray
    V: tuple[np.ndarray, ...]


class Deviance(ABC):
    """lme4's ``devfun``: θ -> profiled REML criterion (or ML deviance)."""

    #: whether :meth:`value_and_grad` gives the exact gradient
    has_gradient: bool
    #: whether BFGS starts from a scaled identity (else a finite-difference Hessian)
    scaled_start: bool = False

    def __init__(self, design: Design, reml: bool = True):
        self.design = design
        self.reml = reml
        self.n, self.p, self.q = design.nobs, design.p, design.q
        # the residual degrees of freedom in the criterion
        self.dof = self.n - self.p if reml else self.n

    def profiled_criterion(self, logdet: float, logdet_x: float, r2: float) -> float:
        """The criterion (module doc) from log|L_θ|², log|R_X|² and r²."""
        if self.reml:
            logdet += logdet_x
        return logdet + self.dof * (1.0 + LOG2PI + float(np.log(r2 / self.dof)))

    def profiled(self, logdet: float, R: np.ndarray) -> tuple[float, float]:
        """(criterion, r²) from log|L_θ|² and the lower Cholesky factor R of the [X y]
        Schur complement: R_X is its (p x p) block and r its last diagonal element."""
        p = self.p
        r2 = float(R[p, p] ** 2)
        logdet_x = 2.0 * float(np.log(np.diagonal(R)[:p]).sum())
        return self.profiled_criterion(logdet, logdet_x, r2), r2

    @abstractmethod
    def __call__(self, theta: np.ndarray) -> float:
        """The criterion at θ (inf where the factorisation fails)."""

    @abstractmethod
    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in θ (where ``has_gradient``)."""

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The exact gradient alone (where ``has_gradient``)."""
        return self.value_and_grad(theta)[1]

    @abstractmethod
    def solution(self, theta: np.ndarray) -> PLSSolution:
        """The PLS solution at θ."""

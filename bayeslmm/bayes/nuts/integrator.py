"""The Hamiltonian's pieces for a metric M⁻¹ (dense or diagonal): p♯ = M⁻¹p, the kinetic
energy ½pᵀM⁻¹p, momenta p ~ N(0, M), and the leapfrog step."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..compiled import logp_fn


@njit(cache=True, nogil=True, error_model="numpy")
def copy(dst, src):
    """dst = src, element by element (compiles faster than a slice assignment)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit(cache=True, nogil=True, error_model="numpy")
def sharp(metric, p, out):
    """out = M⁻¹p."""
    n = p.shape[0]
    if not metric.dense:
        for i in range(n):
            out[i] = metric.diag[i] * p[i]
        return
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += metric.inv[i, j] * p[j]
        out[i] = s


@njit(cache=True, nogil=True, error_model="numpy")
def kinetic(metric, p):
    """½ pᵀM⁻¹p."""
    n = p.shape[0]
    s = 0.0
    for i in range(n):
        if metric.dense:
            t = 0.0
            for j in range(n):
                t += metric.inv[i, j] * p[j]
        else:
            t = metric.diag[i] * p[i]
        s += p[i] * t
    return 0.5 * s


@njit(cache=True, nogil=True, error_model="numpy")
def draw_momentum(metric, p):
    """p ~ N(0, M) for M⁻¹ = LLᵀ: z ~ N(0, I), then Lᵀp = z (numba's per-thread stream)."""
    n = p.shape[0]
    for i in range(n):
        p[i] = np.random.standard_normal()
    if not metric.dense:
        for i in range(n):
            p[i] = p[i] / math.sqrt(metric.diag[i])
        return
    L = metric.chol
    for i in range(n - 1, -1, -1):
        s = p[i]
        for m in range(i + 1, n):
            s -= L[m, i] * p[m]
        p[i] = s / L[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def kick(p, g, eps):
    """Half a momentum step: p += ε/2 ∇log p."""
    for i in range(p.shape[0]):
        p[i] += 0.5 * eps * g[i]


@njit(cache=True, nogil=True, error_model="numpy")
def drift(q, p, eps, metric):
    """A position step: q += ε M⁻¹p."""
    n = q.shape[0]
    for i in range(n):
        if metric.dense:
            s = 0.0
            for j in range(n):
                s += metric.inv[i, j] * p[j]
        else:
            s = metric.diag[i] * p[i]
        q[i] += eps * s


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def leapfrog(data, q, p, g, eps, metric):
    """One leapfrog step of size ``eps`` (negative: backwards) from (q, p) with gradient g,
    all updated in place; returns the log density at the new q."""
    kick(p, g, eps)
    drift(q, p, eps, metric)
    lp = logp_fn(q, data, g)
    kick(p, g, eps)
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def hamiltonian(lp, metric, p):
    """H = −log p + ½pᵀM⁻¹p; +∞ for a NaN (a leaf outside the support)."""
    h = -lp + kinetic(metric, p)
    return math.inf if math.isnan(h) else h

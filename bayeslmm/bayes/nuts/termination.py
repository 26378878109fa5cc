"""The generalised no-U-turn criterion (Betancourt 2017; Stan's ``compute_criterion``)
and its three checks when two adjacent sub-trees join."""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def no_u_turn(ps_minus, ps_plus, rho):
    """True while the trajectory keeps going: p♯₋·ρ > 0 and p♯₊·ρ > 0."""
    a = 0.0
    b = 0.0
    for i in range(rho.shape[0]):
        a += ps_plus[i] * rho[i]
        b += ps_minus[i] * rho[i]
    return a > 0.0 and b > 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def joined_persists(rho_a, rho_b, p_a_end, p_b_begin, ps_a, ps_b, ext):
    """The criterion on sub-tree a followed by sub-tree b (in the direction of travel):
    across the whole (ρ_a + ρ_b), and across each seam with the other side's nearest
    momentum (ρ_a + p_b,begin and p_a,end + ρ_b), as Stan checks a merge.  ``ps_a`` and
    ``ps_b``: (2, d) p♯ at each one's begin [0] and end [1]; ``ext``: scratch."""
    n = ext.shape[0]
    for j in range(n):
        ext[j] = rho_a[j] + rho_b[j]
    if not no_u_turn(ps_a[0], ps_b[1], ext):
        return False
    for j in range(n):
        ext[j] = rho_a[j] + p_b_begin[j]
    if not no_u_turn(ps_a[0], ps_b[0], ext):
        return False
    for j in range(n):
        ext[j] = rho_b[j] + p_a_end[j]
    return no_u_turn(ps_a[1], ps_b[1], ext)


@njit(cache=True, nogil=True, error_model="numpy")
def log_add_exp(a, b):
    """log(eᵃ + eᵇ)."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))

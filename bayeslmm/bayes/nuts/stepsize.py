"""The step size: Stan's initial search and dual averaging (Hoffman & Gelman 2014,
γ = 0.05, t₀ = 10, κ = 0.75)."""

from __future__ import annotations

import math

from numba import njit

from .integrator import copy, draw_momentum, hamiltonian, kinetic, leapfrog

#: the search stops, and reports a clamp, outside these bounds
STEP_MAX, STEP_MIN = 1e7, 1e-12
GAMMA, T0, KAPPA = 0.05, 10.0, 0.75


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def search_step_size(data, q, g, lp, eps, metric, traj):
    """Stan's heuristic: one leapfrog step from q with fresh momenta, doubling ε while
    the acceptance exp(−ΔH) stays above 0.8 (or halving while below) until it crosses.
    Returns (ε, clamped): clamped when ε left [STEP_MIN, STEP_MAX] first (a flat or an
    improper direction, or a log density that is −∞ around q)."""
    direction = 0
    log_08 = math.log(0.8)
    for _ in range(100):
        copy(traj.leaf_q, q)
        copy(traj.leaf_g, g)
        draw_momentum(metric, traj.leaf_p)
        h0 = -lp + kinetic(metric, traj.leaf_p)
        lp1 = leapfrog(data, traj.leaf_q, traj.leaf_p, traj.leaf_g, eps, metric)
        dh = h0 - hamiltonian(lp1, metric, traj.leaf_p)
        if direction == 0:
            direction = 1 if dh > log_08 else -1
        elif (direction == 1) != (dh > log_08):
            return eps, False
        eps = eps * 2.0 if direction == 1 else eps * 0.5
        if eps > STEP_MAX or eps < STEP_MIN:
            return eps, True
    return eps, False


@njit(cache=True, nogil=True, error_model="numpy")
def restart(adapt, eps):
    """Dual averaging restarts around ε: μ = log(10ε)."""
    adapt.step_size = eps
    adapt.mu = math.log(10.0 * eps)
    adapt.s_bar = 0.0
    adapt.x_bar = 0.0
    adapt.count = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def dual_averaging(adapt, accept, target):
    """One dual-averaging update from a transition's mean acceptance ``accept``: the
    iterate ε = exp(x) and its running average exp(x̄)."""
    adapt.count += 1.0
    m = adapt.count
    eta = 1.0 / (m + T0)
    adapt.s_bar = (1.0 - eta) * adapt.s_bar + eta * (target - min(1.0, accept))
    x = adapt.mu - adapt.s_bar * math.sqrt(m) / GAMMA
    xe = m**-KAPPA
    adapt.x_bar = (1.0 - xe) * adapt.x_bar + xe * x
    adapt.step_size = math.exp(x)


@njit(cache=True, nogil=True, error_model="numpy")
def finish(adapt):
    """The step size of the sampling phase: the average exp(x̄)."""
    adapt.step_size = math.exp(adapt.x_bar)

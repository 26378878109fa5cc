"""The sampler's named state: record dtypes for scalars, NamedTuples for arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: one row per iteration (Stan's and ArviZ's ``sample_stats`` names)
STATS = np.dtype(
    [
        ("lp", np.float64),
        ("step_size", np.float64),
        ("tree_depth", np.int64),
        ("n_steps", np.int64),
        ("diverging", np.bool_),
        ("reached_max_treedepth", np.bool_),
        ("energy", np.float64),
        ("acceptance_rate", np.float64),
    ]
)

#: the scalar state of a chain's adaptation (persists across chunks)
ADAPTATION = np.dtype(
    [
        ("lp", np.float64),  # log density at the current point
        ("step_size", np.float64),
        ("mu", np.float64),  # dual averaging: log(10 ε₀)
        ("s_bar", np.float64),  # running mean of target − acceptance
        ("x_bar", np.float64),  # running average of log ε
        ("count", np.float64),  # dual-averaging iterations since the last restart
        ("window_n", np.float64),  # draws in the current metric window
        ("search_pending", np.bool_),  # re-initialise ε (after a metric update) first
        ("clamped", np.int64),  # step-size searches that hit a bound
        ("metric_failures", np.int64),  # metric updates whose Cholesky failed (kept old)
    ]
)

#: the run's fixed settings
CONFIG = np.dtype(
    [
        ("tune", np.int64),
        ("seed", np.int64),
        ("target_accept", np.float64),
        ("max_depth", np.int64),
        ("robust_min", np.float64),  # a window needs robust_min·dim draws for a dense update
    ]
)

#: one transition's running totals
TREE = np.dtype(
    [
        ("h0", np.float64),  # the Hamiltonian at the start
        ("log_w", np.float64),  # log of the summed weights exp(H0 − H) of the tree
        ("lp", np.float64),  # log density at the sample
        ("depth", np.int64),
        ("n_steps", np.int64),
        ("sum_accept", np.float64),  # Σ min(1, exp(H0 − H)) over the leaves
        ("diverging", np.bool_),
    ]
)

#: the direction index of the trajectory's two ends and two parts
BACKWARD, FORWARD = 0, 1


class Metric(NamedTuple):
    """M⁻¹ (the inverse mass matrix, the draws' covariance): ``inv`` (d, d) and its lower
    Cholesky factor ``chol`` when ``dense`` (else both (0, 0)); ``diag`` its diagonal."""

    inv: np.ndarray
    chol: np.ndarray
    diag: np.ndarray
    dense: bool


class Window(NamedTuple):
    """Welford moments of the current adaptation window: ``mean`` (d,), ``m2`` the summed
    outer products (d, d) for a dense metric, ``m2_diag`` their diagonal (d,)."""

    mean: np.ndarray
    m2: np.ndarray
    m2_diag: np.ndarray


class Trajectory(NamedTuple):
    """A transition's trajectory.  Ends and parts are indexed by BACKWARD / FORWARD: the
    ends' positions, momenta, gradients and log densities; each part's ρ (summed
    momenta) and momenta (and p♯ = M⁻¹p) at its two sides [part, side, :]; the sample so
    far; the leaf being integrated; and ``ext``, scratch for the U-turn checks."""

    end_q: np.ndarray  # (2, d)
    end_p: np.ndarray
    end_g: np.ndarray
    end_lp: np.ndarray  # (2,)
    rho: np.ndarray  # (d,) the whole trajectory's
    part_rho: np.ndarray  # (2, d)
    part_p: np.ndarray  # (2, 2, d)
    part_ps: np.ndarray  # (2, 2, d)
    sample_q: np.ndarray  # (d,)
    sample_p: np.ndarray
    sample_g: np.ndarray
    leaf_q: np.ndarray
    leaf_p: np.ndarray
    leaf_g: np.ndarray
    ext: np.ndarray


class Stack(NamedTuple):
    """Completed sibling sub-trees of the sub-tree being built (numba caches no recursion),
    innermost last: each one's sample, ρ, momenta and p♯ at its first (side 0) and last
    (side 1) leaf, the sample's log density, its log weight and its level (log₂ size)."""

    q: np.ndarray  # (max_depth + 1, d)
    p: np.ndarray
    g: np.ndarray
    rho: np.ndarray
    p_side: np.ndarray  # (max_depth + 1, 2, d)
    ps_side: np.ndarray
    lp: np.ndarray  # (max_depth + 1,)
    log_w: np.ndarray
    level: np.ndarray  # int64


def metric_from(inv: np.ndarray, dense: bool) -> Metric:
    """The :class:`Metric` of the covariance ``inv`` (its diagonal only unless ``dense``)."""
    if dense:
        return Metric(inv.copy(), np.linalg.cholesky(inv), np.diag(inv).copy(), True)
    return Metric(np.zeros((0, 0)), np.zeros((0, 0)), np.diag(inv).copy(), False)


def new_window(d: int, dense: bool) -> Window:
    return Window(np.zeros(d), np.zeros((d, d) if dense else (0, 0)), np.zeros(d))

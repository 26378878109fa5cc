"""A chunk of iterations of one chain (compiled): warm-up first, then draws."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ..compiled import logp_fn
from .adaptation import adapt
from .integrator import copy
from .state import Metric, Window
from .stepsize import restart, search_step_size
from .trajectory import transition, workspace


class Chain(NamedTuple):
    """What a chain carries between chunks: the point ``q`` and its gradient ``g``, the
    metric and its window, ``scale2`` (the parameters' squared scales), the window ends
    (:func:`.adaptation.windows`), ``adaptation`` (one ADAPTATION record) and ``tree``
    (one TREE record, a transition's workspace)."""

    q: np.ndarray
    g: np.ndarray
    metric: Metric
    window: Window
    scale2: np.ndarray
    ends: np.ndarray
    adaptation: np.ndarray
    tree: np.ndarray


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def start_chain(data, chain, seed):
    """Iteration 0: seed numba's (per-thread) stream, evaluate the start, reset the
    adaptation and ask for a step-size search.  False when the log density at the start
    is not finite."""
    np.random.seed(seed)
    a = chain.adaptation[0]
    a.lp = logp_fn(chain.q, data, chain.g)
    restart(a, 1.0)
    a.window_n = 0.0
    a.search_pending = True
    a.clamped = 0
    a.metric_failures = 0
    return math.isfinite(a.lp)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def record(row, tree, eps, energy, max_depth):
    row.lp = tree.lp
    row.step_size = eps
    row.tree_depth = tree.depth
    row.n_steps = tree.n_steps
    row.diverging = tree.diverging
    row.reached_max_treedepth = tree.depth >= max_depth and not tree.diverging
    row.energy = energy
    row.acceptance_rate = tree.sum_accept / tree.n_steps if tree.n_steps > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def run_chunk(data, chain, config, start, stop, draws, warmup, stats):
    """Iterations ``start`` .. ``stop`` of one chain (``config``: one CONFIG record).  Draw
    i >= tune goes to ``draws[i − tune]``, warm-up draw i to ``warmup[i]`` when ``warmup``
    has rows; ``stats[i]`` gets iteration i's STATS.  The chain's state persists between
    calls, and the random stream is seeded at iteration 0 (a chain runs all its chunks in
    one thread).  Returns False if the start's log density is not finite."""
    cfg = config[0]
    a = chain.adaptation[0]
    if start == 0 and not start_chain(data, chain, cfg.seed):
        return False
    d = chain.q.shape[0]
    traj, stack = workspace(d, cfg.max_depth)
    tree = chain.tree[0]
    dense = chain.metric.dense
    inv_tmp = np.empty((d, d) if dense else (d, 1))
    chol_tmp = np.empty((d, d) if dense else (0, 0))
    for it in range(start, stop):
        if a.search_pending:
            eps, clamped = search_step_size(
                data, chain.q, chain.g, a.lp, a.step_size, chain.metric, traj
            )
            restart(a, eps)
            if clamped:
                a.clamped += 1
            a.search_pending = False
        eps = a.step_size
        energy = transition(
            data, chain.q, chain.g, a.lp, eps, chain.metric, cfg.max_depth, traj, stack, tree
        )
        a.lp = tree.lp
        record(stats[it], tree, eps, energy, cfg.max_depth)
        if it >= cfg.tune:
            copy(draws[it - cfg.tune], chain.q)
            continue
        if warmup.shape[0] > 0:
            copy(warmup[it], chain.q)
        adapt(a, cfg, chain, it, stats[it].acceptance_rate, inv_tmp, chol_tmp)
    return True

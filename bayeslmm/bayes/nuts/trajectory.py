"""One NUTS transition (Stan's ``base_nuts``): the trajectory doubles in a random
direction; each new sub-tree is built leaf by leaf, merging completed siblings with uniform
progressive sampling and the U-turn checks of :func:`.termination.joined_persists`; the
top level samples with biased progressive sampling and applies the same checks.  A leaf
whose energy error exceeds :data:`MAX_DELTA_H` is a divergence."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .integrator import copy, draw_momentum, hamiltonian, kinetic, leapfrog, sharp
from .state import BACKWARD, FORWARD, TREE, Stack, Trajectory
from .termination import joined_persists, log_add_exp

MAX_DELTA_H = 1000.0


@njit(cache=True, nogil=True, error_model="numpy")
def workspace(d, max_depth):
    """A trajectory and a sub-tree stack for dimension ``d``."""
    traj = Trajectory(
        np.empty((2, d)), np.empty((2, d)), np.empty((2, d)), np.empty(2), np.empty(d),
        np.empty((2, d)), np.empty((2, 2, d)), np.empty((2, 2, d)), np.empty(d),
        np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d), np.empty(d),
    )  # fmt: skip
    n = max_depth + 1
    stack = Stack(
        np.empty((n, d)), np.empty((n, d)), np.empty((n, d)), np.empty((n, d)),
        np.empty((n, 2, d)), np.empty((n, 2, d)), np.empty(n), np.empty(n),
        np.empty(n, dtype=np.int64),
    )  # fmt: skip
    return traj, stack


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def begin(traj, tree, q, g, lp, metric):
    """A one-point trajectory at (q, g) with fresh momenta: every end, part and the sample
    are that point; the tree's totals start at zero."""
    draw_momentum(metric, traj.sample_p)
    tree.h0 = -lp + kinetic(metric, traj.sample_p)
    sharp(metric, traj.sample_p, traj.ext)
    for side in range(2):
        copy(traj.end_q[side], q)
        copy(traj.end_p[side], traj.sample_p)
        copy(traj.end_g[side], g)
        traj.end_lp[side] = lp
        for part in range(2):
            copy(traj.part_p[part, side], traj.sample_p)
            copy(traj.part_ps[part, side], traj.ext)
    copy(traj.rho, traj.sample_p)
    copy(traj.sample_q, q)
    copy(traj.sample_g, g)
    tree.lp = lp
    tree.log_w = 0.0
    tree.depth = 0
    tree.n_steps = 0
    tree.sum_accept = 0.0
    tree.diverging = False


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def push_leaf(stack, sp, traj, lp, log_w, metric):
    """The leaf just integrated as a one-point sub-tree on top of the stack."""
    copy(stack.q[sp], traj.leaf_q)
    copy(stack.p[sp], traj.leaf_p)
    copy(stack.g[sp], traj.leaf_g)
    copy(stack.rho[sp], traj.leaf_p)
    copy(stack.p_side[sp, 0], traj.leaf_p)
    copy(stack.p_side[sp, 1], traj.leaf_p)
    sharp(metric, traj.leaf_p, stack.ps_side[sp, 0])
    copy(stack.ps_side[sp, 1], stack.ps_side[sp, 0])
    stack.lp[sp] = lp
    stack.log_w[sp] = log_w
    stack.level[sp] = 0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def merge_top(stack, sp, ext):
    """Merge the top two (sibling) sub-trees into the lower one: its sample becomes the
    upper one's with probability w_upper / (w_lower + w_upper) (uniform progressive
    sampling); False when the merged sub-tree turns (the U-turn checks)."""
    i, f = sp - 2, sp - 1
    log_w = log_add_exp(stack.log_w[i], stack.log_w[f])
    if np.random.random() < math.exp(stack.log_w[f] - log_w):
        copy(stack.q[i], stack.q[f])
        copy(stack.p[i], stack.p[f])
        copy(stack.g[i], stack.g[f])
        stack.lp[i] = stack.lp[f]
    persist = joined_persists(
        stack.rho[i], stack.rho[f], stack.p_side[i, 1], stack.p_side[f, 0],
        stack.ps_side[i], stack.ps_side[f], ext,
    )  # fmt: skip
    for j in range(ext.shape[0]):
        stack.rho[i, j] += stack.rho[f, j]
    copy(stack.p_side[i, 1], stack.p_side[f, 1])
    copy(stack.ps_side[i, 1], stack.ps_side[f, 1])
    stack.log_w[i] = log_w
    stack.level[i] += 1
    return persist


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def build_subtree(data, traj, stack, tree, step, metric):
    """2^depth leaves from the leaf state onwards (step ``step``), merged as they complete;
    False on a divergence or a U-turn inside (the sub-tree is then discarded).  On
    success ``stack[0]`` is the whole sub-tree."""
    sp = 0
    for _leaf in range(1 << tree.depth):
        lp = leapfrog(data, traj.leaf_q, traj.leaf_p, traj.leaf_g, step, metric)
        traj.end_lp[1 if step > 0 else 0] = lp
        tree.n_steps += 1
        h = hamiltonian(lp, metric, traj.leaf_p)
        tree.sum_accept += 1.0 if tree.h0 - h > 0 else math.exp(tree.h0 - h)
        if h - tree.h0 > MAX_DELTA_H:
            tree.diverging = True
            return False
        push_leaf(stack, sp, traj, lp, tree.h0 - h, metric)
        sp += 1
        while sp >= 2 and stack.level[sp - 1] == stack.level[sp - 2]:
            persist = merge_top(stack, sp, traj.ext)
            sp -= 1
            if not persist:
                return False
    return True


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def attach(traj, stack, tree, side):
    """The completed sub-tree ``stack[0]`` becomes the trajectory's part on ``side``
    (its first leaf at the seam); its sample replaces the trajectory's with probability
    min(1, w_new / w_old) (biased progressive sampling)."""
    seam, outer = (0, 1) if side == FORWARD else (1, 0)
    copy(traj.part_rho[side], stack.rho[0])
    copy(traj.part_p[side, seam], stack.p_side[0, 0])
    copy(traj.part_ps[side, seam], stack.ps_side[0, 0])
    copy(traj.part_p[side, outer], stack.p_side[0, 1])
    copy(traj.part_ps[side, outer], stack.ps_side[0, 1])
    tree.depth += 1
    log_w = stack.log_w[0]
    if log_w > tree.log_w or np.random.random() < math.exp(log_w - tree.log_w):
        copy(traj.sample_q, stack.q[0])
        copy(traj.sample_p, stack.p[0])
        copy(traj.sample_g, stack.g[0])
        tree.lp = stack.lp[0]
    tree.log_w = log_add_exp(tree.log_w, log_w)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def extend(data, traj, stack, tree, eps, metric):
    """Double the trajectory in a random direction; False when it must stop (a divergence,
    a U-turn inside the new sub-tree, or across the whole trajectory)."""
    side = FORWARD if np.random.random() > 0.5 else BACKWARD
    # the new sub-tree grows from the end on ``side``; the old trajectory becomes the
    # other part (its ρ and its momenta at the seam)
    copy(traj.leaf_q, traj.end_q[side])
    copy(traj.leaf_p, traj.end_p[side])
    copy(traj.leaf_g, traj.end_g[side])
    other = 1 - side
    copy(traj.part_rho[other], traj.rho)
    copy(traj.part_p[other, side], traj.part_p[side, side])
    copy(traj.part_ps[other, side], traj.part_ps[side, side])
    valid = build_subtree(data, traj, stack, tree, eps if side == FORWARD else -eps, metric)
    copy(traj.end_q[side], traj.leaf_q)  # the frontier moves whatever happened
    copy(traj.end_p[side], traj.leaf_p)
    copy(traj.end_g[side], traj.leaf_g)
    if not valid:
        return False
    attach(traj, stack, tree, side)
    for j in range(traj.rho.shape[0]):
        traj.rho[j] = traj.part_rho[BACKWARD, j] + traj.part_rho[FORWARD, j]
    return joined_persists(
        traj.part_rho[BACKWARD], traj.part_rho[FORWARD], traj.part_p[BACKWARD, FORWARD],
        traj.part_p[FORWARD, BACKWARD], traj.part_ps[BACKWARD], traj.part_ps[FORWARD],
        traj.ext,
    )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def transition(data, q, g, lp, eps, metric, max_depth, traj, stack, tree):
    """One NUTS transition from (q, g, lp) with step size ``eps``: q and g become the
    sample's; the totals (depth, steps, acceptance, divergence, the sample's lp) are in
    ``tree``.  Returns the sample's energy."""
    begin(traj, tree, q, g, lp, metric)
    while tree.depth < max_depth:
        if not extend(data, traj, stack, tree, eps, metric):
            break
    copy(q, traj.sample_q)
    copy(g, traj.sample_g)
    return -tree.lp + kinetic(metric, traj.sample_p)


def new_tree() -> np.ndarray:
    """A TREE record array of one row (``tree[0]`` is passed to :func:`transition`)."""
    return np.zeros(1, dtype=TREE)

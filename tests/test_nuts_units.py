"""The NUTS pieces on their own (bayeslmm/bayes/nuts): leapfrog, momenta, the U-turn
criterion, the step-size search, dual averaging, the Welford window and the metric
update, tree-depth saturation; each against a closed form or numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from nuts_helpers import diagonal_gaussian, gaussian, one_chain

from bayeslmm.bayes import compiled
from bayeslmm.bayes.nuts import integrator, metric, state, stepsize, termination
from bayeslmm.bayes.nuts.trajectory import workspace


@njit
def _dual_averaging(adapt, accepts, target):
    a = adapt[0]
    for x in accepts:
        stepsize.dual_averaging(a, x, target)


@njit
def _search(target, q, eps, m, traj_d):
    np.random.seed(3)
    g = np.empty(q.shape[0])
    lp = compiled.logp_fn(q, target, g)
    traj, _ = workspace(traj_d, 2)
    return stepsize.search_step_size(target, q, g, lp, eps, m, traj)


def test_leapfrog_is_the_closed_form_and_reversible():
    """One step on N(μ, Σ) with M⁻¹ = diag(m): p½ = p + ε/2 ∇, q' = q + ε M⁻¹p½,
    p' = p½ + ε/2 ∇(q'); a step of −ε from (q', p') returns to (q, p)."""
    target = gaussian(3, seed=1)
    m = state.metric_from(np.diag([0.5, 1.0, 2.0]), True)
    q, p = np.array([0.1, -0.3, 0.7]), np.array([1.0, 0.5, -0.2])
    grad = lambda x: -target.precision @ (x - target.mean)  # noqa: E731
    half = p + 0.05 * grad(q)
    q1 = q + 0.1 * np.diag(m.inv) * half
    p1 = half + 0.05 * grad(q1)
    qq, pp, g = q.copy(), p.copy(), grad(q)
    lp = integrator.leapfrog(target, qq, pp, g, 0.1, m)
    np.testing.assert_allclose(qq, q1, rtol=1e-13)
    np.testing.assert_allclose(pp, p1, rtol=1e-13)
    d = q1 - target.mean
    assert lp == pytest.approx(-0.5 * d @ target.precision @ d, rel=1e-13)
    integrator.leapfrog(target, qq, pp, g, -0.1, m)
    np.testing.assert_allclose(qq, q, atol=1e-14)
    np.testing.assert_allclose(pp, p, atol=1e-14)


@pytest.mark.parametrize("dense", [True, False])
def test_momenta_have_covariance_m_and_kinetic_energy(dense):
    """p ~ N(0, M) for M⁻¹ given (dense through its Cholesky factor, or diagonal);
    ½pᵀM⁻¹p and M⁻¹p match numpy."""
    inv = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    inv = inv if dense else np.diag(np.diag(inv))
    m = state.metric_from(inv, dense)
    np.random.seed(0)  # numba's stream is seeded from Python's call on the same thread
    draws = np.empty((20000, 3))
    _draw_many(m, draws)
    np.testing.assert_allclose(np.cov(draws.T), np.linalg.inv(inv), atol=0.06)
    p, out = np.array([0.3, -1.0, 2.0]), np.empty(3)
    integrator.sharp(m, p, out)
    np.testing.assert_allclose(out, inv @ p)
    assert integrator.kinetic(m, p) == pytest.approx(0.5 * p @ inv @ p)


@njit
def _draw_many(m, out):
    np.random.seed(0)
    for i in range(out.shape[0]):
        integrator.draw_momentum(m, out[i])


def test_no_u_turn_criterion():
    """Going on while both ends' p♯ point along ρ; a reversal at either end stops it."""
    rho = np.array([1.0, 0.0])
    ahead, back = np.array([0.5, 0.2]), np.array([-1.0, 0.3])
    assert termination.no_u_turn(ahead, ahead, rho)
    assert not termination.no_u_turn(back, ahead, rho)
    assert not termination.no_u_turn(ahead, back, rho)
    # the extra seam checks of a merge: each side's end with the other side's ρ
    ext = np.empty(2)
    ps = np.array([ahead, ahead])
    assert termination.joined_persists(rho, rho, ahead, ahead, ps, ps, ext)
    turned = np.array([ahead, back])  # sub-tree a turned at its last leaf
    assert not termination.joined_persists(rho, rho, ahead, ahead, turned, ps, ext)
    assert termination.log_add_exp(math.log(2.0), math.log(3.0)) == pytest.approx(math.log(5))
    assert termination.log_add_exp(-math.inf, 1.5) == 1.5


def test_step_size_search_scales_with_the_target_and_reports_a_clamp():
    """On N(0, s²) from its mode with the unit metric, one leapfrog's acceptance depends
    on ε/s only: with the same momenta, started at ε₀ ∝ s, the search returns ε ∝ s
    exactly.  A flat target
    (zero precision) accepts every step: the search doubles to its bound and says so."""
    m = state.metric_from(np.eye(1), True)
    q = np.zeros(1)
    small, clamped = _search(diagonal_gaussian([1.0]), q, 1.0, m, 1)
    large, _ = _search(diagonal_gaussian([1024.0]), q, 1024.0, m, 1)
    assert not clamped and large == 1024 * small
    assert 0.25 <= small <= 4  # the one-step acceptance crosses 0.8 near ε ≈ s
    flat = compiled.GaussianTarget(np.zeros(1), np.zeros((1, 1)))
    eps, clamped = _search(flat, q, 1.0, m, 1)
    assert clamped and eps > stepsize.STEP_MAX


def test_dual_averaging_first_update_and_convergence():
    """First update (m = 1): s̄ = (δ − a)/11, x = μ − s̄/γ, x̄ = x.  Then with an
    acceptance exp(−ε) of the step size it converges to ε = −log δ."""
    adapt = np.zeros(1, state.ADAPTATION)
    adapt["mu"] = math.log(10.0)
    _dual_averaging(adapt, np.array([0.5]), 0.8)
    s_bar = (0.8 - 0.5) / 11
    assert adapt["s_bar"][0] == pytest.approx(s_bar)
    assert adapt["x_bar"][0] == pytest.approx(math.log(10.0) - s_bar / 0.05)
    adapt = np.zeros(1, state.ADAPTATION)
    adapt["mu"] = math.log(10.0)
    adapt["step_size"] = 1.0
    for _ in range(3000):
        _dual_averaging(adapt, np.array([math.exp(-adapt["step_size"][0])]), 0.8)
    assert math.exp(adapt["x_bar"][0]) == pytest.approx(-math.log(0.8), rel=0.02)


@pytest.mark.parametrize("dense", [True, False])
def test_welford_window_and_metric_update(dense):
    """The window's moments are numpy's mean and (n − 1)·cov; the update is Stan's
    regularisation n/(n + 5)·cov + 10⁻³·5/(n + 5)·scale² (on the diagonal), with a
    Cholesky factor that reproduces it."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0, 0, 2.0]])
    window = state.new_window(3, dense)
    for i, row in enumerate(x):
        metric.welford(window, float(i + 1), row)
    np.testing.assert_allclose(window.mean, x.mean(0))
    cov = np.cov(x.T)
    np.testing.assert_allclose(window.m2_diag, 39 * np.diag(cov))
    scale2 = np.array([1.0, 4.0, 0.25])
    m = state.metric_from(np.eye(3), dense)
    tmp = (np.empty((3, 3)), np.empty((3, 3))) if dense else (np.empty((3, 1)), np.empty((0, 0)))
    assert metric.update(m, window, 40.0, scale2, 2.0, *tmp)
    want = 40 / 45 * cov + np.diag(1e-3 * 5 / 45 * scale2)
    if dense:
        np.testing.assert_allclose(m.inv, want, rtol=1e-12)
        np.testing.assert_allclose(m.chol @ m.chol.T, want, rtol=1e-12)
    np.testing.assert_allclose(m.diag, np.diag(want), rtol=1e-12)


def test_short_window_gives_a_diagonal_metric_and_a_failed_update_keeps_the_old():
    """A dense metric from n < 2·d draws is rank-deficient or nearly: its diagonal is
    used instead.  A window with a non-finite draw fails the Cholesky: the metric stays."""
    d = 4
    rng = np.random.default_rng(3)
    window = state.new_window(d, True)
    for i in range(6):  # 6 < 2 * 4
        metric.welford(window, float(i + 1), rng.normal(size=d))
    m = state.metric_from(np.eye(d), True)
    assert metric.update(m, window, 6.0, np.ones(d), 2.0, np.empty((d, d)), np.empty((d, d)))
    np.testing.assert_array_equal(m.inv, np.diag(np.diag(m.inv)))
    bad = state.new_window(d, True)
    metric.welford(bad, 1.0, np.full(d, np.nan))
    before = m.inv.copy()
    assert not metric.update(m, bad, 5.0, np.ones(d), 2.0, np.empty((d, d)), np.empty((d, d)))
    np.testing.assert_array_equal(m.inv, before)
    L = np.empty((3, 3))
    A = np.array([[4.0, 2, 0], [2, 3, 1], [0, 1, 2]])
    assert metric.cholesky(A, L)
    np.testing.assert_allclose(L, np.linalg.cholesky(A))
    assert not metric.cholesky(np.array([[1.0, 2], [2, 1]]), np.empty((2, 2)))


def test_tree_depth_saturates_on_an_ill_conditioned_gaussian():
    """SDs 1 and 1000 with the unit metric and no metric adaptation (tune < 20): the
    step size follows the narrow direction and a U-turn in the wide one needs ~1000
    steps; with max_depth 3 most transitions stop at 7 leapfrogs (the others turn in the
    narrow direction) and exactly those are flagged."""
    target = diagonal_gaussian([1.0, 1000.0])
    _, stats, _ = one_chain(target, np.zeros(2), 15, 200, 1, max_depth=3)
    after = stats[15:]
    flagged = after["reached_max_treedepth"]
    assert flagged.mean() > 0.5
    np.testing.assert_array_equal(flagged, (after["tree_depth"] == 3) & ~after["diverging"])
    assert (after["n_steps"][flagged] == 2**3 - 1).all()  # 1 + 2 + 4 leapfrogs
    # the same target saturates depth 5 (31 steps) still; an isotropic one never does
    _, hard, _ = one_chain(target, np.zeros(2), 15, 200, 1, max_depth=5)
    _, easy, _ = one_chain(diagonal_gaussian([1.0, 1.0]), np.zeros(2), 15, 200, 1, max_depth=5)
    assert hard[15:]["reached_max_treedepth"].mean() > 0.3
    assert not easy[15:]["reached_max_treedepth"].any()

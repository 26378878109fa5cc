"""Behaviour of the compiled NUTS that a sampler ignoring it would fail: the warm-up does
not depend on how the iterations are cut into chunks; known targets are recovered."""

from __future__ import annotations

import numpy as np
import pytest
from nuts_helpers import gaussian, one_chain

from bayeslmm.bayes import compiled
from bayeslmm.bayes.nuts import runner
from bayeslmm.bayes.nuts.adaptation import windows


@pytest.mark.parametrize(("tune", "draws"), [(200, 100), (500, 500)])
def test_run_chains_equals_one_call(tune, draws):
    """run_chains cuts a chain into chunks (here of 15 or 50 iterations, so that every
    metric-window end falls on a chunk boundary): its draws and statistics must equal
    one run over the same iterations.  The step-size re-initialisation after each window
    used to live in a local variable and was lost at a boundary."""
    target = gaussian()
    init = np.array([0.3, -0.2])
    run = runner.run_chains(
        target, init[None], np.eye(2), draws=draws, tune=tune, seed=5, target_accept=0.8
    )
    seed = int(np.random.SeedSequence(5).spawn(1)[0].generate_state(1)[0])
    out, stats, _ = one_chain(target, init, tune, draws, seed)
    np.testing.assert_array_equal(run.stats[0], stats)
    np.testing.assert_array_equal(run.theta[0], out)
    # and any other cut, one falling inside a window, one right after a window's end
    cut, _, _ = one_chain(target, init, tune, draws, seed, chunks=[1, 76, 101, 137])
    np.testing.assert_array_equal(cut, out)


@pytest.mark.parametrize("dense", [True, False])
def test_nuts_recovers_a_correlated_gaussian(dense):
    """Means, SDs and correlations of N(μ, Σ) (d = 5, correlations up to 0.9, scales
    from 0.1 to 10) within Monte Carlo error; no divergence; the draws do not depend on
    the number of threads."""
    rng = np.random.default_rng(0)
    d = 5
    A = rng.normal(size=(d, d))
    cov = A @ A.T + np.diag(np.linspace(0.01, 10, d))
    mean = rng.normal(size=d) * 3
    target = compiled.GaussianTarget(mean, np.linalg.inv(cov))
    inits = rng.uniform(-2, 2, size=(4, d))
    run = runner.run_chains(
        target, inits, np.eye(d), draws=2000, tune=1000, seed=11, target_accept=0.8, cores=2
    )
    x = run.theta.reshape(-1, d)
    sd = np.sqrt(np.diag(cov))
    assert run.stats[:, 1000:]["diverging"].sum() == 0
    # ESS per parameter is > 1000 here: the mean's MC error is < sd/30
    np.testing.assert_allclose((x.mean(0) - mean) / sd, 0, atol=5 / 30)
    np.testing.assert_allclose(x.std(0) / sd, 1, atol=0.06)
    np.testing.assert_allclose(np.corrcoef(x.T), cov / np.outer(sd, sd), atol=0.05)
    again = runner.run_chains(
        target, inits, np.eye(d), draws=2000, tune=1000, seed=11, target_accept=0.8, cores=1
    )
    np.testing.assert_array_equal(run.theta, again.theta)


def test_windows_follow_stan():
    """Stan's schedule for 1000 warm-up iterations: buffer 75, windows 25, 50, 100, 200,
    500 (the last stretched to the terminal buffer of 50)."""
    assert list(windows(1000)) == [75, 100, 150, 250, 450, 950]
    assert list(windows(100)) == [15, 90]  # 15 % / 75 % / 10 %
    assert list(windows(10)) == [0]  # too short: no metric adaptation

"""Behaviour of the compiled NUTS that a sampler ignoring it would fail: the warm-up does
not depend on how the iterations are cut into chunks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bayeslmm.bayes import compiled, marginal


def _gaussian(d: int = 2, seed: int = 0) -> compiled.GaussianTarget:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    cov = A @ A.T + np.eye(d)
    return compiled.GaussianTarget(rng.normal(size=d), np.linalg.inv(cov))


def _one_call(target, init, tune, draws, seed, dense=True):
    d = init.shape[0]
    out = np.empty((draws, d))
    stats = np.zeros((tune + draws, compiled.NSTAT))
    compiled.run_chunk(
        target, init.copy(), np.empty(d), np.zeros(compiled.NSTATE), np.eye(d), np.eye(d),
        np.zeros(d), np.zeros((d, d)), np.ones(d), marginal.windows(tune), 0, tune + draws,
        tune, seed, 0.8, 10, dense, out, stats,
    )  # fmt: skip
    return out, stats


@pytest.mark.parametrize(("tune", "draws"), [(200, 100), (500, 500)])
def test_run_chains_equals_one_call(tune, draws):
    """run_chains cuts a chain into chunks (here of 15 or 50 iterations, so that every
    metric-window end falls on a chunk boundary): its draws and statistics must equal
    one run over the same iterations.  The step-size re-initialisation after each window
    used to live in a local variable and was lost at a boundary."""
    target = _gaussian()
    d = 2
    init = np.array([0.3, -0.2])
    start = marginal.Start(init[None].copy(), np.eye(d))
    run = marginal.run_chains(
        SimpleNamespace(data=target), start, draws=draws, tune=tune,
        seed=5, target_accept=0.8, cores=1, progressbar=False,
    )  # fmt: skip
    seed = int(np.random.SeedSequence(5).spawn(1)[0].generate_state(1)[0])
    out, stats = _one_call(target, init, tune, draws, seed)
    np.testing.assert_array_equal(run.stats[0], stats)
    np.testing.assert_array_equal(run.theta[0], out)

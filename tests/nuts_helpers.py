"""Targets and one-chain runs for the NUTS tests (tests/test_nuts_*.py)."""

from __future__ import annotations

import itertools

import numpy as np

from bayeslmm.bayes import compiled
from bayeslmm.bayes.nuts import adaptation, runner, state
from bayeslmm.bayes.nuts.chain import run_chunk


def gaussian(d: int = 2, seed: int = 0, spread: float = 1.0) -> compiled.GaussianTarget:
    """N(μ, Σ) with random correlations."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    cov = (A @ A.T + np.eye(d)) * spread
    return compiled.GaussianTarget(rng.normal(size=d), np.linalg.inv(cov))


def diagonal_gaussian(sds: np.ndarray) -> compiled.GaussianTarget:
    sds = np.asarray(sds, dtype=float)
    return compiled.GaussianTarget(np.zeros(sds.size), np.diag(1.0 / sds**2))


def one_chain(
    target, init, tune, draws, seed, *, dense=True, metric0=None, target_accept=0.8,
    max_depth=10, robust_min=runner.ROBUST_MIN, chunks=None, warmup=False,
):  # fmt: skip
    """One chain run in one call (or cut at ``chunks``): (draws, stats, chain)."""
    d = init.shape[0]
    metric0 = np.eye(d) if metric0 is None else metric0
    total = tune + draws
    chain = runner.new_chain(init, metric0, dense, adaptation.windows(tune))
    config = np.zeros(1, state.CONFIG)
    config[0] = (tune, seed, target_accept, max_depth, robust_min)
    out = np.empty((draws, d))
    warm = np.empty((tune if warmup else 0, d))
    stats = np.zeros(total, state.STATS)
    cuts = [0, *(chunks or []), total]
    for a, b in itertools.pairwise(cuts):
        assert run_chunk(target, chain, config, a, b, out, warm, stats)
    return out, stats, chain

"""The diagnostics of every posterior (bayeslmm.bayes.summary.diagnose) equal ArviZ 1.x's
``rhat`` and ``ess(method="bulk")`` / ``ess(method="tail", prob=(0.05, 0.95))``."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayeslmm.bayes import summary


def _ar(rng: np.random.Generator, shape: tuple[int, int, int], phi: float) -> np.ndarray:
    x = rng.normal(size=shape)
    for i in range(1, shape[1]):
        x[:, i] = phi * x[:, i - 1] + x[:, i]
    return x


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    nan_const = rng.normal(size=(4, 100, 6))
    nan_const[1, 3, 2] = np.nan
    nan_const[:, :, 5] = 3.0
    return {
        "iid": rng.normal(size=(4, 400, 8)),
        "autocorrelated, odd draws": _ar(rng, (4, 401, 6), 0.9),
        "ties": np.round(rng.normal(size=(4, 200, 6)), 1),
        "three values": rng.integers(0, 3, size=(3, 101, 4)).astype(float),
        "one chain": _ar(rng, (1, 500, 4), 0.5),
        "stuck chains": np.repeat(rng.normal(size=(2, 20, 4)), 25, axis=1),
        "chains disagree": rng.normal(size=(4, 300, 4)) + np.arange(4)[:, None, None],
        "five draws": rng.normal(size=(2, 5, 3)),
        "NaN and constant": nan_const,
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_diagnostics_equal_arviz(case):
    x = _cases()[case]
    rhat, bulk, tail = summary.diagnose(x)
    P = x.shape[2]
    ref_rhat = [float(az.rhat(x[..., j])) if x.shape[0] > 1 else np.nan for j in range(P)]
    ref_bulk = [float(az.ess(x[..., j], method="bulk")) for j in range(P)]
    ref_tail = [float(az.ess(x[..., j], method="tail", prob=(0.05, 0.95))) for j in range(P)]
    for ours, ref in ((rhat, ref_rhat), (bulk, ref_bulk), (tail, ref_tail)):
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_too_few_draws_give_nan():
    rhat, bulk, tail = summary.diagnose(np.random.default_rng(1).normal(size=(2, 3, 2)))
    assert np.isnan(rhat).all() and np.isnan(bulk).all() and np.isnan(tail).all()

"""REML of crossed and nested designs (issue 20): the dense-coupling blocked factor
(:mod:`bayeslmm.reml.crossed`) and the pairs gradient (:mod:`bayeslmm.reml.pairs`).

Every algebraic check compares with the dense factorisation of the whole augmented matrix
(:class:`~bayeslmm.reml.dense.DenseDeviance`, itself checked against lme4 in test_reml.py);
every fit check compares with lme4's BOBYQA path run on the same criterion (the path these
designs took before)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayeslmm as blm
from bayeslmm.design import build_design
from bayeslmm.reml import crossed as crossed_module
from bayeslmm.reml import optimize
from bayeslmm.reml.blocked import BlockedDeviance
from bayeslmm.reml.crossed import CrossedDeviance, blocked_deviance, dense_coupling
from bayeslmm.reml.dense import DenseDeviance
from bayeslmm.reml.fit import make_deviance

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from _sim import simulate_insteval
from _sim_crossed import (
    INSTEVAL,
    KB07_MAXIMAL,
    KB07_REDUCED,
    NESTED,
    TWO_CONDITION,
    simulate_kb07,
    simulate_nested,
    simulate_two_condition,
)


def _small_kb07():
    data = simulate_kb07(8, 8, seed=3)
    data["x"] = np.random.default_rng(0).normal(size=len(data))
    return data


def _small_nested():
    data = simulate_nested(30, 4, seed=2)
    data["x"] = np.random.default_rng(2).normal(size=len(data))
    return data


CROSSED = [
    (TWO_CONDITION, lambda: simulate_two_condition(12, 10)),
    (KB07_REDUCED, _small_kb07),
    ("rt ~ spkr + (1 + spkr + prec | subj) + (1 + load | item) + (1 | item:prec)", _small_kb07),
    ("rt ~ x + (1 | subj) + (1 | item)", _small_kb07),
]
PAIRS = [
    (INSTEVAL, lambda: simulate_insteval(3000, 120, 40, 5)),
    (NESTED, _small_nested),
    ("y ~ x + (1 + x | a:b) + (1 | a)", _small_nested),
    ("y ~ x + (1 | a) + (1 | b) + (1 + x | a:b)", _small_nested),
]


def _theta(design, seed=1):
    rng = np.random.default_rng(seed)
    return np.maximum(design.theta_start + rng.uniform(-0.4, 0.9, len(design.theta_start)), 0)


def _check_against_dense(dev, design, reml):
    dense = DenseDeviance(design, reml)
    theta = _theta(design)
    f, g = dev.value_and_grad(theta)
    fd, gd = dense.value_and_grad(theta)
    assert f == pytest.approx(fd, rel=1e-11) and dev(theta) == pytest.approx(f, rel=1e-12)
    np.testing.assert_allclose(g, gd, rtol=1e-7, atol=1e-8 * np.abs(gd).max())
    h = 1e-6
    numeric = [(dev(theta + h * e) - dev(theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())
    s, sd = dev.solution(theta), dense.solution(theta)
    for key in ("fval", "beta", "r2", "Rx", "u"):
        np.testing.assert_allclose(getattr(s, key), getattr(sd, key), rtol=1e-9, atol=1e-11)
    for v, vd in zip(s.V, sd.V, strict=True):
        np.testing.assert_allclose(v, vd, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("formula, make", CROSSED)
@pytest.mark.parametrize("reml", [True, False])
def test_dense_coupling_equals_the_dense_factor(formula, make, reml):
    """Criterion, exact gradient (also against finite differences) and solution."""
    design = build_design(formula, make())
    assert dense_coupling(design)
    dev = CrossedDeviance(design, reml)
    assert dev.has_gradient and dev.scaled_start
    _check_against_dense(dev, design, reml)


@pytest.mark.parametrize("formula, make", PAIRS)
@pytest.mark.parametrize("reml", [True, False])
def test_pairs_gradient_equals_the_dense_factor(formula, make, reml):
    design = build_design(formula, make())
    dev = BlockedDeviance(design, reml)
    assert dev.has_gradient and dev.b2.scalar and dev.b2.q
    _check_against_dense(dev, design, reml)


def test_the_factor_is_chosen_by_the_coupling(monkeypatch):
    """Fully crossed designs couple densely, nested and sparse ones by pairs, and so do
    crossed ones whose dense A₂₁ would be too large."""
    crossed = build_design(KB07_REDUCED, simulate_kb07())
    nested = build_design(NESTED, simulate_nested())
    sparse = build_design(INSTEVAL, simulate_insteval(6000, 1000, 300, 8))
    assert isinstance(make_deviance(crossed), CrossedDeviance)
    for design in (nested, sparse):
        dev = blocked_deviance(design)
        assert type(dev) is BlockedDeviance and dev.has_gradient
    monkeypatch.setattr(crossed_module, "DENSE_ENTRIES_MAX", 128 * 224 - 1)
    assert not dense_coupling(crossed)  # A₂₁ is 128 x 224
    assert dense_coupling(build_design(TWO_CONDITION, simulate_two_condition(12, 10)))


def _bobyqa_fit(design):
    """lme4's optimizeLmer on the same criterion: the path these designs took before."""
    dev = make_deviance(design)
    with optimize.blas_threads(1):
        return optimize.bobyqa_path(dev, optimize.start_theta(design), design.theta_lower)


FITS = [
    ("KB07-shaped reduced", KB07_REDUCED, simulate_kb07),
    ("2-condition 40 x 40", TWO_CONDITION, lambda: simulate_two_condition(40, 40)),
    ("2-condition 30 x 20 seed 4", TWO_CONDITION, lambda: simulate_two_condition(30, 20, 4)),
    ("nested 60 x 4", NESTED, lambda: simulate_nested(60, 4)),
    ("InstEval-shaped 6,000 rows", INSTEVAL, lambda: simulate_insteval(6000, 300, 80, 6)),
]


@pytest.mark.parametrize("name, formula, make", FITS, ids=[f[0] for f in FITS])
def test_crossed_fits_reach_the_bobyqa_optimum_or_lower(name, formula, make):
    data = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = blm.lmer(formula, data)
    assert fit.optinfo["optimizer"] == optimize.BFGS
    old = _bobyqa_fit(fit.design)
    assert fit.reml_criterion <= old.fval + 1e-6
    if not fit.is_singular:  # a singular optimum is flat along the boundary
        np.testing.assert_allclose(fit.theta, old.theta, rtol=2e-3, atol=2e-4)
        ref = make_deviance(fit.design).solution(old.theta)
        np.testing.assert_allclose(fit.fixef, ref.beta, rtol=1e-4)
    # the reported fit is the PLS solution at θ̂: criterion and β̂ by the dense factor
    if fit.design.q < 600:
        sol = DenseDeviance(fit.design).solution(fit.theta.to_numpy())
        assert sol.fval == pytest.approx(fit.reml_criterion, rel=1e-11)
        np.testing.assert_allclose(fit.fixef, sol.beta, rtol=1e-9)


def test_kb07_shaped_maximal_fit_is_singular_and_beats_its_start():
    """The maximal model (72 θ): BFGS converges to a singular fit whose gradient vanishes
    (θ searched without bounds, so a boundary optimum is stationary)."""
    design = build_design(KB07_MAXIMAL, simulate_kb07())
    assert len(design.theta_start) == 72
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = blm.lmer(KB07_MAXIMAL, simulate_kb07())
    assert fit.optinfo["optimizer"] == optimize.BFGS and fit.is_singular
    dev = make_deviance(design)
    f, g = dev.value_and_grad(fit.theta.to_numpy())
    assert f == pytest.approx(fit.reml_criterion, rel=1e-12)
    assert np.abs(g).max() < 1e-3
    assert fit.reml_criterion < dev(optimize.start_theta(design)) - 10


@pytest.mark.slow
def test_kb07_shaped_maximal_fit_is_no_worse_than_bobyqa():
    """lme4's BOBYQA path on the same criterion (about 5,500 evaluations, a minute or two)."""
    data = simulate_kb07()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = blm.lmer(KB07_MAXIMAL, data)
    old = _bobyqa_fit(fit.design)
    assert fit.reml_criterion <= old.fval + 1e-6

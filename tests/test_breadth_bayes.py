"""Weights and offsets on the Bayesian path: the marginal sampler's density is the dense
Gaussian one with Var ε_i = σ²/w_i and the offset in the mean (up to lme4's constant
½Σ log w), and the posterior sits at the REML estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sl
from scipy import stats

import bayeslmm as blm
from bayeslmm import BayesLMMError, names
from bayeslmm.bayes import marginal
from bayeslmm.bayes.priors import resolve_priors


def _dense(mm: marginal.MarginalModel, design, theta: np.ndarray) -> float:
    """log N(y − offset; Xc m, σ² diag(1/w) + ZΣZᵀ + Xc S Xcᵀ), dense, original scale."""
    m, s = mm.fixef_prior
    values = marginal.constrained(mm, theta)
    blocks = []
    for t in design.terms:
        sd = values[names.sd(t.group)]
        corr = values[names.corr(t.group)] if t.nc > 1 else np.eye(1)
        blocks += [np.outer(sd, sd) * corr] * t.nl
    Z = design.Z().toarray()
    w = np.ones(design.nobs) if design.weights is None else design.weights
    V = np.diag(values[names.SIGMA] ** 2 / w) + Z @ sl.block_diag(*blocks) @ Z.T
    Xc = design.X - mm.x_mean
    y = design.y - (0 if design.offset is None else design.offset)
    return stats.multivariate_normal(Xc @ m, V + (Xc * s**2) @ Xc.T).logpdf(y)


@pytest.mark.parametrize(
    "formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"]
)
def test_weighted_offset_density_is_the_dense_gaussian(formula):
    d = blm.load_dataset("sleepstudy")
    w = 1.0 + d["Days"] % 3
    plain = blm.Model(formula, d).design
    design = blm.Model(formula + " + offset(0.5 * Days)", d, weights=w).design
    priors = resolve_priors(plain)
    mm_w, mm_p = marginal.build(design, priors), marginal.build(plain, priors)
    rng = np.random.default_rng(2)
    centre = marginal.unconstrained(
        mm_w, np.zeros(2), [np.full(t.nc, 20.0) for t in design.terms],
        [np.eye(t.nc) for t in design.terms], 30.0,
    )  # fmt: skip
    diffs = []
    for _ in range(3):
        theta = centre + rng.normal(scale=0.3, size=mm_w.dim)
        # the priors and Jacobians: what the plain kernel adds to its dense density
        extra = marginal.logp(mm_p, theta)[0] - _dense(mm_p, plain, theta)
        diffs.append(marginal.logp(mm_w, theta)[0] - _dense(mm_w, design, theta) - extra)
    # the kernel works on sqrt(w)-scaled rows: its density is lower by ½Σ log w
    np.testing.assert_allclose(diffs, -0.5 * np.log(w).sum(), atol=1e-7)


@pytest.mark.slow
def test_weighted_posterior_sits_at_reml():
    d = blm.load_dataset("sleepstudy")
    model = blm.Model("Reaction ~ Days + (Days | Subject)", d, weights=1 + d["Days"] % 3)
    fit = model.fit_reml()
    post = model.sample(draws=1000, tune=1000, chains=4, seed=3, progressbar=False)
    fixef = post.fixef
    z = (fixef["mean"] - fit.fixef) / fit.fixef_se
    assert (np.abs(z) < 0.5).all()
    assert post.sigma["mean"] == pytest.approx(fit.sigma, rel=0.05)
    # LOO and posterior predictions use σ/sqrt(w_i) and the offset
    pp = post.sample_posterior_predictive(seed=1)["posterior_predictive"][names.Y]
    resid = pp.to_numpy() - post.predict(summary=False).to_numpy()
    ratio = (
        resid[..., (d["Days"] % 3 == 0).to_numpy()].std()
        / resid[..., (d["Days"] % 3 == 2).to_numpy()].std()
    )
    assert ratio == pytest.approx(np.sqrt(3), rel=0.05)


def test_offset_joins_posterior_predictions():
    d = blm.load_dataset("sleepstudy")
    m = blm.Model("Reaction ~ Days + (1 | Subject) + offset(2 * Days)", d)
    post = m.sample(draws=500, tune=500, chains=2, seed=1, progressbar=False)
    eta = post.predict(d.iloc[:3], group_effects="none", summary=False)
    fixef = post.fixef["mean"].to_numpy()
    expected = fixef[0] + (fixef[1] + 2) * d["Days"].to_numpy()[:3]
    np.testing.assert_allclose(eta.mean(("chain", "draw")), expected, rtol=1e-10)


def test_pymc_path_and_residual_groups_refuse_clearly():
    d = blm.load_dataset("sleepstudy")
    m = blm.Model("Reaction ~ Days + (1 | Subject)", d, weights=1 + d["Days"] % 2)
    with pytest.raises(BayesLMMError, match="marginal sampler"):
        m.sample(draws=10, tune=10, chains=1, nuts_sampler="pymc")
    o = pd.DataFrame({"y": np.arange(40.0), "g": np.repeat(np.arange(8), 5), "k": ["a", "b"] * 20})
    with pytest.raises(BayesLMMError, match="sigma= residual groups"):
        blm.Model("y ~ 1 + (1 | g)", o, sigma="~ 1 | k").sample(draws=10, tune=10, chains=1)


def test_posterior_emmeans_are_the_grid_over_draws():
    """Two computations: the posterior's emmeans are the medians of the closed-form means
    (intercept + variety coefficient + slope · mean nitro) at every draw; pairs are the
    draws' differences; compare_emmeans sets them beside the REML ones."""
    from pathlib import Path

    d = pd.read_csv(Path(__file__).parent / "reference" / "breadth" / "oats.csv")
    model = blm.Model("yield ~ nitro + Variety + (1 | Block/Variety)", d)
    post = model.sample(draws=300, tune=300, chains=2, seed=5, progressbar=False)
    b = post.draws(names.FIXEF).transpose("chain", "draw", ...).to_numpy().reshape(-1, 4)
    means = b[:, [0]] + b[:, 1:2] * d["nitro"].mean() + np.column_stack([0 * b[:, 0], b[:, 2:]])
    table = post.emmeans("Variety")
    np.testing.assert_allclose(table["emmean"], np.median(means, axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["sd"], means.std(axis=0, ddof=1), rtol=1e-10)
    assert list(table.columns[:4]) == ["emmean", "sd", *post.ci_columns]
    pairs = table.pairs()
    np.testing.assert_allclose(
        pairs["estimate"].iloc[0], np.median(means[:, 0] - means[:, 1]), rtol=1e-12
    )
    side = blm.compare_emmeans(model.fit_reml(), post, "Variety")
    assert {"reml_emmean", "reml_df", "post_emmean", "std_diff"} <= set(side.columns)
    assert (side["std_diff"].abs() < 0.5).all()


def test_weighted_posterior_loo_and_model_identity():
    d = blm.load_dataset("sleepstudy")
    w = 1 + d["Days"] % 2
    model = blm.Model("Reaction ~ Days + (1 | Subject)", d, weights=w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run: only the algebra is tested
        post = model.sample(draws=300, tune=300, chains=2, seed=2, progressbar=False)
    with pytest.raises(BayesLMMError, match="does not take weights yet"):
        post.loo(by="group", factor="Subject")
    # the pointwise log-likelihood is N(y_i; eta_i, sigma^2 / w_i)
    ll = blm.bayes.explore.pointwise_loglik(post).isel(chain=0, draw=0).to_numpy()
    eta = post.predict(summary=False).isel(chain=0, draw=0).to_numpy()
    sigma = float(post.draws(names.SIGMA).isel(chain=0, draw=0))
    expected = stats.norm(eta, sigma / np.sqrt(w)).logpdf(d["Reaction"])
    np.testing.assert_allclose(ll, expected, rtol=1e-10)
    other = blm.Model("Reaction ~ Days + (1 | Subject)", d).fit_reml()
    with pytest.raises(blm.ComparisonError, match="weights differ"):
        blm.compare(other, post)


def test_saved_weighted_posterior_keeps_weights_and_offset(tmp_path):
    d = blm.load_dataset("sleepstudy")
    d = d.assign(o=0.3 * d["Days"])
    model = blm.Model("Reaction ~ Days + (1 | Subject)", d, weights=1 + d["Days"] % 2, offset="o")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = model.sample(draws=100, tune=100, chains=1, seed=1, progressbar=False)
    assert "Weights:" in post.summary() and "Offset: o" in post.summary()
    back = blm.load_posterior(post.save(tmp_path / "w.nc"))
    np.testing.assert_array_equal(back.design.weights, model.design.weights)
    np.testing.assert_allclose(back.design.offset, model.design.offset)
    np.testing.assert_allclose(
        back.predict(summary=False).to_numpy(), post.predict(summary=False).to_numpy()
    )

"""The partially marginal kernel (one grouping factor and β integrated out, the other
effects sampled): its log density integrates over the sampled effects to the marginal
density, its gradient is the finite-difference one, its draws of the integrated effects
are the exact Gaussian conditional, and its posterior is the marginal one."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import bayeslmm as blm
from bayeslmm.bayes import compiled, marginal
from bayeslmm.bayes.parameterization import (
    choose_parameterization,
    latent_terms,
    partial_parameterization,
)
from bayeslmm.bayes.priors import resolve_priors
from bayeslmm.bayes.sampling import sample_posterior
from bayeslmm.bayes.settings import SamplerSettings
from bayeslmm.errors import ConvergenceWarning, SamplingError


def _crossed(subjects: int = 9, items: int = 7, seed: int = 0) -> pd.DataFrame:
    """A small fully crossed design with correlated slopes on both factors, and a third
    factor (lists of items)."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    i = np.tile(np.arange(items), subjects)
    cond = ((s + i) % 2) - 0.5
    x = rng.normal(size=s.size)
    y = 3 + 0.5 * cond + 0.2 * x + rng.normal(size=subjects)[s] + rng.normal(size=items)[i]
    y += rng.normal(size=(items))[i] * cond * 0.5 + rng.normal(size=s.size)
    return pd.DataFrame(
        {"y": y, "cond": cond, "x": x, "subj": s.astype(str), "item": i.astype(str),
         "list": (i % 3).astype(str)}
    )  # fmt: skip


FORMULAS = [
    "y ~ cond + (1 + cond | subj) + (1 + cond | item)",
    "y ~ cond + x + (1 + cond | subj) + (1 | item) + (1 | list)",
    "y ~ cond + (1 | subj) + (0 + cond | subj) + (1 + cond | item)",
]


def _point(mm: marginal.MarginalModel, rng: np.random.Generator) -> np.ndarray:
    theta = rng.normal(scale=0.3, size=mm.dim)
    theta[mm.hdim - 1] = 0.1
    for s, t in zip(mm.term_sd, mm.design.terms, strict=True):
        theta[s : s + t.nc] = rng.normal(scale=0.3, size=t.nc)
    return theta


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("integrate", [True, False])
def test_partial_density_integrates_to_the_marginal(formula, centred, integrate):
    """The sampled effects enter Gaussianly, so the Laplace integral over them is exact:
    log ∫ p(θ_h, b_s) db_s = log p(θ_h) of the fully marginal kernel, to rounding."""
    model = blm.Model(formula, _crossed())
    priors = resolve_priors(model.design)
    full = marginal.build(model.design, priors, integrate_fixef=integrate)
    lat = {i: centred for i in latent_terms(model.design, partial_parameterization(model.design))}
    mm = marginal.build(model.design, priors, integrate_fixef=integrate, latent=lat)
    assert isinstance(mm.data, compiled.PartialData)
    hd = mm.hdim
    assert full.dim == hd
    rng = np.random.default_rng(1)
    for _ in range(2):
        theta = _point(mm, rng)

        def neg(u: np.ndarray, theta: np.ndarray = theta) -> tuple[float, np.ndarray]:
            value, grad = marginal.logp(mm, np.r_[theta[:hd], u])
            return -value, -grad[hd:]

        found = minimize(neg, theta[hd:], jac=True, method="BFGS", options={"gtol": 1e-9})
        u, q = found.x, mm.dim - hd
        H = np.empty((q, q))
        for i in range(q):
            e = np.zeros(q)
            e[i] = 1e-4
            H[:, i] = (neg(u + e)[1] - neg(u - e)[1]) / 2e-4
        laplace = -found.fun + 0.5 * q * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(H)[1]
        assert laplace == pytest.approx(marginal.logp(full, theta[:hd])[0], abs=1e-6)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("integrate", [True, False])
def test_partial_gradient_matches_finite_differences(formula, centred, integrate):
    model = blm.Model(formula, _crossed())
    lat = {i: centred for i in latent_terms(model.design, partial_parameterization(model.design))}
    mm = marginal.build(
        model.design, resolve_priors(model.design), integrate_fixef=integrate, latent=lat
    )
    theta = _point(mm, np.random.default_rng(2))
    _, grad = marginal.logp(mm, theta)
    h = 1e-5
    fd = np.empty(mm.dim)
    for i in range(mm.dim):
        e = np.zeros(mm.dim)
        e[i] = h
        fd[i] = (marginal.logp(mm, theta + e)[0] - marginal.logp(mm, theta - e)[0]) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_partial_draws_are_the_gaussian_conditional():
    """At fixed θ (hyperparameters and the sampled effects), the draws of the integrated
    effects and β have the mean and SDs of their Gaussian conditional, computed densely
    from y − Z_s b_s, and the sampled effects come back unchanged."""
    import scipy.linalg as sl

    model = blm.Model(FORMULAS[0], _crossed())
    design = model.design
    mm = marginal.build(design, resolve_priors(design), latent={1: False})
    m, s = mm.fixef_prior
    theta = _point(mm, np.random.default_rng(3))
    n = 20_000
    effects = marginal.draw_effects(mm, np.tile(theta, (1, n, 1)), seed=3, cores=2)
    subj, item = design.terms
    b_item = effects.ranef[1].reshape(n, -1)
    assert np.ptp(b_item, axis=0).max() == 0.0
    vals = marginal.constrained(mm, theta)
    sd, corr, sigma = vals["sd_subj"], vals["corr_subj"], float(vals["sigma"])
    T = np.linalg.cholesky(np.outer(sd, sd) * corr)
    z = theta[mm.hdim :].reshape(item.nl, item.nc)
    L_item = np.linalg.cholesky(np.outer(*[vals["sd_item"]] * 2) * vals["corr_item"])
    np.testing.assert_allclose(b_item[0], (z @ L_item.T).ravel(), rtol=1e-12)
    y = design.y - item.Z() @ b_item[0]
    W = np.hstack([design.X - mm.x_mean, subj.Z().toarray()])
    prior_prec = sl.block_diag(np.diag(s**-2), *[np.linalg.inv(T @ T.T)] * subj.nl)
    cov = np.linalg.inv(W.T @ W / sigma**2 + prior_prec)
    mean = cov @ (W.T @ y / sigma**2 + np.concatenate([m / s**2, np.zeros(subj.q)]))
    draws = np.hstack([effects.beta.reshape(n, -1), effects.ranef[0].reshape(n, -1)])
    sds = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * sds / np.sqrt(n))
    np.testing.assert_allclose(draws.std(0), sds, rtol=0.03)


def test_partial_form_names_and_sampler_choice():
    """ "partial" integrates out the factor with the most effects and samples the others;
    only the compiled sampler runs it."""
    model = blm.Model(FORMULAS[1], _crossed(subjects=12, items=6))
    form = choose_parameterization(model.design, "partial")
    assert form["subj"] == "marginal"
    assert form["item"] in ("centered", "noncentered") and form["list"] != "marginal"
    with pytest.raises(SamplingError, match="partially marginal"):
        model.sample(parameterization="partial", nuts_sampler="pymc", draws=10, tune=10)


def test_partial_sample_keeps_the_posterior_interface(tmp_path):
    """A short partially marginal fit: every ranef and fixef drawn, names, summaries,
    save/load and predict work as for the marginal form."""
    model = blm.Model(FORMULAS[0], _crossed())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = model.sample(
            parameterization="partial", draws=100, tune=100, chains=2, seed=1, progressbar=False
        )
    assert post.parameterization["subj"] == "marginal"
    assert set(post.ranef) == {"subj", "item"}
    assert np.isfinite(post.fixef["mean"]).all()
    loaded = blm.load_posterior(post.save(tmp_path / "fit.nc"))
    assert loaded.parameterization == post.parameterization
    pd.testing.assert_frame_equal(loaded.ranef["item"], post.ranef["item"])
    pred = post.predict()
    assert len(pred) == len(model.design.y) and np.isfinite(pred["mean"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit_reml()
    table = blm.compare(fit, post, reml_ci=None)
    assert len(table) > 0
    assert len(blm.shrinkage(fit, post, factor="item")) == model.design.terms[1].q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(post.loo(by="group", factor="item").elpd)


def _summaries(post: blm.Posterior) -> pd.DataFrame:
    frames = [post.fixef, post.varcorr.iloc[:, 4:]]
    frames += [post.ranef[f] for f in post.design.group_factors]
    table = pd.concat(frames)
    return table.assign(mcse=table["sd"] / np.sqrt(table["ess_bulk"]))


@pytest.mark.slow
@pytest.mark.parametrize("formula", FORMULAS)
def test_partial_and_marginal_posteriors_agree(formula):
    """Posterior means of every parameter and every b agree within 4.5 Monte Carlo
    standard errors and SDs within 10 %, between the fully and the partially marginal
    forms (centred and non-centred sampled effects) on three crossed designs."""
    model = blm.Model(formula, _crossed(subjects=16, items=12, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = _summaries(
            model.sample(draws=2000, seed=3, parameterization="marginal", progressbar=False)
        )
        for centred in (True, False):
            form = choose_parameterization(model.design, "partial")
            lat = latent_terms(model.design, form)
            form = {
                g: f if f == "marginal" else ("centered" if centred else "noncentered")
                for g, f in form.items()
            }
            assert lat
            post = sample_posterior(
                model.design,
                resolve_priors(model.design),
                form,
                SamplerSettings(draws=2000, seed=5, progressbar=False),
            )
            part = _summaries(post)
            z = (part["mean"] - full["mean"]) / np.sqrt(part["mcse"] ** 2 + full["mcse"] ** 2)
            assert np.abs(z).max() < 4.5, z.abs().sort_values().tail()
            np.testing.assert_allclose(part["sd"], full["sd"], rtol=0.1)

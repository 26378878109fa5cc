"""``Model.explain``: the generative story, with the user's names and the fitted numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import load_reference, prior_posterior

from bayeslmm import Model, load_dataset
from bayeslmm.errors import ConvergenceWarning, ParameterError


def _lines(story) -> dict[str, str]:
    """Step title -> statement (later steps with the same title win)."""
    return {line.split(". ", 1)[1].split(": ", 1)[0]: line.split(": ", 1)[1]
            for line in str(story).splitlines()[1:]}  # fmt: skip


def test_correlated_slopes_story(sleepstudy):
    story = Model("Reaction ~ Days + (Days | Subject)", sleepstudy).explain()
    text = str(story)
    assert text.splitlines() == [
        "Generative story of Reaction ~ Days + (Days | Subject) (symbols)",
        "1. Population (fixed) coefficients: b0 for (Intercept), b1 for Days",
        "2. Grouping factor: Subject (18 levels)",
        "3. SDs of the Subject effects: tau_u0 for (Intercept), tau_u1 for Days",
        "4. Correlation matrix of the Subject effects: Omega_u ~ LKJ(eta)",
        "5. Covariance of the Subject effects: "
        "Sigma_u = diag(tau_u0, tau_u1) Omega_u diag(tau_u0, tau_u1)",
        "6. Subject effects: (u0[j], u1[j]) ~ MvNormal(0, Sigma_u) "
        "for each of the 18 levels j of Subject",
        "7. Linear predictor: mu[i] = (b0 + u0[Subject[i]]) + (b1 + u1[Subject[i]]) * Days[i]",
        "8. Response: Reaction[i] ~ Normal(mu[i], sigma) for each of the 180 observations i",
    ]
    md = story.to_markdown()
    assert story._repr_markdown_() == md
    assert r"$\Omega_{u} \sim \mathrm{LKJ}(\eta)$" in md
    assert (
        r"$\mu[i] = (\beta_{0} + u_{0}[\text{Subject}[i]]) + "
        r"(\beta_{1} + u_{1}[\text{Subject}[i]]) \cdot \text{Days}[i]$" in md
    )


def test_given_values_fill_in_the_numbers(sleepstudy):
    model = Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    params = {
        "fixef": [251.405105, 10.467286],
        "sigma": 25.5918,
        "sd": {"Subject": [24.7407, 5.92214]},
        "corr": {"Subject": 0.0655512},
    }
    lines = _lines(model.explain(params))
    assert lines["Population (fixed) coefficients"] == (
        "b0 = 251.4 for (Intercept), b1 = 10.47 for Days"
    )
    assert lines["SDs of the Subject effects"] == (
        "tau_u0 = 24.74 for (Intercept), tau_u1 = 5.922 for Days"
    )
    assert lines["Correlation matrix of the Subject effects"].endswith("corr(u0, u1) = 0.06555")
    assert lines["Response"].endswith("; sigma = 25.59")
    with pytest.raises(ParameterError, match="sigma must be >= 0"):
        model.explain({**params, "sigma": -1.0})


def test_reml_story_has_the_estimates(sleepstudy):
    model = Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    text = str(model.explain(model.fit_reml()))
    assert text.splitlines()[1:] == [
        "1. Population (fixed) coefficients: b0 = 251.4 for (Intercept), b1 = 10.47 for Days",
        "2. Grouping factor: Subject (18 levels)",
        "3. SDs of the Subject effects: tau_u0 = 24.74 for (Intercept), tau_u1 = 5.922 for Days",
        "4. Correlation matrix of the Subject effects: Omega_u (an LKJ(eta) prior in the "
        "Bayesian model); corr(u0, u1) = 0.06555",
        "5. Covariance of the Subject effects: "
        "Sigma_u = diag(tau_u0, tau_u1) Omega_u diag(tau_u0, tau_u1)",
        "6. Subject effects: (u0[j], u1[j]) ~ MvNormal(0, Sigma_u) "
        "for each of the 18 levels j of Subject",
        "7. Linear predictor: mu[i] = (b0 + u0[Subject[i]]) + (b1 + u1[Subject[i]]) * Days[i]",
        "8. Response: Reaction[i] ~ Normal(mu[i], sigma) for each of the 180 observations i; "
        "sigma = 25.59",
    ]
    assert "(REML estimates)" in text.splitlines()[0]


def test_uncorrelated_reml_story(sleepstudy):
    model = Model("Reaction ~ Days + (Days || Subject)", sleepstudy)
    text = str(model.explain(model.fit_reml()))
    assert "LKJ" not in text
    ref = load_reference("ss_uncorr")["varcorr"]
    assert f"tau_u0 = {ref[0]['sd'][0]:.4g} for (Intercept)" in text
    assert f"tau_u1 = {ref[1]['sd'][0]:.4g} for Days" in text


def test_uncorrelated_terms_have_no_lkj(sleepstudy):
    text = str(Model("Reaction ~ Days + (Days || Subject)", sleepstudy).explain())
    assert "LKJ" not in text and "Omega" not in text and "MvNormal" not in text
    assert "u0[j] ~ Normal(0, tau_u0) for each of the 18 levels j of Subject" in text
    assert "u1[j] ~ Normal(0, tau_u1) for each of the 18 levels j of Subject" in text
    assert "mu[i] = (b0 + u0[Subject[i]]) + (b1 + u1[Subject[i]]) * Days[i]" in text


def test_intercept_only_and_no_fixed_intercept(sleepstudy):
    lines = _lines(Model("Reaction ~ Days + (1 | Subject)", sleepstudy).explain())
    assert lines["Linear predictor"] == "mu[i] = (b0 + u[Subject[i]]) + b1 * Days[i]"
    assert lines["Subject effects"].startswith("u[j] ~ Normal(0, tau_u)")
    lines = _lines(Model("Reaction ~ 0 + Days + (Days | Subject)", sleepstudy).explain())
    assert lines["Population (fixed) coefficients"] == "b0 for Days"
    assert lines["Linear predictor"] == "mu[i] = u0[Subject[i]] + (b0 + u1[Subject[i]]) * Days[i]"


def test_nested_factors():
    story = Model("strength ~ 1 + (1|batch/cask)", load_dataset("pastes")).explain()
    lines = _lines(story)
    assert lines["Grouping factors"] == (
        "cask:batch (30 levels), batch (10 levels); cask:batch nested in batch"
    )
    assert lines["Linear predictor"] == "mu[i] = b0 + u[cask:batch[i]] + v[batch[i]]"
    assert "`cask:batch` nested in `batch`" in story.to_markdown()


def test_crossed_factors():
    lines = _lines(
        Model("diameter ~ 1 + (1|plate) + (1|sample)", load_dataset("penicillin")).explain()
    )
    assert lines["Grouping factors"] == (
        "plate (24 levels), sample (6 levels); plate crossed with sample"
    )
    assert lines["Linear predictor"] == "mu[i] = b0 + u[plate[i]] + v[sample[i]]"


def test_categorical_in_bar_and_several_fixed_effects():
    iris = load_dataset("iris")
    iris["g"] = np.tile(np.arange(10), 15)
    model = Model("Petal.Width ~ Sepal.Width + Sepal.Length + Species + (Species | g)", iris)
    lines = _lines(model.explain())
    assert lines["Linear predictor"] == (
        "mu[i] = (b0 + u0[g[i]]) + b1 * Sepal.Width[i] + b2 * Sepal.Length[i] + "
        "(b3 + u1[g[i]]) * [Species[i] == versicolor] + (b4 + u2[g[i]]) * [Species[i] == virginica]"
    )
    assert lines["g effects"] == (
        "(u0[j], u1[j], u2[j]) ~ MvNormal(0, Sigma_u) for each of the 10 levels j of g"
    )


def test_posterior_story_has_posterior_means_and_priors(sleep_model):
    """Draws of the real PyMC model (from its prior, so no NUTS) stand in for a posterior."""
    model = sleep_model
    post = prior_posterior(model, draws=40, seed=3)
    story = model.explain(post)
    lines = _lines(story)
    draws = post.draws
    b0, b1 = draws["fixef"].mean(("chain", "draw")).to_numpy()
    sd = draws["sd_Subject"].mean(("chain", "draw")).to_numpy()
    rho = draws["corr_Subject"].mean(("chain", "draw")).to_numpy()[0, 1]
    sy, sx = model.design.y.std(ddof=1), model.design.X[:, 1].std(ddof=1)
    assert str(story).splitlines()[0].endswith("(posterior means and the priors used)")
    assert lines["Population (fixed) coefficients"] == (
        f"b0 = {b0:.4g} for (Intercept), "
        f"b1 = {b1:.4g} for Days (prior Normal(mu=0, sigma={2.5 * sy / sx:.4g})), "
        f"prior on the centred intercept b0 + 4.5 * b1 ~ "
        f"Normal(mu={model.design.y.mean():.4g}, sigma={2.5 * sy:.4g})"
    )
    assert lines["SDs of the Subject effects"].startswith(
        f"tau_u0 = {sd[0]:.4g} for (Intercept) (prior HalfStudentT(nu=3, sigma={sy:.4g}))"
    )
    assert lines["Correlation matrix of the Subject effects"] == (
        f"Omega_u ~ LKJ(eta=2); corr(u0, u1) = {rho:.4g}"
    )
    sigma = draws["sigma"].mean().item()
    assert lines["Response"].endswith(
        f"sigma = {sigma:.4g} (prior HalfStudentT(nu=3, sigma={sy:.4g}))"
    )


def test_marginal_posterior_says_what_was_integrated_out(sleep_model, sleep_posterior):
    """The compiled sampler integrated b and β (Normal priors) out and drew them after; a
    StudentT prior on a slope keeps β in NUTS, and the story says which."""
    assert sleep_posterior.integrated_fixef
    step = _lines(sleep_model.explain(sleep_posterior))
    assert step["How the posterior was computed"].startswith(
        "the group effects u0, u1 (Subject) and the fixed coefficients (Normal priors) were "
        "integrated out for sampling: NUTS drew only the SDs, correlations and sigma"
    )
    model = Model(
        "Reaction ~ Days + (Days | Subject)",
        load_dataset("sleepstudy"),
        priors={"fixef[Days]": "StudentT(nu=4, mu=0, sigma=20)"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = model.sample(draws=50, tune=50, chains=1, seed=2, progressbar=False)
    assert not post.integrated_fixef
    assert _lines(model.explain(post))["How the posterior was computed"].startswith(
        "the group effects u0, u1 (Subject) were integrated out for sampling: NUTS drew the "
        "fixed coefficients, SDs, correlations and sigma from Reaction ~ MvNormal(X b, "
    )


def test_prior_story_lists_the_models_priors_overrides_included(sleepstudy):
    model = Model(
        "Reaction ~ 0 + Days + (1 | Subject)", sleepstudy, priors={"sigma": "HalfNormal(10)"}
    )
    lines = _lines(model.explain(priors=True))
    rms = np.sqrt(np.mean(model.design.y**2)) / np.sqrt(np.mean(model.design.X[:, 0] ** 2))
    assert lines["Population (fixed) coefficients"] == (
        f"b0 for Days (prior Normal(mu=0, sigma={2.5 * rms:.4g}))"
    )
    assert lines["Response"].endswith("; sigma (prior HalfNormal(sigma=10))")
    assert "LKJ" not in str(model.explain(priors=True))

"""LOO by observation and by group, compare_models, and hypothesis() (issue 15).

The log-likelihoods are checked against independent computations (scipy's normal density
per observation, a dense multivariate normal per group for one-term, two-term, nested and
crossed designs); the ranking of sleepstudy's (1 | Subject) and (Days | Subject) against
the REML likelihood-ratio test's verdict; hypotheses against counts on the draws."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic import public_only, synthetic_posterior

import bayeslmm as blm
from bayeslmm.bayes import explore
from bayeslmm.errors import BayesLMMError, LOOWarning


@pytest.fixture(scope="module")
def intercept_posterior(sleepstudy) -> blm.Posterior:
    model = blm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blm.ConvergenceWarning)
        return model.sample(draws=400, tune=400, chains=2, seed=11, cores=1)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------------------
# Log-likelihoods against independent computations
# --------------------------------------------------------------------------------------


def test_pointwise_loglik_is_the_normal_density_given_the_group_effects(sleep_posterior):
    ll = explore.pointwise_loglik(sleep_posterior)
    assert ll.dims == ("chain", "draw", "obs")
    design = sleep_posterior.design
    coef = sleep_posterior.coef_draws("Subject").to_numpy()
    codes, days = design.terms[0].codes, design.X[:, 1]
    mu = coef[:, :, codes, 0] + coef[:, :, codes, 1] * days
    sigma = sleep_posterior.draws("sigma").to_numpy()[..., None]
    np.testing.assert_allclose(ll, stats.norm.logpdf(design.y, mu, sigma), rtol=1e-10)


def _dense_group_loglik(post: blm.Posterior, factor: str) -> np.ndarray:
    """log N(y_j | mean, σ²I + Σ_integrated Z_t (I ⊗ Σ_t) Z_tᵀ) with dense matrices and
    scipy, draw by draw; the other terms' effects from the draws."""
    design = post.design
    _, outer = explore.integrated_terms(design, factor)
    d = explore.Draws.of(post)
    Z = [t.Z().toarray() for t in design.terms]
    main = design.factor_terms(factor)[0]
    out = np.empty((d.n, main.nl))
    for s in range(d.n):
        mean = design.X @ d.fixef[s]
        cov = d.sigma[s] ** 2 * np.eye(design.nobs)
        for i, t in enumerate(design.terms):
            if i in outer:
                mean = mean + Z[i] @ d.ranef[i][s].ravel()
            else:
                sd, corr = d.sd[i][s], d.corr[i][s]
                Sigma = sd[:, None] * corr * sd[None, :]
                cov = cov + Z[i] @ np.kron(np.eye(t.nl), Sigma) @ Z[i].T
        for j in range(main.nl):
            rows = main.codes == j
            dist = stats.multivariate_normal(mean[rows], cov[np.ix_(rows, rows)])
            out[s, j] = dist.logpdf(design.y[rows])
    return out


@pytest.mark.parametrize(
    ("dataset", "formula", "factor", "integrated"),
    [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "Subject", [0]),
        ("sleepstudy", "Reaction ~ Days + (Days || Subject)", "Subject", [0, 1]),
        ("pastes", "strength ~ 1 + (1 | batch/cask)", "batch", [0, 1]),  # casks nested
        ("pastes", "strength ~ 1 + (1 | batch/cask)", "cask:batch", [0]),  # batch given
        ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "plate", [0]),  # crossed
        ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "sample", [1]),
    ],
)
def test_group_loglik_is_the_dense_marginal_density(dataset, formula, factor, integrated):
    model = blm.Model(formula, blm.load_dataset(dataset))
    post = synthetic_posterior(model, chains=1, draws=12, seed=2)
    assert explore.integrated_terms(model.design, factor)[0] == integrated
    fast = explore.group_loglik(post, factor)
    assert fast.dims == ("chain", "draw", factor)
    np.testing.assert_allclose(
        fast.to_numpy().reshape(12, -1), _dense_group_loglik(post, factor), rtol=1e-10
    )


def test_group_loglik_sums_the_observations_when_the_effects_vanish(sleep_model):
    """With Σ → 0 a group's marginal likelihood is the product of its observations'."""
    post = synthetic_posterior(sleep_model, chains=1, draws=5, seed=1)
    tiny = post.idata.copy()
    tiny["posterior"]["sd_Subject"] = tiny["posterior"]["sd_Subject"] * 1e-9
    tiny["posterior"]["ranef_Subject"] = tiny["posterior"]["ranef_Subject"] * 0
    small = blm.Posterior(tiny, post.design, priors=post.priors, parameterization={})
    by_obs = explore.pointwise_loglik(small).to_numpy().reshape(5, -1)
    codes = post.design.terms[0].codes
    summed = np.stack([by_obs[:, codes == j].sum(axis=1) for j in range(18)], axis=1)
    np.testing.assert_allclose(
        explore.group_loglik(small, "Subject").to_numpy().reshape(5, -1), summed, rtol=1e-8
    )


# --------------------------------------------------------------------------------------
# LOO and compare_models
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["observation", "group"])
def test_loo_ranks_correlated_slopes_above_random_intercepts(
    sleep_posterior, intercept_posterior, by
):
    """(Days | Subject) predicts held-out observations and held-out subjects better, as
    the likelihood-ratio test (chi² 42.1 on 2 df) says for the ML fits."""
    table = _quiet(
        blm.compare_models,
        {"(1 | Subject)": intercept_posterior, "(Days | Subject)": sleep_posterior},
        by=by,
    )
    assert list(table.index) == ["(Days | Subject)", "(1 | Subject)"]
    assert table["elpd_diff"].iloc[1] < 0
    assert {"rank", "elpd", "se", "p", "weight", "dse"} <= set(table.columns)
    slope = _quiet(sleep_posterior.loo, by=by)
    assert slope.n_data_points == (180 if by == "observation" else 18)
    assert table.loc["(Days | Subject)", "elpd"] == pytest.approx(slope.elpd, rel=1e-12)


def test_the_likelihood_ratio_test_agrees(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml0 = blm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, reml=False)
        ml1 = blm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    chi2 = 2 * (ml1.loglik - ml0.loglik)
    assert chi2 == pytest.approx(42.14, abs=0.01)  # lme4: anova(fm0, fm1) Chisq 42.139
    assert stats.chi2.sf(chi2, 2) < 1e-8


def test_loo_by_observation_matches_arviz_on_the_same_loglik(sleep_posterior):
    import arviz as az
    import xarray as xr

    ll = explore.pointwise_loglik(sleep_posterior)
    params = sleep_posterior.parameter_draws()
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"p": params.drop_vars(list(params.coords))}),
            "log_likelihood": xr.Dataset({"y": ll}),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.loo(tree, pointwise=True)
    got = _quiet(sleep_posterior.loo)
    assert got.elpd == pytest.approx(expected.elpd, rel=1e-12)
    assert got.pareto_k.shape == (180,)


def test_loo_is_the_same_for_the_public_vocabulary_alone(sleep_posterior):
    alone = public_only(sleep_posterior)
    for by in ("observation", "group"):
        a, b = _quiet(alone.loo, by), _quiet(sleep_posterior.loo, by)
        assert a.elpd == pytest.approx(b.elpd, rel=1e-12)


def test_high_pareto_k_warns_with_the_package_warning():
    """An outlier far outside what the draws predict makes its importance weights heavy."""
    data = blm.load_dataset("sleepstudy").copy()
    data.loc[5, "Reaction"] += 400.0
    model = blm.Model("Reaction ~ Days + (Days | Subject)", data)
    post = synthetic_posterior(model, chains=2, draws=200, seed=3)
    with pytest.warns(LOOWarning, match=r"Pareto k > 0\.\d+ for \d+ observations: .*\b5 \(k="):
        post.loo()


def test_loo_and_compare_models_errors(sleep_fit, sleep_posterior, intercept_posterior):
    with pytest.raises(BayesLMMError, match="by must be 'observation' or 'group'"):
        sleep_posterior.loo(by="subject")
    with pytest.raises(BayesLMMError, match="unknown grouping factor 'Subjects'"):
        sleep_posterior.loo(by="group", factor="Subjects")
    with pytest.raises(BayesLMMError, match=r"REML fits: fit\.aic, fit\.bic, blm\.anova"):
        blm.compare_models({"reml": sleep_fit, "post": sleep_posterior})
    with pytest.raises(BayesLMMError, match="at least two"):
        blm.compare_models({"post": sleep_posterior})
    other = blm.Model("Reaction ~ Days + (1 | Subject)", blm.load_dataset("sleepstudy").iloc[:170])
    with pytest.raises(BayesLMMError, match="fitted to other data"):
        _quiet(
            blm.compare_models,
            {"a": intercept_posterior, "b": synthetic_posterior(other, 1, 50)},
        )
    crossed = blm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", blm.load_dataset("penicillin"))
    pen = blm.load_dataset("penicillin")
    by_plate = synthetic_posterior(blm.Model("diameter ~ 1 + (1 | plate)", pen), 1, 30)
    by_sample = synthetic_posterior(blm.Model("diameter ~ 1 + (1 | sample)", pen), 1, 30)
    with pytest.raises(BayesLMMError, match="leave out different groups"):
        _quiet(blm.compare_models, {"plate": by_plate, "sample": by_sample}, by="group")
    with pytest.raises(BayesLMMError, match=r"name it with factor= \(one of plate, sample"):
        synthetic_posterior(crossed, 1, 10).loo(by="group")


def test_compare_models_takes_loo_results(sleep_posterior, intercept_posterior):
    results = {
        "slope": _quiet(sleep_posterior.loo, "group"),
        "int": _quiet(intercept_posterior.loo, "group"),
    }
    assert list(blm.compare_models(results).index) == ["slope", "int"]


# --------------------------------------------------------------------------------------
# hypothesis()
# --------------------------------------------------------------------------------------


def test_one_sided_hypotheses_are_counts_on_the_draws(sleep_posterior):
    days = sleep_posterior.draws("fixef").sel(fixef__term="Days").to_numpy().ravel()
    table = sleep_posterior.hypothesis(["fixef[Days] > 10", "fixef[Days] <= 9"])
    p = np.mean(days > 10)
    row = table.loc["fixef[Days] > 10"]
    assert row["post_prob"] == p
    assert row["evid_ratio"] == pytest.approx(p / (1 - p), rel=1e-12)
    assert row["estimate"] == pytest.approx(days.mean() - 10, rel=1e-12)
    assert row["sd"] == pytest.approx(days.std(ddof=1), rel=1e-12)
    assert table.loc["fixef[Days] <= 9", "post_prob"] == np.mean(days <= 9)
    lb, ub = sleep_posterior.ci_columns
    assert list(table.columns) == ["estimate", "sd", lb, ub, "post_prob", "evid_ratio", "star"]


def test_hypotheses_combine_labels_of_every_kind(sleep_posterior):
    draws = sleep_posterior.parameter_draws()

    def flat(label: str) -> np.ndarray:
        return draws.sel(parameter=label).to_numpy().ravel()

    text = "sd_Subject[Days] * 4 < sd_Subject[(Intercept)] + corr_Subject[(Intercept),Days]"
    expected = np.mean(
        flat("sd_Subject[Days]") * 4
        - flat("sd_Subject[(Intercept)]")
        - flat("corr_Subject[(Intercept), Days]")
        < 0
    )
    assert sleep_posterior.hypothesis(text)["post_prob"].iloc[0] == expected
    ratio = sleep_posterior.hypothesis("exp(sigma / 10) > 12")["post_prob"].iloc[0]
    assert ratio == np.mean(np.exp(flat("sigma") / 10) > 12)


def test_two_sided_hypothesis_interval_and_savage_dickey(sleep_posterior):
    """The interval of lhs − rhs; the evidence ratio is the posterior density at the value
    over the prior's (fixef[Days] ~ Normal(0, s), analytic)."""
    table = sleep_posterior.hypothesis("fixef[Days] - 10 = 0", prior_draws=20000, seed=1)
    days = sleep_posterior.draws("fixef").sel(fixef__term="Days").to_numpy().ravel()
    lb = sleep_posterior.ci_columns[0]
    row = table.iloc[0]
    assert row["estimate"] == pytest.approx(days.mean() - 10, rel=1e-12)
    assert row[lb] == pytest.approx(np.quantile(days - 10, 0.055), rel=1e-12)
    assert np.isnan(row["post_prob"])
    s = sleep_posterior.priors["fixef[Days]"].args["sigma"]
    expected = stats.gaussian_kde(days)(10.0)[0] / stats.norm.pdf(10.0, 0, s)
    assert row["evid_ratio"] == pytest.approx(expected, rel=0.05)
    assert np.isnan(sleep_posterior.hypothesis("sigma = 25", prior_draws=0)["evid_ratio"].iloc[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fixef[Dayz] > 1", r"unknown parameter 'fixef\[Dayz\]'.*did you mean 'fixef\[Days\]'"),
        ("fixef[Days]", "compares two sides"),
        ("fixef[Days] > 1 > 0", "compares two sides"),
        ("__import__('os').system('x') > 1", "unknown parameter '__import__'"),
        ("fixef[Days] < [1]", "uses List: not allowed"),
        ("max(sigma) > 1", "unknown parameter 'max'"),
        ("log(sigma, 2) > 1", "only exp, log, sqrt, abs of one argument"),
        ("", "a hypothesis is a string"),
    ],
)
def test_hypothesis_errors(sleep_posterior, text, message):
    with pytest.raises(BayesLMMError, match=message):
        sleep_posterior.hypothesis(text)


def test_hypothesis_spacing_is_free(sleep_posterior):
    a = sleep_posterior.hypothesis("corr_Subject[ (Intercept) ,Days ]>0")
    b = sleep_posterior.hypothesis("corr_Subject[(Intercept), Days] > 0")
    assert a["post_prob"].iloc[0] == b["post_prob"].iloc[0]
    assert isinstance(a, pd.DataFrame)

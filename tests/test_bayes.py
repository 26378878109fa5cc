"""The Bayesian path: PyMC model structure, priors, parameterisation, sampling, Posterior.

The sleepstudy model and its short posterior are session fixtures (conftest.py); the full
acceptance run is marked slow.  Persistence: test_persistence.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from conftest import SLEEP, load_reference

import bayeslmm as blm
from bayeslmm.bayes import parameterization, sampling
from bayeslmm.bayes import settings as sampler_settings
from bayeslmm.bayes.priors import resolve_priors
from bayeslmm.bayes.settings import SamplerSettings
from bayeslmm.errors import ConvergenceWarning, PriorError, SamplingError


def _dims(model: pm.Model) -> dict[str, tuple]:
    return {k: tuple(v) if v else () for k, v in model.named_vars_to_dims.items()}


# --------------------------------------------------------------------------------------
# model structure
# --------------------------------------------------------------------------------------


def test_structure_sleepstudy(sleep_model):
    """The default (marginal) model: β, the SDs, the LKJ correlation factor and σ are the
    free variables, b is integrated out; y is observed with dim obs."""
    model = sleep_model.pymc_model()
    ref = load_reference("ss_slope")
    assert {v.name for v in model.free_RVs} == {
        "Intercept",
        "beta",
        "sd_Subject",
        "corr_chol_Subject",
        "sigma",
    }
    assert {v.name for v in model.deterministics} == {"fixef", "corr_Subject"}
    dims = _dims(model)
    assert dims["fixef"] == ("fixef__term",)
    assert dims["sd_Subject"] == ("Subject__term",)
    assert dims["corr_chol_Subject"] == ("Subject__term", "Subject__term_bis")
    assert dims["corr_Subject"] == ("Subject__term", "Subject__term_bis")
    assert dims["y"] == ("obs",)
    assert list(model.coords["fixef__term"]) == ref["fixef_names"]
    assert list(model.coords["Subject"]) == ref["ranef"]["Subject"]["levels"]
    assert list(model.coords["Subject__term"]) == ["(Intercept)", "Days"]
    # the latent forms share the variance components and add b
    latent = sleep_model.pymc_model(parameterization="noncentered")
    assert {v.name for v in latent.free_RVs} == {
        "Intercept",
        "beta",
        "sd_Subject",
        "corr_chol_Subject",
        "z_Subject",
        "sigma",
    }
    assert _dims(latent)["ranef_Subject"] == ("Subject", "Subject__term")
    # hierarchically centred: coef_Subject = fixef + b is the free variable
    centred = sleep_model.pymc_model(parameterization="centered")
    assert "coef_Subject" in {v.name for v in centred.free_RVs}
    assert _dims(centred)["ranef_Subject"] == ("Subject", "Subject__term")
    b, coef, fixef = pm.draw(
        [centred["ranef_Subject"], centred["coef_Subject"], centred["fixef"]],
        draws=3,
        random_seed=1,
    )
    np.testing.assert_allclose(b, coef - fixef[:, None, :], rtol=1e-10)


def test_lkj_prior_is_the_correlation_prior(sleep_model):
    """corr_Subject's prior draws follow LKJ(2) in 2 dimensions: (ρ + 1)/2 ~ Beta(2, 2),
    i.e. sd(ρ) = 1/√5; the SDs keep their HalfStudentT priors."""
    model = sleep_model.pymc_model()
    corr, sd = pm.draw([model["corr_Subject"], model["sd_Subject"]], draws=4000, random_seed=2)
    rho = corr[:, 1, 0]
    assert rho.mean() == pytest.approx(0.0, abs=0.03)
    assert rho.std() == pytest.approx(1 / np.sqrt(5), rel=0.05)
    sy = np.std(sleep_model.design.y, ddof=1)
    assert np.median(sd[:, 0]) == pytest.approx(0.7649 * sy, rel=0.08)


def test_fixef_recovers_the_original_intercept(sleep_model):
    """fixef[(Intercept)] = Intercept - mean(Days) * beta, exactly (centred design)."""
    model = sleep_model.pymc_model()
    alpha, beta, fixef = pm.draw(
        [model["Intercept"], model["beta"], model["fixef"]], draws=20, random_seed=3
    )
    days = sleep_model.design.frame["Days"].to_numpy(float)
    np.testing.assert_allclose(fixef[:, 0], alpha - days.mean() * beta[:, 0], rtol=1e-12)
    np.testing.assert_allclose(fixef[:, 1], beta[:, 0], rtol=1e-12)


def test_structure_uncorrelated(sleepstudy):
    model = blm.Model("Reaction ~ Days + (Days || Subject)", sleepstudy).pymc_model(
        parameterization="noncentered"
    )
    dims = _dims(model)
    names = {v.name for v in model.free_RVs}
    assert not any(n.startswith(("corr_", "chol_")) for n in dims)
    assert {"sd_Subject", "sd_Subject.1"} <= names
    assert dims["ranef_Subject"] == ("Subject", "Subject__term")
    assert dims["ranef_Subject.1"] == ("Subject", "Subject.1__term")
    assert list(model.coords["Subject.1__term"]) == ["Days"]


def test_structure_nested_and_crossed():
    pastes = blm.Model("strength ~ (1|batch/cask)", blm.load_dataset("pastes"))
    model = pastes.pymc_model(parameterization="noncentered")
    dims = _dims(model)
    assert dims["ranef_cask:batch"] == ("cask:batch", "cask:batch__term")
    assert dims["ranef_batch"] == ("batch", "batch__term")
    assert len(model.coords["cask:batch"]) == 30 and len(model.coords["batch"]) == 10
    pen = blm.Model("diameter ~ (1|plate) + (1|sample)", blm.load_dataset("penicillin"))
    model = pen.pymc_model()
    ref = load_reference("penicillin")
    assert {k: len(model.coords[k]) for k in ("plate", "sample")} == ref["ngroups"]
    assert "fixef__term" in model.coords and "slope" not in model.coords


# --------------------------------------------------------------------------------------
# parameterisation
# --------------------------------------------------------------------------------------


def test_auto_integrates_the_random_effects_out(sleep_model):
    design = sleep_model.design
    assert parameterization.choose_parameterization(design) == {"Subject": "marginal"}
    pen = blm.Model("diameter ~ (1|plate) + (1|sample)", blm.load_dataset("penicillin"))
    assert parameterization.choose_parameterization(pen.design) == {
        "plate": "marginal",
        "sample": "marginal",
    }


def test_auto_integrates_one_factor_when_crossing_is_dear():
    """A sparse crossing whose second factor has 1,100 levels (a dense block 2 of 1,100
    columns: about 665 ms a marginal gradient): "auto" integrates the factor with the most
    effects out and samples the other one, and says why."""
    rng = np.random.default_rng(0)
    n = 4000
    data = pd.DataFrame(
        {
            "a": rng.integers(0, 1500, n).astype(str),
            "b": (np.arange(n) % 1100).astype(str),
            "y": rng.normal(size=n),
        }
    )
    model = blm.Model("y ~ 1 + (1 | a) + (1 | b)", data)
    choice = parameterization.auto_choice(model.design)
    assert choice.form["a"] == "marginal"
    assert choice.form["b"] in ("centered", "noncentered")
    assert "effects of a are integrated out and the other 1,100 effects sampled" in choice.reason
    assert choice.ms_partial is not None and choice.ms_partial < choice.ms_marginal / 10
    assert parameterization.choose_parameterization(model.design) == choice.form


def test_auto_cost_model_by_design():
    """Fully crossed subjects x 100 items: the marginal gradient walks subjects · 100²
    pairs (8 ms per million) and the partial one subjects · 100 couplings, so "auto"
    integrates the subjects only; penicillin's 24 plates x 6 samples and pastes' nested
    casks (small blocks) integrate everything; one grouping factor always does."""
    rng = np.random.default_rng(1)
    for subjects in (20, 200):
        grid = pd.MultiIndex.from_product([range(subjects), range(100)], names=["s", "i"])
        data = grid.to_frame().astype(str).assign(y=rng.normal(size=len(grid)))
        design = blm.Model("y ~ 1 + (1 | s) + (1 | i)", data).design
        choice = parameterization.auto_choice(design)
        assert choice.form["i"] == "marginal" if subjects == 20 else choice.form["s"] == "marginal"
        assert set(choice.form.values()) != {"marginal"}
    for name, formula in [
        ("penicillin", "diameter ~ (1|plate) + (1|sample)"),
        ("pastes", "strength ~ 1 + (1 | batch/cask)"),
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ]:
        design = blm.Model(formula, blm.load_dataset(name)).design
        assert set(parameterization.choose_parameterization(design).values()) == {"marginal"}


def test_latent_parameterization_rule(sleep_model):
    rng = np.random.default_rng(5)
    # sleepstudy: 10 observations per subject, ratios ≈ 2.7 and 4.4 -> non-centred
    design = sleep_model.design
    ratios = parameterization.information_ratio(design, design.terms[0])
    np.testing.assert_allclose(ratios, [2.705, 4.418], rtol=1e-3)
    assert parameterization.latent_parameterization(design) == {"Subject": "noncentered"}
    # penicillin: plate's ratio is small (sample effects in the residuals) -> non-centred
    pen = blm.Model("diameter ~ (1|plate) + (1|sample)", blm.load_dataset("penicillin"))
    assert parameterization.latent_parameterization(pen.design) == {
        "plate": "noncentered",
        "sample": "centered",
    }
    # pastes: cask:batch is nested in batch -> non-centred despite its ratio ≈ 29
    pastes = blm.Model("strength ~ (1|batch/cask)", blm.load_dataset("pastes"))
    assert parameterization.information_ratio(pastes.design, pastes.design.terms[0])[0] > 20
    assert parameterization.latent_parameterization(pastes.design) == {
        "cask:batch": "noncentered",
        "batch": "noncentered",
    }
    # 8 groups x 300 rows, tau = 2, sigma = 1: the data dominate -> centred
    g = np.repeat(np.arange(8), 300)
    y = rng.normal(0, 2, 8)[g] + rng.normal(0, 1, g.size)
    big = blm.Model("y ~ 1 + (1|g)", pd.DataFrame({"y": y, "g": g.astype(str)}))
    assert parameterization.latent_parameterization(big.design) == {"g": "centered"}
    model = big.pymc_model(parameterization="centered")
    assert "coef_g" in {v.name for v in model.free_RVs}
    forced = big.pymc_model(parameterization="noncentered")
    assert "z_g" in {v.name for v in forced.free_RVs}
    with pytest.raises(SamplingError, match="parameterization"):
        big.pymc_model(parameterization="mixed")


# --------------------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------------------


def test_default_prior_table(sleep_model):
    table = sleep_model.priors
    y = sleep_model.design.y
    days = sleep_model.design.frame["Days"].to_numpy(float)
    sy, sx = np.std(y, ddof=1), np.std(days, ddof=1)
    assert list(table.index) == [
        "Intercept",
        "fixef[Days]",
        "sd_Subject[(Intercept)]",
        "sd_Subject[Days]",
        "corr_Subject",
        "sigma",
    ]
    resolved = resolve_priors(sleep_model.design)
    assert resolved["Intercept"].args == pytest.approx({"mu": y.mean(), "sigma": 2.5 * sy})
    assert resolved["fixef[Days]"].args == pytest.approx({"mu": 0.0, "sigma": 2.5 * sy / sx})
    assert resolved["sd_Subject[(Intercept)]"].args == pytest.approx({"nu": 3, "sigma": sy})
    assert resolved["sd_Subject[Days]"].args == pytest.approx({"nu": 3, "sigma": sy / sx})
    assert resolved["corr_Subject"].args == {"eta": 2.0}
    assert resolved["sigma"].args == pytest.approx({"nu": 3, "sigma": sy})
    assert table.loc["sigma", "distribution"] == "HalfStudentT"
    assert table.loc["fixef[Days]", "rule"] == "Normal(0, 2.5 sd(y) / sd(x))"


def test_prior_overrides(sleepstudy):
    model = blm.Model(
        SLEEP,
        sleepstudy,
        priors={
            "sigma": ("HalfNormal", {"sigma": 10}),
            "corr_Subject": "LKJ(eta=1)",
            "fixef[Days]": "Normal(sigma=5)",  # same family: mu=0 kept
            "sd_Subject": blm.Prior("HalfNormal", {"sigma": 20}),
        },
    )
    table = model.priors
    assert table.loc["sigma", "arguments"] == "sigma=10"
    assert table.loc["corr_Subject", "arguments"] == "eta=1"
    assert table.loc["fixef[Days]", "arguments"] == "mu=0, sigma=5"
    assert table.loc["sd_Subject[Days]", "distribution"] == "HalfNormal"
    pmm = model.pymc_model()
    sigma, beta = pm.draw([pmm["sigma"], pmm["beta"]], draws=4000, random_seed=1)
    # HalfNormal(10): mean 10 sqrt(2/pi) = 7.98; Normal(0, 5): sd 5
    assert sigma.mean() == pytest.approx(10 * np.sqrt(2 / np.pi), rel=0.05)
    assert beta.std() == pytest.approx(5, rel=0.05)
    # sample(priors=...) overrides on top of the Model's
    pmm2 = model.pymc_model(priors={"sigma": "Exponential(lam=1)"})
    assert pm.draw(pmm2["sigma"], draws=4000, random_seed=2).mean() == pytest.approx(1, rel=0.08)


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"sd_subject": "HalfNormal(1)"}, r"unknown prior parameter 'sd_subject'.*valid: "),
        ({"fixef[(Intercept)]": "Normal(0, 1)"}, "set on 'Intercept'"),
        ({"sigma": "Normal(0, 1)"}, r"must be on \[0, inf\)"),
        ({"sigma": "Halfnormal(1)"}, "not a PyMC distribution"),
        ({"sigma": "LKJ(eta=1)"}, "LKJ is a prior for correlations"),
        ({"corr_Subject": "HalfNormal(1)"}, "must be LKJ"),
        ({"corr_Subject": ("LKJ", {"eta": -1})}, "eta > 0"),
        ({"sd_Subject[Days]": "Exponential(1)"}, "share one distribution family"),
        ({"sigma": "HalfNormal(sigma=-1)"}, "invalid prior|non-finite"),
        ({"sigma": "HalfNormal(sigma=1"}, "cannot read the prior"),
        ({"sigma": 3.0}, "must be a Prior"),
    ],
)
def test_prior_errors(sleepstudy, priors, match):
    with pytest.raises(PriorError, match=match):
        _ = blm.Model(SLEEP, sleepstudy, priors=priors).priors


def test_prior_error_lists_valid_names(sleep_model):
    with pytest.raises(PriorError) as err:
        sleep_model.pymc_model(priors={"tau": "HalfNormal(1)"})
    for name in ["Intercept", "fixef[Days]", "sd_Subject[Days]", "corr_Subject", "sigma"]:
        assert name in str(err.value)


def test_prior_predictive(sleep_model):
    prior = sleep_model.sample_prior_predictive(draws=2000, seed=4)
    sy = np.std(sleep_model.design.y, ddof=1)
    sigma = prior["prior"]["sigma"].to_numpy().ravel()
    # median of HalfStudentT(3, s) is s * t_3 quantile 0.75 = 0.7649 s
    assert np.median(sigma) == pytest.approx(0.7649 * sy, rel=0.08)
    assert prior["prior_predictive"]["y"].sizes["obs"] == 180
    again = sleep_model.sample_prior_predictive(draws=2000, seed=4)
    np.testing.assert_array_equal(sigma, again["prior"]["sigma"].to_numpy().ravel())


# --------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------


def test_seed_reproducible(sleep_model):
    options = {"draws": 40, "tune": 40, "chains": 2, "cores": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = sleep_model.sample(seed=7, **options)
        b = sleep_model.sample(seed=7, **options)
        c = sleep_model.sample(seed=8, **options)
    np.testing.assert_array_equal(a.draws("fixef").values, b.draws("fixef").values)
    np.testing.assert_array_equal(a.draws("ranef_Subject").values, b.draws("ranef_Subject").values)
    assert not np.array_equal(a.draws("fixef").values, c.draws("fixef").values)


def test_convergence_warning_on_a_bad_run(sleep_model):
    with pytest.warns(ConvergenceWarning, match=r"(r_hat|ESS|divergent).*") as rec:
        post = sleep_model.sample(draws=30, tune=5, chains=2, seed=1, cores=1)
    text = str(rec[0].message)
    assert "fit_reml" in text
    d = post.diagnostics
    assert d.min_ess_bulk < 200 or d.max_r_hat > 1.01 or d.divergences > 0


# --------------------------------------------------------------------------------------
# Posterior
# --------------------------------------------------------------------------------------


def test_posterior_tables(sleep_posterior):
    ref = load_reference("ss_slope")
    fixef = sleep_posterior.fixef
    assert list(fixef.index) == ["(Intercept)", "Days"]
    assert list(fixef.columns) == [
        "mean",
        "sd",
        "eti89_lb",
        "eti89_ub",
        "r_hat",
        "ess_bulk",
        "ess_tail",
    ]
    for name, value in ref["fixef"].items():
        assert abs(fixef.loc[name, "mean"] - value) < 0.5 * fixef.loc[name, "sd"]
        # posterior sd of a fixed effect ≈ the REML standard error (within 30%)
        assert fixef.loc[name, "sd"] == pytest.approx(ref["fixef_se"][name], rel=0.3)
    vc = sleep_posterior.varcorr
    keys = list(zip(vc.grp, vc.var1, vc.var2, strict=True))
    assert keys == [
        ("Subject", "(Intercept)", None),
        ("Subject", "Days", None),
        ("Subject", "(Intercept)", "Days"),
        ("Residual", None, None),
    ]
    assert vc["mean"].iloc[3] == pytest.approx(ref["sigma"], rel=0.05)
    assert sleep_posterior.sigma["mean"] == vc["mean"].iloc[3]
    assert vc["mean"].iloc[1] == pytest.approx(ref["varcorr"][0]["sd"][1], rel=0.25)


def test_ranef_and_coef(sleep_posterior):
    ref = load_reference("ss_slope")
    ranef = sleep_posterior.ranef["Subject"]
    levels = ref["ranef"]["Subject"]["levels"]
    assert list(ranef.index.names) == ["Subject", "term"]
    assert list(ranef.index.get_level_values(0).unique()) == levels
    reml = np.array(ref["ranef"]["Subject"]["values"])
    means = ranef["mean"].to_numpy().reshape(len(levels), 2)
    # posterior means of b track the REML conditional modes (within 1 conditional sd)
    condsd = np.array(ref["ranef"]["Subject"]["condsd"])
    assert np.all(np.abs(means - reml) < condsd)
    coef = sleep_posterior.coef["Subject"]
    fixef = sleep_posterior.fixef["mean"]
    for level in levels[:3]:
        for term in ["(Intercept)", "Days"]:
            assert coef.loc[(level, term), "mean"] == pytest.approx(
                fixef[term] + ranef.loc[(level, term), "mean"], rel=1e-9
            )


def test_draws_and_intervals(sleep_posterior):
    fixef = sleep_posterior.draws("fixef")
    assert fixef.dims == ("chain", "draw", "fixef__term")
    assert sleep_posterior.draws["sd_Subject"].dims == ("chain", "draw", "Subject__term")
    with pytest.raises(KeyError, match="no posterior variable"):
        sleep_posterior.draws("tau")
    wide = sleep_posterior.with_ci(prob=0.95)
    draws = fixef.sel(fixef__term="Days").to_numpy().ravel()
    lb, ub = np.quantile(draws, [0.025, 0.975])
    assert wide.fixef.loc["Days", "eti95_lb"] == pytest.approx(lb, rel=1e-6)
    assert wide.fixef.loc["Days", "eti95_ub"] == pytest.approx(ub, rel=1e-6)
    hdi = sleep_posterior.with_ci(kind="hdi").fixef
    assert "hdi89_lb" in hdi.columns
    # the HDI is the shortest window of sorted draws holding floor(0.89 S) more draws
    s = np.sort(draws)
    inc = int(np.floor(0.89 * len(s)))
    best = int(np.argmin(s[inc:] - s[: len(s) - inc]))
    assert hdi.loc["Days", "hdi89_lb"] == s[best]
    assert hdi.loc["Days", "hdi89_ub"] == s[best + inc]


def test_summary_and_diagnostics(sleep_posterior):
    text = sleep_posterior.summary()
    assert "Random effects" in text and "Fixed effects" in text
    assert "corr((Intercept), Days)" in text and "Residual" in text
    d = sleep_posterior.diagnostics
    assert d.chains == 2 and d.draws == 400
    assert d.divergences == int(sleep_posterior.idata["sample_stats"]["diverging"].sum())
    assert d.max_r_hat == pytest.approx(sleep_posterior.fixef["r_hat"].max(), abs=0.05)


def test_posterior_predictive(sleep_posterior):
    pp = sleep_posterior.sample_posterior_predictive(seed=3)
    y = pp["posterior_predictive"]["y"]
    assert y.sizes == {"chain": 2, "draw": 400, "obs": 180}
    assert float(y.mean()) == pytest.approx(float(np.mean(sleep_posterior.design.y)), rel=0.02)
    again = sleep_posterior.sample_posterior_predictive(seed=3)
    np.testing.assert_array_equal(y.values, again["posterior_predictive"]["y"].values)


# --------------------------------------------------------------------------------------
# exact check: with the variance components fixed, the posterior of b is Gaussian
# --------------------------------------------------------------------------------------


def test_exact_gaussian_ranef_matches_lme4():
    """Fix sd and sigma at lme4's REML values (pm.do), wide prior on fixef: the posterior
    mean of b is the PLS solution, i.e. lme4's ranef (research.md F(i))."""
    ref = load_reference("ss_int")
    model = blm.Model(ref["formula"], blm.load_dataset("sleepstudy"))
    wide = {"Intercept": "Normal(sigma=1e5)", "fixef": "Normal(sigma=1e5)"}
    pmm = model.pymc_model(priors=wide, parameterization="noncentered")
    fixed = pm.do(pmm, {"sd_Subject": np.array(ref["varcorr"][0]["sd"]), "sigma": ref["sigma"]})
    settings = SamplerSettings(draws=1000, tune=500, chains=2, seed=21, target_accept=0.8, cores=1)
    idata = sampling.run_nuts(fixed, settings, "pymc")
    b = idata["posterior"]["ranef_Subject"].isel(Subject__term=0)
    mean = b.mean(("chain", "draw")).to_numpy()
    sd = b.std(("chain", "draw")).to_numpy()
    reml = np.array(ref["ranef"]["Subject"]["values"])[:, 0]
    condsd = np.array(ref["ranef"]["Subject"]["condsd"])[:, 0]
    mcse = sd / np.sqrt(500)  # ESS of these Gaussian draws is well above 500
    assert np.all(np.abs(mean - reml) < 4 * mcse)
    # the posterior sd includes beta uncertainty, lme4's condsd does not
    assert np.all(sd >= 0.97 * condsd)
    fixef = idata["posterior"]["fixef"].mean(("chain", "draw")).to_numpy()
    se = np.array(list(ref["fixef_se"].values()))
    assert np.all(np.abs(fixef - np.array(list(ref["fixef"].values()))) < 0.1 * se)


# --------------------------------------------------------------------------------------
# acceptance (slow)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_acceptance_sleepstudy_defaults(sleep_model):
    ref = load_reference("ss_slope")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        post = sleep_model.sample(seed=2024)
    d = post.diagnostics
    assert d.chains == 4 and d.draws == 1000
    assert d.divergences == 0
    assert d.max_r_hat <= 1.01
    assert d.min_ess_bulk >= 1000
    fixef = post.fixef
    for name, value in ref["fixef"].items():
        assert abs(fixef.loc[name, "mean"] - value) <= 0.25 * fixef.loc[name, "sd"]


def test_nutpie_sampler(sleep_model, tmp_path):
    """The optional nutpie sampler: same posterior names, reproducible, saveable."""
    pytest.importorskip("nutpie")
    options = {"draws": 200, "tune": 200, "chains": 2, "nuts_sampler": "nutpie"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = sleep_model.sample(seed=5, **options)
        b = sleep_model.sample(seed=5, **options)
    np.testing.assert_array_equal(a.draws("fixef").values, b.draws("fixef").values)
    assert a.fixef.loc["Days", "mean"] == pytest.approx(10.47, abs=3 * a.fixef.loc["Days", "sd"])
    loaded = blm.load_posterior(a.save(tmp_path / "nutpie.nc"))
    pd.testing.assert_frame_equal(loaded.fixef, a.fixef)


def test_missing_optional_sampler(sleep_model, monkeypatch):
    monkeypatch.setattr(sampler_settings.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SamplingError, match="pip install numpyro"):
        sleep_model.sample(nuts_sampler="numpyro")

"""compare() and shrinkage(): REML and posterior side by side.

sleepstudy's REML fit and short posterior are session fixtures (conftest.py).
"""

from __future__ import annotations

import importlib

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import SLEEP
from scipy import stats

import bayeslmm as blm
from bayeslmm.compare import ComparisonError, ComparisonTable
from bayeslmm.errors import BayesLMMError


@pytest.fixture(scope="module")
def sleep(sleep_model, sleep_fit, sleep_posterior):
    return sleep_model, sleep_fit, sleep_posterior


def _fixef_draws(posterior) -> np.ndarray:
    """(chain, draw, p) draws of β."""
    da = posterior.draws["fixef"]
    return da.transpose("chain", "draw", ...).to_numpy()


# --------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------


def test_compare_rows_are_the_shared_parameters(sleep):
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == [
        "fixef[(Intercept)]",
        "fixef[Days]",
        "sd_Subject[(Intercept)]",
        "sd_Subject[Days]",
        "corr_Subject[(Intercept), Days]",
        "sigma",
    ]
    keys = table[["grp", "var1", "var2"]].to_numpy().tolist()
    assert keys == [
        [None, "(Intercept)", None],
        [None, "Days", None],
        ["Subject", "(Intercept)", None],
        ["Subject", "Days", None],
        ["Subject", "(Intercept)", "Days"],
        ["Residual", None, None],
    ]
    assert list(table.columns[3:]) == [
        "reml",
        "reml_se",
        "profile89_lb",
        "profile89_ub",
        "mean",
        "median",
        "sd",
        "eti89_lb",
        "eti89_ub",
        "r_hat",
        "ess_bulk",
        "std_diff",
    ]


def test_compare_reml_columns_are_the_fits_own_values(sleep):
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior)
    vc = fit.varcorr
    expected = [
        fit.fixef["(Intercept)"],
        fit.fixef["Days"],
        vc["sdcor"].iloc[0],
        vc["sdcor"].iloc[1],
        vc["sdcor"].iloc[2],
        fit.sigma,
    ]
    assert table["reml"].tolist() == [float(v) for v in expected]
    assert vc["var1"].iloc[2] == "(Intercept)" and vc["var2"].iloc[2] == "Days"
    se = np.sqrt(np.diag(np.asarray(fit.vcov, dtype=float)))
    np.testing.assert_allclose(table["reml_se"].iloc[:2], se, rtol=1e-12)
    assert table["reml_se"].iloc[2:].isna().all()
    # the right numbers in the right rows: lme4 1.1-31 (tests/reference/ss_slope.json);
    # the REML accuracy itself is tested in test_reml.py
    np.testing.assert_allclose(
        table["reml"], [251.405105, 10.467286, 24.740658, 5.922138, 0.065551, 25.591796], rtol=1e-3
    )
    np.testing.assert_allclose(table["reml_se"].iloc[:2], [6.824597, 1.545790], rtol=1e-3)


def test_compare_posterior_columns_summarise_the_draws(sleep):
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior)
    ds = posterior.draws
    beta = _fixef_draws(posterior)
    sd = ds["sd_Subject"].transpose("chain", "draw", ...).to_numpy()
    corr = ds["corr_Subject"].transpose("chain", "draw", ...).to_numpy()[:, :, 1, 0]
    sigma = ds["sigma"].transpose("chain", "draw").to_numpy()
    draws = np.stack([beta[..., 0], beta[..., 1], sd[..., 0], sd[..., 1], corr, sigma], axis=-1)
    flat = draws.reshape(-1, 6)
    np.testing.assert_allclose(table["mean"], flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["median"], np.median(flat, axis=0), rtol=1e-12)
    np.testing.assert_allclose(table["sd"], flat.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(table["eti89_lb"], np.quantile(flat, 0.055, axis=0), rtol=1e-10)
    np.testing.assert_allclose(table["eti89_ub"], np.quantile(flat, 0.945, axis=0), rtol=1e-10)
    for j in range(6):
        assert table["r_hat"].iloc[j] == pytest.approx(float(az.rhat(draws[..., j])), rel=1e-10)
        ess = float(az.ess(draws[..., j], method="bulk"))
        assert table["ess_bulk"].iloc[j] == pytest.approx(ess, rel=1e-10)
    std_diff = (table["mean"] - table["reml"]) / table["sd"]
    np.testing.assert_allclose(table["std_diff"], std_diff, rtol=1e-12)
    # a short run of a well-identified model: the two paths agree
    assert (table["std_diff"].abs() < 1.5).all()
    assert (table["r_hat"] < 1.1).all()


def test_compare_interval_kind_and_probability_are_configurable(sleep):
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior, ci_kind="hdi", ci_prob=0.95)
    assert "hdi95_lb" in table.columns and "eti89_lb" not in table.columns
    sigma = posterior.draws["sigma"].transpose("chain", "draw")
    lower, upper = az.hdi(sigma, prob=0.95).to_numpy()
    assert table.loc["sigma", "hdi95_lb"] == pytest.approx(lower, rel=1e-12)
    assert table.loc["sigma", "hdi95_ub"] == pytest.approx(upper, rel=1e-12)
    # without arguments, the posterior's own interval setting
    wide = blm.compare(fit, posterior.with_ci(0.95))
    assert wide.loc["sigma", "eti95_lb"] == pytest.approx(float(sigma.quantile(0.025)))
    assert wide.loc["sigma", "eti95_ub"] == pytest.approx(float(sigma.quantile(0.975)))
    # one labelling rule everywhere: the percentage, not int(100 p) (0.57 -> 56.99...)
    for prob, label in [(0.57, "eti57"), (0.999, "eti99.9")]:
        columns = [f"{label}_lb", f"{label}_ub"]
        assert list(posterior.with_ci(prob).fixef.columns[2:4]) == columns
        table = blm.compare(fit, posterior, ci_prob=prob)
        assert set(columns) <= set(table.columns)
        assert {f"profile{label[3:]}_lb", f"profile{label[3:]}_ub"} <= set(table.columns)
        assert set(columns) <= set(blm.shrinkage(fit, posterior, ci_prob=prob).columns)
    with pytest.raises(ComparisonError, match="ci_kind"):
        blm.compare(fit, posterior, ci_kind="quantile")
    with pytest.raises(ComparisonError, match="ci_prob"):
        blm.compare(fit, posterior, ci_prob=1.5)


def test_compare_puts_the_reml_interval_of_the_same_probability_beside(sleep, monkeypatch):
    """Every row gets the REML interval at the posterior interval's probability: the
    profile by default (lme4's ``confint``), Wald on request, none with reml_ci=None."""
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior, ci_prob=0.95)
    profile = fit.confint(level=0.95)
    np.testing.assert_array_equal(table["profile95_lb"], profile["lower"])
    np.testing.assert_array_equal(table["profile95_ub"], profile["upper"])
    assert table[["profile95_lb", "profile95_ub", "eti95_lb", "eti95_ub"]].notna().all().all()
    # the lme4 1.1-31 profile interval of the slope SD (tests/test_inference.py: all rows)
    assert table.loc["sd_Subject[Days]", "profile95_lb"] == pytest.approx(3.80116, rel=1e-5)
    wald = blm.compare(fit, posterior, reml_ci="wald")
    assert wald.loc["fixef[Days]", "wald89_ub"] == pytest.approx(
        fit.fixef["Days"] + stats.norm.ppf(0.945) * fit.fixef_se["Days"], rel=1e-14
    )
    assert wald["wald89_lb"].iloc[2:].isna().all()
    none = blm.compare(fit, posterior, reml_ci=None)
    default = blm.compare(fit, posterior)
    assert list(none.columns) == [c for c in default.columns if not c.startswith("profile")]
    with pytest.raises(ComparisonError, match="reml_ci must be 'profile', 'wald' or None"):
        blm.compare(fit, posterior, reml_ci="boot")
    compare_module = importlib.import_module("bayeslmm.compare")  # blm.compare: the function
    monkeypatch.setattr(compare_module, "DENSE_LIMIT", 10)  # too large for a profile
    with pytest.warns(UserWarning, match="q \\+ p \\+ 1 = 39 > 10 .* Wald intervals"):
        large = blm.compare(fit, None)
    assert "wald89_lb" in large.columns and "profile89_lb" not in large.columns


def test_compare_with_one_side_is_that_sides_table(sleep):
    _, fit, posterior = sleep
    both = blm.compare(fit, posterior)
    reml_only = blm.compare(fit, None)
    columns = ["grp", "var1", "var2", "reml", "reml_se", "profile89_lb", "profile89_ub"]
    assert list(reml_only.columns) == columns
    pd.testing.assert_frame_equal(reml_only, both[reml_only.columns], check_frame_type=False)
    bayes_only = blm.compare(None, posterior)
    assert "reml" not in bayes_only.columns and "std_diff" not in bayes_only.columns
    cols = ["mean", "sd", "eti89_lb", "r_hat"]
    pd.testing.assert_frame_equal(bayes_only[cols], both[cols], check_frame_type=False)


def test_shrinkage_with_one_side_is_that_sides_table(sleep):
    _, fit, posterior = sleep
    both = blm.shrinkage(fit, posterior)
    reml_only = blm.shrinkage(fit, None)
    assert list(reml_only.columns) == [
        "n",
        "no_pooling",
        "complete_pooling",
        "reml",
        "shrinkage_reml",
    ]
    pd.testing.assert_frame_equal(reml_only, both[reml_only.columns], check_frame_type=False)
    bayes_only = blm.shrinkage(None, posterior)
    assert "reml" not in bayes_only.columns and "shrinkage_reml" not in bayes_only.columns
    pd.testing.assert_frame_equal(bayes_only, both[bayes_only.columns], check_frame_type=False)


def test_compare_of_an_ml_fit_names_its_columns_ml(sleep):
    model, _, posterior = sleep
    ml = model.fit_reml(reml=False)
    table = blm.compare(ml, posterior)
    assert "ml" in table.columns and "reml" not in table.columns
    assert table.loc["sigma", "ml"] == pytest.approx(float(ml.sigma))
    # lme4: ML shrinks the SD estimates (sleepstudy sd(Days) 5.717 under ML)
    assert table.loc["sd_Subject[Days]", "ml"] == pytest.approx(5.7168, rel=1e-3)


def test_compare_prints_as_text_and_html(sleep):
    _, fit, posterior = sleep
    table = blm.compare(fit, posterior)
    assert isinstance(table, ComparisonTable)
    text = repr(table)
    assert "corr_Subject[(Intercept), Days]" in text
    assert "nan" not in text.lower()  # missing SEs print as blanks
    assert f"{table.loc['fixef[Days]', 'reml']:.4g}" in text
    html = table._repr_html_()
    assert html.startswith("<table") and "sd_Subject[Days]" in html and "std_diff" in html
    # slicing keeps the table type and its data
    assert isinstance(table.iloc[:2], ComparisonTable)
    assert table.iloc[:2]["reml"].tolist() == table["reml"].tolist()[:2]


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_compare_rejects_wrong_types_and_nothing(sleep):
    _, fit, posterior = sleep
    with pytest.raises(ComparisonError, match="fit must be an LmerFit"):
        blm.compare("fit", posterior)
    with pytest.raises(ComparisonError, match="posterior must be a Posterior"):
        blm.compare(fit, fit)
    with pytest.raises(ComparisonError, match="got neither"):
        blm.compare(None, None)
    with pytest.raises(BayesLMMError, match="fit must be an LmerFit"):
        blm.shrinkage(posterior, fit)


def test_compare_rejects_a_fit_and_a_posterior_of_different_models(sleep):
    _, _, posterior = sleep
    data = blm.load_dataset("sleepstudy")
    other_formula = blm.lmer("Reaction ~ Days + (1 | Subject)", data)
    with pytest.raises(ComparisonError, match="different models: formulas differ"):
        blm.compare(other_formula, posterior)
    fewer_rows = blm.lmer(SLEEP, data.iloc[:170])
    with pytest.raises(ComparisonError, match="numbers of observations differ"):
        blm.compare(fewer_rows, posterior)
    other_y = data.assign(Reaction=data["Reaction"] + 1.0)
    with pytest.raises(BayesLMMError, match="responses differ"):
        blm.shrinkage(blm.lmer(SLEEP, other_y), posterior)


# --------------------------------------------------------------------------------------
# shrinkage
# --------------------------------------------------------------------------------------


def _per_subject_ols(data: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for subject, g in data.groupby("Subject", observed=True):
        X = np.column_stack([np.ones(len(g)), g["Days"].to_numpy(float)])
        out[str(subject)] = np.linalg.lstsq(X, g["Reaction"].to_numpy(float), rcond=None)[0]
    return out


def test_shrinkage_columns_match_independent_computations(sleep):
    _, fit, posterior = sleep
    data = blm.load_dataset("sleepstudy")
    table = blm.shrinkage(fit, posterior)
    assert table.index.names == ["factor", "level", "term"]
    assert len(table) == 36
    assert list(table.columns) == [
        "n",
        "no_pooling",
        "complete_pooling",
        "reml",
        "posterior_mean",
        "eti89_lb",
        "eti89_ub",
        "shrinkage_reml",
        "shrinkage_posterior",
    ]
    wide = table.loc["Subject"]
    coef = fit.coef["Subject"]
    for term in ("(Intercept)", "Days"):
        col = wide.xs(term, level="term")
        # REML partial pooling is the fit's coef, exactly
        assert col["reml"].tolist() == coef[term].tolist()
        assert list(col.index) == list(coef.index)
    ols = _per_subject_ols(data)
    nopool = wide["no_pooling"].unstack("term")[["(Intercept)", "Days"]]
    np.testing.assert_allclose(nopool.to_numpy(), np.array([ols[s] for s in nopool.index]))
    pooled = np.linalg.lstsq(
        np.column_stack([np.ones(len(data)), data["Days"]]), data["Reaction"], rcond=None
    )[0]
    cp = wide["complete_pooling"].unstack("term")[["(Intercept)", "Days"]]
    np.testing.assert_allclose(cp.to_numpy(), np.tile(pooled, (18, 1)))
    assert (wide["n"] == 10).all()
    # posterior mean of β + b per subject
    beta = _fixef_draws(posterior)
    b = posterior.draws["ranef_Subject"].transpose("chain", "draw", "Subject", ...).to_numpy()
    post = (beta[:, :, None, :] + b).mean(axis=(0, 1))
    pm_ = wide["posterior_mean"].unstack("term")[["(Intercept)", "Days"]]
    np.testing.assert_allclose(pm_.to_numpy(), post, rtol=1e-10)
    assert (wide["eti89_lb"] < wide["posterior_mean"]).all()
    assert (wide["posterior_mean"] < wide["eti89_ub"]).all()
    # the shrinkage fraction, 1 - (partial - β) / (no pooling - β)
    beta_hat = np.tile(fit.fixef[["(Intercept)", "Days"]].to_numpy(float), 18)
    frac = 1 - (wide["reml"] - beta_hat) / (wide["no_pooling"] - beta_hat)
    np.testing.assert_allclose(wide["shrinkage_reml"], frac, rtol=1e-12)
    beta_post = np.tile(beta.mean(axis=(0, 1)), 18)
    frac = 1 - (wide["posterior_mean"] - beta_post) / (wide["no_pooling"] - beta_post)
    np.testing.assert_allclose(wide["shrinkage_posterior"], frac, rtol=1e-10)


def test_partial_pooling_is_closer_to_the_population_in_mahalanobis_metric(sleep):
    _, fit, _ = sleep
    table = blm.shrinkage(fit, None).loc["Subject"]
    vc = fit.varcorr
    sd = vc["sdcor"].iloc[:2].to_numpy(float)
    rho = float(vc["sdcor"].iloc[2])
    sigma_b = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    prec = np.linalg.inv(sigma_b)
    beta = fit.fixef[["(Intercept)", "Days"]].to_numpy(float)

    def dist(col: str) -> np.ndarray:
        d = table[col].unstack("term")[["(Intercept)", "Days"]].to_numpy() - beta
        return np.sqrt(np.einsum("li,ij,lj->l", d, prec, d))

    partial, nopool = dist("reml"), dist("no_pooling")
    assert len(partial) == 18
    assert np.all(partial < nopool)


def test_shrinkage_no_pooling_is_nan_where_not_estimable():
    # Mahr's extra subjects: one with a single observation, one with two; and one
    # observed on a single day (its slope is aliased with the intercept)
    data = blm.load_dataset("sleepstudy")
    extra = pd.DataFrame(
        {
            "Reaction": [286.0, 245.0, 295.0, 250.0, 260.0, 270.0],
            "Days": [0.0, 0.0, 5.0, 3.0, 3.0, 3.0],
            "Subject": ["374", "373", "373", "375", "375", "375"],
        }
    )
    data = pd.concat([data.astype({"Subject": str}), extra], ignore_index=True)
    fit = blm.lmer(SLEEP, data)
    table = blm.shrinkage(fit, None).loc["Subject"]
    nopool = table["no_pooling"].unstack("term")
    assert nopool.loc["374", "(Intercept)"] == pytest.approx(286.0)
    assert np.isnan(nopool.loc["374", "Days"])
    assert nopool.loc["373"].tolist() == pytest.approx([245.0, 10.0])
    assert nopool.loc["375", "(Intercept)"] == pytest.approx(260.0)
    assert np.isnan(nopool.loc["375", "Days"])
    assert table["n"].unstack("term").loc[["374", "373", "375"], "Days"].tolist() == [1, 2, 3]
    assert np.isnan(table.loc[("374", "Days"), "shrinkage_reml"])
    # partial pooling is defined for every subject
    assert table["reml"].notna().all()


def test_shrinkage_of_iris_fits_the_full_fixed_model_per_species():
    data = blm.load_dataset("iris")
    formula = "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)"
    fit = blm.lmer(formula, data)
    table = blm.shrinkage(fit, None, factor="Species")
    assert list(table.index.get_level_values("term").unique()) == ["(Intercept)", "Sepal.Length"]
    for species, g in data.groupby("Species", observed=True):
        X = np.column_stack([np.ones(len(g)), g["Sepal.Width"], g["Sepal.Length"]])
        own = np.linalg.lstsq(X, g["Petal.Width"].to_numpy(float), rcond=None)[0]
        row = table.loc[("Species", str(species))]
        np.testing.assert_allclose(row["no_pooling"], own[[0, 2]], rtol=1e-10)
        assert (
            row["reml"].tolist() == fit.coef["Species"].loc[str(species), list(row.index)].tolist()
        )
    with pytest.raises(ComparisonError, match="unknown grouping factor 'Subject'"):
        blm.shrinkage(fit, None, factor="Subject")

"""Posterior exploration (issue 15): predictions on new data for both results, R².

Exact checks run on the session posterior of sleepstudy and on synthetic posteriors (random
draws in the public vocabulary, tests/synthetic.py); REML's prediction variances are checked
against Henderson's mixed-model equations, Nakagawa's R² against its formula on lme4's
estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from synthetic import public_only, synthetic_posterior

import bayeslmm as blm
from bayeslmm import names
from bayeslmm.errors import BayesLMMError, DataError

DAYS = np.arange(10.0)


def _frame(subject: str, days: np.ndarray = DAYS) -> pd.DataFrame:
    return pd.DataFrame({"Days": days, "Subject": subject})


@pytest.fixture(scope="module")
def synthetic(sleep_model) -> blm.Posterior:
    return synthetic_posterior(sleep_model, chains=2, draws=2000, seed=5)


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------


def test_an_observed_subjects_mean_is_the_posterior_mean_of_its_coefficient_line(
    sleep_posterior,
):
    pred = sleep_posterior.predict(_frame("308"))
    coef = sleep_posterior.coef["Subject"]["mean"].loc["308"]
    np.testing.assert_allclose(pred["mean"], coef["(Intercept)"] + coef["Days"] * DAYS, rtol=1e-10)
    lb, ub = sleep_posterior.ci_columns
    assert list(pred.columns) == ["mean", "sd", lb, ub]
    assert (pred[lb] < pred["mean"]).all() and (pred["mean"] < pred[ub]).all()


def test_a_new_subjects_new_interval_is_wider_than_its_observed_one(sleep_posterior):
    lb, ub = sleep_posterior.ci_columns
    observed = sleep_posterior.predict(_frame("new"), "observed")
    new = sleep_posterior.predict(_frame("new"), "new", seed=1)
    population = sleep_posterior.predict(_frame("new"), "none")
    pd.testing.assert_frame_equal(observed, population)  # an unseen level: the population
    assert ((new[ub] - new[lb]) > 1.5 * (observed[ub] - observed[lb])).all()
    np.testing.assert_allclose(new["mean"], observed["mean"], atol=3 * new["sd"].max() / 20)


@pytest.mark.parametrize("group_effects", ["observed", "new", "none"])
def test_response_intervals_are_wider_than_mean_intervals(sleep_posterior, group_effects):
    lb, ub = sleep_posterior.ci_columns
    new = pd.concat([_frame("308"), _frame("new")], ignore_index=True)
    mean = sleep_posterior.predict(new, group_effects, "mean", seed=2)
    response = sleep_posterior.predict(new, group_effects, "response", seed=2)
    assert ((response[ub] - response[lb]) > (mean[ub] - mean[lb])).all()
    assert (response["sd"] > mean["sd"]).all()


def test_reml_intervals_order_as_the_posteriors(sleep_fit):
    lb, ub = names.ci_columns("eti", 0.89)
    new = pd.concat([_frame("308"), _frame("new")], ignore_index=True)
    width = {}
    for ge in ("observed", "new", "none"):
        for kind in ("mean", "response"):
            table = sleep_fit.predict(new, ge, kind, summary=True)
            width[ge, kind] = (table[ub] - table[lb]).to_numpy()
    assert (width["new", "mean"] > width["none", "mean"]).all()
    for ge in ("observed", "new", "none"):
        assert (width[ge, "response"] > width[ge, "mean"]).all()
    np.testing.assert_allclose(width["observed", "mean"][10:], width["none", "mean"][10:])


# --------------------------------------------------------------------------------------
# Posterior predictions: the draws
# --------------------------------------------------------------------------------------


def test_draws_have_chain_draw_obs_dims_and_the_newdata_index(sleep_posterior):
    new = _frame("308").set_index(pd.Index(list("abcdefghij"), name="row"))
    draws = sleep_posterior.predict(new, summary=False)
    assert draws.dims == ("chain", "draw", "obs")
    assert draws.shape == (2, 400, 10)
    assert list(draws.coords["obs"].values) == list("abcdefghij")
    table = sleep_posterior.predict(new)
    assert list(table.index) == list("abcdefghij")
    np.testing.assert_allclose(table["mean"], draws.mean(("chain", "draw")), rtol=1e-12)
    assert list(sleep_posterior.with_ci(0.5, "hdi").predict(new).columns[2:]) == [
        "hdi50_lb",
        "hdi50_ub",
    ]


def test_draws_in_sample_are_the_linear_predictor(sleep_posterior):
    eta = sleep_posterior.predict(summary=False).to_numpy()
    coef = sleep_posterior.coef_draws("Subject").to_numpy()  # chain, draw, level, term
    codes = sleep_posterior.design.terms[0].codes
    days = sleep_posterior.design.X[:, 1]
    expected = coef[:, :, codes, 0] + coef[:, :, codes, 1] * days
    np.testing.assert_allclose(eta, expected, rtol=1e-10)


def test_none_is_the_population_line_per_draw(sleep_posterior):
    draws = sleep_posterior.predict(_frame("308"), "none", summary=False).to_numpy()
    beta = sleep_posterior.draws("fixef").to_numpy()
    np.testing.assert_allclose(draws, beta[..., :1] + beta[..., 1:] * DAYS, rtol=1e-10)


def test_new_effects_are_shared_within_a_level_and_reproducible(sleep_posterior):
    new = pd.DataFrame({"Days": [0.0, 0.0, 0.0], "Subject": ["a", "a", "b"]})
    one = sleep_posterior.predict(new, "new", seed=7, summary=False).to_numpy()
    two = sleep_posterior.predict(new, "new", seed=7, summary=False).to_numpy()
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[..., 0], one[..., 1])
    assert not np.allclose(one[..., 0], one[..., 2])


def test_new_and_response_spread_as_the_model_says(sleep_model, synthetic):
    """Var(new − none) = E_s[z Σ_s zᵀ]; Var(response − mean) = E_s[σ_s²] (4,000 draws)."""
    new = _frame("zz", np.array([0.0, 5.0, 9.0]))
    none = synthetic.predict(new, "none", summary=False).to_numpy().reshape(-1, 3)
    fresh = synthetic.predict(new, "new", seed=3, summary=False).to_numpy().reshape(-1, 3)
    sd = synthetic.draws("sd_Subject").to_numpy().reshape(-1, 2)
    rho = synthetic.draws("corr_Subject").to_numpy().reshape(-1, 2, 2)[:, 0, 1]
    z = np.column_stack([np.ones(3), new["Days"]])
    var = (
        sd[:, :1] ** 2 * z[:, 0] ** 2
        + sd[:, 1:] ** 2 * z[:, 1] ** 2
        + 2 * (rho * sd[:, 0] * sd[:, 1])[:, None] * z[:, 0] * z[:, 1]
    )
    np.testing.assert_allclose((fresh - none).var(axis=0), var.mean(axis=0), rtol=0.08)
    mean = synthetic.predict(new, summary=False).to_numpy().reshape(-1, 3)
    resp = synthetic.predict(new, kind="response", seed=4, summary=False).to_numpy()
    sigma2 = (synthetic.draws("sigma").to_numpy() ** 2).mean()
    np.testing.assert_allclose((resp.reshape(-1, 3) - mean).var(axis=0), sigma2, rtol=0.08)


def test_group_effects_by_factor_in_a_crossed_design():
    data = blm.load_dataset("penicillin")
    post = synthetic_posterior(blm.Model("diameter ~ 1 + (1|plate) + (1|sample)", data), 1, 200)
    new = data.iloc[:3]
    both = post.predict(new, summary=False).to_numpy()
    plate_new = post.predict(new, {"plate": "new"}, seed=1, summary=False).to_numpy()
    no_plate = post.predict(new, {"plate": "none"}, summary=False).to_numpy()
    b_plate = post.ranef_draws("plate").sel(plate=new["plate"].astype(str).to_numpy())
    np.testing.assert_allclose(both - no_plate, b_plate.to_numpy()[..., 0], rtol=1e-10)
    assert not np.allclose(plate_new, both)
    with pytest.raises(BayesLMMError, match=r"unknown grouping factors \['plates'\]"):
        post.predict(new, {"plates": "new"})


def test_every_parameterisation_and_the_public_vocabulary_alone_predict_alike(
    sleep_model, sleep_posterior
):
    """Only fixef, sd, corr, sigma and ranef are read: dropping every sampler variable (as
    a marginalised sampler's Posterior has none) changes nothing."""
    alone = public_only(sleep_posterior)
    new = pd.concat([_frame("308"), _frame("new")], ignore_index=True)
    for ge in ("observed", "new", "none"):
        pd.testing.assert_frame_equal(
            alone.predict(new, ge, "response", seed=3),
            sleep_posterior.predict(new, ge, "response", seed=3),
        )
    pd.testing.assert_frame_equal(alone.r2(), sleep_posterior.r2())
    for parameterization in ("centered", "noncentered"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = sleep_model.sample(
                draws=100, tune=100, chains=1, seed=3, cores=1, parameterization=parameterization
            )
        pred = post.predict(_frame("308"))
        coef = post.coef["Subject"]["mean"].loc["308"]
        expected = coef["(Intercept)"] + coef["Days"] * DAYS
        np.testing.assert_allclose(pred["mean"], expected, rtol=1e-10)


# --------------------------------------------------------------------------------------
# newdata is checked like data, one implementation for both results
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def factor_model() -> blm.Model:
    rng = np.random.default_rng(3)
    n = 60
    data = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "f": np.tile(["a", "b", "c"], n // 3),
            "g": np.repeat([f"g{i}" for i in range(6)], n // 6),
        }
    )
    data["y"] = data["x"] + (data["f"] == "b") + rng.normal(size=n) + data["g"].str[1].astype(int)
    return blm.Model("y ~ x + f + (1 | g)", data)


@pytest.fixture(scope="module")
def factor_results(factor_model) -> dict:
    return {"reml": factor_model.fit_reml(), "posterior": synthetic_posterior(factor_model, 1, 20)}


@pytest.mark.parametrize("which", ["reml", "posterior"])
@pytest.mark.parametrize(
    ("newdata", "message"),
    [
        (pd.DataFrame({"x": [0.0], "g": ["g1"]}), "newdata lacks column 'f' used by the formula"),
        (pd.DataFrame({"y": [0.0]}), "newdata lacks columns 'x', 'f', 'g'"),
        (
            pd.DataFrame({"x": [0.0, np.nan], "f": ["a", "b"], "g": ["g1", "g1"]}),
            r"newdata has missing values in 'x' \(row 1\)",
        ),
        (
            pd.DataFrame({"x": [0.0], "f": ["a"], "g": [None]}),
            r"newdata has missing values in 'g' \(row 0\)",
        ),
        (
            pd.DataFrame({"x": [0.0, 1.0], "f": ["a", "z"], "g": ["g1", "g1"]}),
            "newdata's column 'f' has level 'z' that the data do not have",
        ),
        (
            pd.DataFrame({"x": ["1"], "f": ["a"], "g": ["g1"]}),
            "newdata's column 'x' is not numeric",
        ),
        (pd.DataFrame({"x": [], "f": [], "g": []}), "newdata has no rows"),
        ([1.0], "newdata must be a pandas DataFrame, got list"),
    ],
)
def test_newdata_is_checked_like_data(factor_results, which, newdata, message):
    with pytest.raises(DataError, match=message):
        factor_results[which].predict(newdata)


@pytest.mark.parametrize("which", ["reml", "posterior"])
def test_bad_prediction_options(factor_results, which):
    result = factor_results[which]
    new = pd.DataFrame({"x": [0.0], "f": ["a"], "g": ["g1"]})
    with pytest.raises(BayesLMMError, match="group_effects must be 'observed', 'new' or 'none'"):
        result.predict(new, "all")
    with pytest.raises(BayesLMMError, match="kind must be 'mean' or 'response'"):
        result.predict(new, kind="epred")


def test_both_results_share_the_new_rows(factor_results):
    """A subset of the levels, extra columns, new group levels: the fixed part is the same
    linear predictor for the REML fit (at β̂) and every draw."""
    fit, post = factor_results["reml"], factor_results["posterior"]
    new = pd.DataFrame({"x": [0.5, -1.0], "f": ["c", "c"], "g": ["g2", "new"], "extra": [1, 2]})
    beta = fit.fixef
    expected = beta["(Intercept)"] + beta["x"] * new["x"] + beta["fc"]
    np.testing.assert_allclose(fit.predict(new, "none"), expected, rtol=1e-12)
    draws = post.predict(new, "none", summary=False).to_numpy()
    fixef = post.draws("fixef")
    by_draw = fixef.sel(fixef__term="(Intercept)") + fixef.sel(fixef__term="fc")
    np.testing.assert_allclose(draws[..., 1], by_draw - fixef.sel(fixef__term="x"), rtol=1e-10)


def test_data_dependent_transforms_keep_the_datas_state(sleepstudy):
    """center(Days) in newdata subtracts the data's mean day (4.5), not newdata's."""
    fit = blm.lmer("Reaction ~ center(Days) + (1 | Subject)", sleepstudy)
    beta = fit.fixef.to_numpy()
    new = pd.DataFrame({"Days": [0.0], "Subject": ["new"]})
    assert fit.predict(new)[0] == pytest.approx(beta[0] - 4.5 * beta[1], rel=1e-12)


def test_reml_predict_keeps_lme4s_shape_and_spellings(sleep_fit):
    new = _frame("308")
    point = sleep_fit.predict(new)
    assert isinstance(point, np.ndarray) and point.shape == (10,)
    np.testing.assert_array_equal(
        sleep_fit.predict(new, random_effects=False), sleep_fit.predict(new, "none")
    )
    np.testing.assert_array_equal(sleep_fit.predict(new, False), sleep_fit.predict(new, "none"))
    np.testing.assert_array_equal(
        sleep_fit.predict(new, summary=True)["mean"].to_numpy(), sleep_fit.predict(new)
    )
    table = sleep_fit.predict(new, summary=True, ci_prob=0.95)
    assert list(table.columns) == ["mean", "sd", "eti95_lb", "eti95_ub"]
    np.testing.assert_allclose(table["eti95_ub"] - table["mean"], 1.959964 * table["sd"], rtol=1e-6)


# --------------------------------------------------------------------------------------
# REML prediction variances against Henderson's mixed-model equations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["ss_slope", "ss_uncorr", "penicillin", "iris_seed"])
def test_reml_observed_variance_is_hendersons_prediction_error_variance(reference_fits, case):
    """Var([x z] (β̂, b̂ − b)) = σ̂² [x z] C⁻¹ [x z]ᵀ with C = [[XᵀX, XᵀZ], [ZᵀX, ZᵀZ + σ̂²G⁻¹]]
    (Henderson 1975), G = blkdiag(I ⊗ Σ̂_t): the b-scale equations, not bayeslmm's Λ-scale
    ones; and "new" adds z Σ̂ zᵀ to x V xᵀ."""
    _, fit = reference_fits[case]
    design = fit.design
    data = design.frame.iloc[::7]
    Z = design.Z().toarray()
    G_blocks = []
    vc = fit.varcorr
    for t in design.terms:
        rows = vc[vc.grp == t.group]
        S = np.zeros((t.nc, t.nc))
        for _, r in rows.iterrows():
            i = t.cnames.index(r.var1)
            j = i if pd.isna(r.var2) else t.cnames.index(r.var2)
            S[i, j] = S[j, i] = r.vcov
        G_blocks.append(np.kron(np.eye(t.nl), S))
    G = np.zeros((design.q, design.q))
    start = 0
    for block in G_blocks:
        k = block.shape[0]
        G[start : start + k, start : start + k] = block
        start += k
    X = design.X
    C = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + fit.sigma**2 * np.linalg.inv(G)]])
    M = np.hstack([X[::7], Z[::7]])
    expected = fit.sigma**2 * np.einsum("ij,jk,ik->i", M, np.linalg.inv(C), M)
    table = fit.predict(data, summary=True)
    np.testing.assert_allclose(table["sd"] ** 2, expected, rtol=1e-6)
    new = fit.predict(data, "new", summary=True)
    pop = fit.predict(data, "none", summary=True)
    zsz = np.einsum("ij,jk,ik->i", Z[::7], G, Z[::7])  # one level per term per row
    np.testing.assert_allclose(new["sd"] ** 2, pop["sd"] ** 2 + zsz, rtol=1e-8)
    vx = np.einsum("ij,jk,ik->i", X[::7], fit.vcov.to_numpy(), X[::7])
    np.testing.assert_allclose(pop["sd"] ** 2, vx, rtol=1e-10)
    resp = fit.predict(data, "observed", "response", summary=True)
    np.testing.assert_allclose(resp["sd"] ** 2, table["sd"] ** 2 + fit.sigma**2, rtol=1e-10)


# --------------------------------------------------------------------------------------
# R²
# --------------------------------------------------------------------------------------


def _nakagawa(ref: dict, data: pd.DataFrame) -> tuple[float, float]:
    """performance::r2_nakagawa's formula on lme4's estimates (one grouping term)."""
    model = blm.Model(ref["formula"], data)
    X = model.design.X
    beta = np.array([ref["fixef"][c] for c in model.design.fixef_names])
    var_f = np.var(X @ beta, ddof=1)
    (vc,) = ref["varcorr"]
    sd, corr = np.array(vc["sd"]), np.array(vc["corr"])
    Sigma = sd[:, None] * corr * sd[None, :]
    Zt = model.design.terms[0].X
    var_r = np.mean(np.einsum("ik,kl,il->i", Zt, Sigma, Zt))
    total = var_f + var_r + ref["sigma"] ** 2
    return var_f / total, (var_f + var_r) / total


@pytest.mark.parametrize("case", ["ss_int", "ss_slope"])
def test_nakagawa_r2_is_its_formula_on_lme4s_estimates(reference_fits, sleepstudy, case):
    ref, fit = reference_fits[case]
    marginal, conditional = _nakagawa(ref, sleepstudy)
    r2 = fit.r2()
    assert list(r2.index) == ["marginal", "conditional"]
    # bayeslmm's estimates are lme4's to ~1e-6 in θ: R² agrees to 1e-5
    assert r2["marginal"] == pytest.approx(marginal, rel=1e-5)
    assert r2["conditional"] == pytest.approx(conditional, rel=1e-5)


def test_nakagawa_r2_closed_forms(reference_fits):
    """Random intercept: τ²/(σ_f² + τ² + σ²); for (Days | Subject) the values to three
    digits, 0.279 and 0.799 (a regression check; the formula test above is the one against
    lme4's estimates)."""
    ref, fit = reference_fits["ss_int"]
    tau2, sigma2 = ref["varcorr"][0]["var"][0], ref["sigma"] ** 2
    var_f = ref["fixef"]["Days"] ** 2 * np.var(np.tile(np.arange(10.0), 18), ddof=1)
    assert fit.r2()["marginal"] == pytest.approx(var_f / (var_f + tau2 + sigma2), rel=1e-6)
    r2 = reference_fits["ss_slope"][1].r2()
    assert (round(r2["marginal"], 3), round(r2["conditional"], 3)) == (0.279, 0.799)


def test_bayes_r2_is_the_direct_computation_on_the_draws(sleep_posterior):
    design = sleep_posterior.design
    coef = sleep_posterior.coef_draws("Subject").to_numpy().reshape(-1, 18, 2)
    beta = sleep_posterior.draws("fixef").to_numpy().reshape(-1, 2)
    codes, days, y = design.terms[0].codes, design.X[:, 1], design.y
    out = {}
    for name, fitted in (
        ("marginal", beta[:, :1] + beta[:, 1:] * days),
        ("conditional", coef[:, codes, 0] + coef[:, codes, 1] * days),
    ):
        v_fit, v_res = fitted.var(axis=1), (y - fitted).var(axis=1)
        out[name] = v_fit / (v_fit + v_res)
    draws = sleep_posterior.r2(summary=False)
    assert draws.dims == ("chain", "draw", "r2")
    for name, values in out.items():
        np.testing.assert_allclose(draws.sel(r2=name).to_numpy().ravel(), values, rtol=1e-10)
    table = sleep_posterior.r2()
    assert list(table.index) == ["marginal", "conditional"]
    assert table.loc["conditional", "mean"] == pytest.approx(out["conditional"].mean(), rel=1e-10)
    assert 0 < table.loc["marginal", "mean"] < table.loc["conditional", "mean"] < 1

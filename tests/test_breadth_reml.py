"""Weights, offsets and a residual SD per group on the REML path, against lme4 and nlme
(``tests/reference/breadth/lme4_breadth.json``), and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm import DataError, FormulaError, Model, load_dataset
from bayeslmm.reml.fit import LmerFit

REF_DIR = Path(__file__).parent / "reference" / "breadth"
REF = json.loads((REF_DIR / "lme4_breadth.json").read_text())


def orthodont() -> pd.DataFrame:
    """nlme's Orthodont, Sex with R's level order (Male first)."""
    d = pd.read_csv(REF_DIR / "orthodont.csv")
    d["Sex"] = pd.Categorical(d["Sex"], categories=["Male", "Female"])
    return d


def _close(actual: pd.Series, expected: dict, rtol: float) -> None:
    values = actual[list(expected)].to_numpy()
    np.testing.assert_allclose(values, list(expected.values()), rtol=rtol)


def test_weighted_sleepstudy_equals_lme4():
    ref = REF["weights_sleepstudy"]
    d = load_dataset("sleepstudy")
    fit = Model(ref["formula"], d, weights=1 + d["Days"] % 3).fit_reml()
    _close(fit.fixef, ref["fixef"], 1e-4)
    _close(fit.fixef_se, ref["fixef_se"], 1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    np.testing.assert_allclose(fit.theta.to_numpy(), ref["theta"], rtol=1e-3, atol=1e-5)
    assert fit.reml_criterion == pytest.approx(ref["criterion"], abs=1e-6)


def test_weights_as_column_and_unit_weights():
    d = load_dataset("sleepstudy").assign(w=lambda f: 1.0 + f["Days"] % 3)
    by_name = Model("Reaction ~ Days + (Days | Subject)", d, weights="w").fit_reml()
    by_array = Model("Reaction ~ Days + (Days | Subject)", d, weights=d["w"].to_numpy()).fit_reml()
    np.testing.assert_allclose(by_name.fixef, by_array.fixef, rtol=1e-10)
    plain = Model("Reaction ~ Days + (Days | Subject)", d).fit_reml()
    ones = Model("Reaction ~ Days + (Days | Subject)", d, weights=np.ones(len(d))).fit_reml()
    np.testing.assert_allclose(ones.fixef, plain.fixef, rtol=1e-10)
    assert ones.reml_criterion == pytest.approx(plain.reml_criterion, abs=1e-8)


def test_weights_scale_criterion_by_log_weights():
    """Doubling every weight is the same model (Var ε_i = σ²/w_i): σ doubles in variance,
    θ (relative to σ) shrinks by √2, β and the criterion (with lme4's −Σ log w) stay."""
    d = load_dataset("sleepstudy")
    w = 1.0 + d["Days"] % 3
    a = Model("Reaction ~ Days + (Days | Subject)", d, weights=w).fit_reml()
    b = Model("Reaction ~ Days + (Days | Subject)", d, weights=2 * w).fit_reml()
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-7)
    assert b.sigma == pytest.approx(a.sigma * np.sqrt(2), rel=1e-6)
    np.testing.assert_allclose(b.theta, a.theta / np.sqrt(2), rtol=1e-4, atol=1e-6)
    assert b.reml_criterion == pytest.approx(a.reml_criterion, abs=1e-6)


def test_offset_sleepstudy_equals_lme4_and_joins_predictions():
    ref = REF["offset_sleepstudy"]
    d = load_dataset("sleepstudy")
    fit = Model(ref["formula"], d).fit_reml()
    _close(fit.fixef, ref["fixef"], 1e-4)
    _close(fit.fixef_se, ref["fixef_se"], 1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert fit.reml_criterion == pytest.approx(ref["criterion"], abs=1e-6)
    # offset= (array or column) is the same model; predictions include the offset
    arg = Model("Reaction ~ Days + (1 | Subject)", d, offset=0.5 * d["Days"]).fit_reml()
    np.testing.assert_allclose(arg.fixef, fit.fixef, rtol=1e-10)
    eta = fit.design.X @ fit.fixef.to_numpy() + 0.5 * d["Days"].to_numpy()
    np.testing.assert_allclose(fit.predict(group_effects="none"), eta, rtol=1e-12)
    new = d.iloc[[0, 11]].assign(Days=[3.0, 7.0])
    np.testing.assert_allclose(
        fit.predict(new, group_effects="none"),
        fit.fixef.iloc[0] + (fit.fixef.iloc[1] + 0.5) * np.array([3.0, 7.0]),
        rtol=1e-12,
    )
    col = Model("Reaction ~ Days + (1 | Subject)", d.assign(o=0.5 * d["Days"]), offset="o")
    np.testing.assert_allclose(
        col.fit_reml().predict(new.assign(o=[1.5, 3.5])), fit.predict(new), rtol=1e-12
    )


def test_varident_orthodont_equals_nlme():
    ref = REF["varident_orthodont"]
    fit = Model(ref["formula"], orthodont(), sigma="~ 1 | Sex").fit_reml()
    _close(fit.fixef, ref["fixef"], 1e-4)
    _close(fit.fixef_se, ref["fixef_se"], 1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    _close(fit.sigma_ratio, ref["sigma_ratio"], 1e-3)
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-5)
    assert list(fit.sigma_by_group.index) == ["Male", "Female"]


def test_varident_recovers_simulated_ratios():
    """Five residual groups: the ratios follow the simulated errors' own SD ratios."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(100), 20)
    k = np.tile(np.array(["a", "b", "c", "d", "e"]), 400)
    sd = pd.Series({"a": 1.0, "b": 2.0, "c": 0.5, "d": 1.0, "e": 3.0})
    e = sd[k].to_numpy() * rng.normal(size=2000)
    y = rng.normal(size=100)[g] + e
    fit = Model("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g, "k": k}), sigma="~1|k").fit_reml()
    empirical = pd.Series(e).groupby(k).std()
    np.testing.assert_allclose(fit.sigma_ratio, empirical / empirical["a"], rtol=0.03)
    np.testing.assert_allclose(fit.sigma_ratio, sd, rtol=0.15)


def test_saved_fit_keeps_weights_offset_and_ratios(tmp_path):
    d = load_dataset("sleepstudy")
    fit = Model(
        "Reaction ~ Days + (1 | Subject) + offset(Days)", d, weights=1 + d["Days"] % 2
    ).fit_reml()
    fit.save(tmp_path / "f.json")
    back = LmerFit.from_dict(json.loads((tmp_path / "f.json").read_text()))
    np.testing.assert_allclose(back.predict(d.iloc[:4]), fit.predict(d.iloc[:4]), rtol=1e-12)
    np.testing.assert_allclose(back.design.weights, fit.design.weights)
    ortho = Model("distance ~ age + (1 | Subject)", orthodont(), sigma="~ 1 | Sex").fit_reml()
    ortho.save(tmp_path / "o.json")
    back = LmerFit.from_dict(json.loads((tmp_path / "o.json").read_text()))
    np.testing.assert_allclose(back.sigma_ratio, ortho.sigma_ratio)
    np.testing.assert_allclose(
        back.confint("wald").to_numpy(), ortho.confint("wald").to_numpy(), equal_nan=True
    )


# -- bad input ---------------------------------------------------------------------------
FORMULA = "Reaction ~ Days + (1 | Subject)"


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        (np.ones(10), "one value per row of data (180), got 10"),
        (["a"] * 180, "must be numeric"),
        ("nope", "'nope' is not a column"),
        (np.where(np.arange(180) == 7, -1.0, 1.0), "row 7 has weight <= 0"),
        (np.where(np.arange(180) == 3, 0.0, 1.0), "row 3 has weight <= 0"),
        (np.zeros(180), "all zero"),
        (np.where(np.arange(180) == 5, np.nan, 1.0), "missing or infinite values (row 5)"),
    ],
)
def test_bad_weights_name_the_rows(weights, words):
    with pytest.raises(DataError, match=None) as err:
        Model(FORMULA, load_dataset("sleepstudy"), weights=weights)
    assert words in str(err.value)


def test_bad_offsets_and_sigma():
    d = load_dataset("sleepstudy")
    with pytest.raises(DataError, match=r"offset has missing or infinite values \(row 2\)"):
        Model(FORMULA, d, offset=np.where(np.arange(180) == 2, np.nan, 0.0))
    with pytest.raises(DataError, match=r"column 'o' of offset\(o\) has missing values \(row 4"):
        Model(FORMULA + " + offset(o)", d.assign(o=np.where(np.arange(180) == 4, np.nan, 1)))
    with pytest.raises(DataError, match="column 'Sex' is not a column"):
        Model(FORMULA, d, sigma="~ 1 | Sex")
    with pytest.raises(DataError, match="column 'k' has a single level"):
        Model(FORMULA, d.assign(k="a"), sigma="~ 1 | k")
    with pytest.raises(FormulaError, match="sigma must be a string"):
        Model(FORMULA, d, sigma=3)  # type: ignore[arg-type]
    fit = Model("Reaction ~ Days + (1 | Subject)", d, offset=np.zeros(180)).fit_reml()
    with pytest.raises(DataError, match="offset= as a column name"):
        fit.predict(d.iloc[:2])


# -- the teaching and reporting layers --------------------------------------------------
def test_varident_in_varcorr_compare_summary_explain():
    model = Model("distance ~ age + Sex + (age | Subject)", orthodont(), sigma="~ 1 | Sex")
    fit = model.fit_reml()
    vc = fit.varcorr
    res = vc[vc["grp"] == "Residual"]
    assert res["sdcor"].tolist() == pytest.approx(
        [fit.sigma, fit.sigma * fit.sigma_ratio["Female"]]
    )
    table = blm_compare(fit)
    assert table.loc["sigma[Female]", "reml"] == pytest.approx(fit.sigma_by_group["Female"])
    text = fit.summary()
    assert "Formula: ~1 | Sex" in text and f"{fit.sigma_ratio['Female']:.7f}" in text
    story = str(model.explain(fit))
    assert "Normal(mu[i], sigma * delta[Sex[i]])" in story
    assert f"delta[Female] = {fit.sigma_ratio['Female']:.4g}" in story


def test_simulate_uses_group_sigma_weights_and_offset():
    """Simulated residuals (y − mu) have SD σ·ratio per group, σ/sqrt(w) per weight."""
    model = Model("distance ~ age + Sex + (age | Subject)", orthodont(), sigma="~ 1 | Sex")
    fit = model.fit_reml()
    sim = model.simulate(fit, seed=1, nsim=400, return_components=True)
    sex = model.design.residual.codes
    sd = [sim.noise[:, sex == k].std() / fit.sigma for k in (0, 1)]
    np.testing.assert_allclose(sd, fit.sigma_ratio.to_numpy(), rtol=0.02)
    with pytest.raises(blm.ParameterError, match="residual SD per level of 'Sex'"):
        model.simulate({"fixef": fit.fixef, "varcorr": fit.varcorr})
    d = load_dataset("sleepstudy")
    w = 1.0 + d["Days"] % 3
    m2 = Model("Reaction ~ Days + (1 | Subject) + offset(3 * Days)", d, weights=w)
    f2 = m2.fit_reml()
    sim = m2.simulate(f2, seed=2, nsim=300, return_components=True)
    observed = m2.simulate(f2, seed=2, group_effects="observed", return_components=True)
    np.testing.assert_allclose(observed.mu[0], f2.fitted, rtol=1e-12)  # offset included
    ratio = sim.noise[:, (w == 1).to_numpy()].std() / sim.noise[:, (w == 3).to_numpy()].std()
    assert ratio == pytest.approx(np.sqrt(3), rel=0.03)
    assert "offset[i]" in str(m2.explain(f2)) and "sigma / sqrt(w[i])" in str(m2.explain(f2))
    assert "Offset: offset(3 * Days)" in f2.summary() and "Weights:" in f2.summary()


def blm_compare(fit):
    from bayeslmm import compare

    return compare(fit, None, reml_ci=None)


def test_reference_group_is_the_first_rows_as_in_nlme():
    """nlme orders varIdent's strata by first appearance: with Sex as plain strings the
    first row's level (Male) is still the reference; rows reversed, Female is, and the
    ratio and σ invert accordingly (the same model)."""
    d = pd.read_csv(REF_DIR / "orthodont.csv")  # Sex: strings, "Female" sorts first
    ref = REF["varident_orthodont"]
    fit = Model(ref["formula"], d, sigma="~ 1 | Sex").fit_reml()
    assert list(fit.sigma_ratio.index) == ["Male", "Female"]
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    back = Model(ref["formula"], d.iloc[::-1], sigma="~ 1 | Sex").fit_reml()
    assert list(back.sigma_ratio.index) == ["Female", "Male"]
    assert back.sigma == pytest.approx(ref["sigma"] * ref["sigma_ratio"]["Female"], rel=1e-3)
    assert back.sigma_ratio["Male"] == pytest.approx(1 / ref["sigma_ratio"]["Female"], rel=1e-3)
    assert back.loglik == pytest.approx(ref["logLik"], abs=1e-5)


def test_prediction_summaries_use_the_working_design_and_each_rows_sigma():
    d = load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    plain = Model(f, d).fit_reml().predict(summary=True, kind="response")
    ones = Model(f, d, weights=np.ones(len(d))).fit_reml().predict(summary=True, kind="response")
    np.testing.assert_allclose(ones.to_numpy(), plain.to_numpy(), rtol=1e-9)
    model = Model("distance ~ age + Sex + (age | Subject)", orthodont(), sigma="~ 1 | Sex")
    fit = model.fit_reml()
    mean = fit.predict(summary=True)
    resp = fit.predict(summary=True, kind="response")
    sex = orthodont()["Sex"].astype(str).to_numpy()
    expected = np.sqrt(mean["sd"] ** 2 + (fit.sigma * fit.sigma_ratio[sex].to_numpy()) ** 2)
    np.testing.assert_allclose(resp["sd"], expected, rtol=1e-12)
    new = orthodont().iloc[[0, 70]]
    resp_new = fit.predict(new, summary=True, kind="response")
    np.testing.assert_allclose(resp_new["sd"], resp["sd"].iloc[[0, 70]], rtol=1e-12)
    other = Model("distance ~ age + (age | Subject)", orthodont(), sigma="~ 1 | Sex").fit_reml()
    with pytest.raises(DataError, match="a response prediction needs each row's residual"):
        other.predict(new.drop(columns="Sex"), summary=True, kind="response")


def test_a_formula_without_random_effects_is_a_formula_error():
    with pytest.raises(FormulaError, match="no random-effect term"):
        Model("Reaction ~ Days", load_dataset("sleepstudy"))

"""R syntax in formulas: ``^`` as a power inside calls, ordered factors coded by contr.poly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm.design import new_rows
from bayeslmm.formula import to_formulaic

TEMPS = [175, 185, 195, 205, 215, 225]


def _same_fit(a: blm.LmerFit, b: blm.LmerFit) -> None:
    """Two fits of the same model, column for column (names aside)."""
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(a.theta.to_numpy(), b.theta.to_numpy(), rtol=1e-8, atol=1e-10)
    assert a.sigma == pytest.approx(b.sigma, rel=1e-8)
    crit = "reml_criterion" if a.reml else "deviance"
    assert getattr(a, crit) == pytest.approx(getattr(b, crit), rel=1e-8)


def _contr_poly(n: int) -> np.ndarray:
    """R's contr.poly(n): make.poly's QR of the centred powers of 1..n, first column off."""
    x = np.arange(1, n + 1) - (n + 1) / 2
    X = x[:, None] ** np.arange(n)
    Q, R = np.linalg.qr(X)
    raw = Q * np.diag(R)
    return (raw / np.linalg.norm(raw, axis=0))[:, 1:]


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return blm.load_dataset("sleepstudy").assign(Days2=lambda d: d["Days"] ** 2)


@pytest.fixture(scope="module")
def cake() -> pd.DataFrame:
    """lme4::cake's layout: recipe x replicate x ordered temperature (6 levels)."""
    rng = np.random.default_rng(11)
    grid = pd.MultiIndex.from_product([list("ABC"), range(15), TEMPS]).to_frame(index=False)
    grid.columns = ["recipe", "replicate", "temp"]
    rep = rng.normal(0, 4, 15)[grid["replicate"]]
    slope = rng.normal(0, 0.1, 15)[grid["replicate"]]
    angle = 30 + (grid["recipe"] == "B") + (0.15 + slope) * (grid["temp"] - 200) + rep
    return grid.assign(
        temperature=pd.Categorical(grid["temp"], categories=TEMPS, ordered=True),
        replicate=grid["replicate"].astype(str),
        angle=angle + rng.normal(0, 3, len(grid)),
    )


# --------------------------------------------------------------------------------------
# ^ inside calls
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "code", "name"),
    [
        ("I(age^2)", "I(age**2)", "I(age^2)"),
        ("I(age ^ 2)", "I(age ** 2)", "I(age^2)"),
        ("I((x - 1)^2)", "I((x - 1)**2)", "I((x - 1)^2)"),
        ("I((2*x)^2)", "I((2*x)**2)", "I((2 * x)^2)"),
        ("log(x^2+1):f", "log(x**2+1):f", "log(x^2 + 1)"),
        ("I(x^-1/2.0)", "I(x**-1/2.0)", "I(x^-1/2)"),
        ("(a + b)^2", "(a + b)^2", None),  # the formula's power: interactions
    ],
)
def test_power_inside_calls_is_arithmetic(r, code, name):
    translated = to_formulaic(r)
    assert translated.code == code
    assert list(translated.names.values()) == ([name] if name else [])


def test_squared_term_fits_as_precomputed_column(sleep):
    for reml in (True, False):
        fit = blm.Model("Reaction ~ Days + I(Days^2) + (Days | Subject)", sleep).fit_reml(reml)
        ref = blm.Model("Reaction ~ Days + Days2 + (Days | Subject)", sleep).fit_reml(reml)
        assert list(fit.fixef.index) == ["(Intercept)", "Days", "I(Days^2)"]
        _same_fit(fit, ref)


def test_squared_term_inside_a_bar(sleep):
    model = blm.Model("Reaction ~ Days + I(Days^2) + (Days + I(Days^2) | Subject)", sleep)
    ref = blm.Model("Reaction ~ Days + Days2 + (Days + Days2 | Subject)", sleep)
    (term,) = model.design.terms
    assert term.cnames == ("(Intercept)", "Days", "I(Days^2)")
    assert "Subject.I(Days^2).Days" in model.theta_names
    np.testing.assert_array_equal(term.X, ref.design.terms[0].X)
    _same_fit(model.fit_reml(), ref.fit_reml())
    split = blm.Model("Reaction ~ Days + (Days + I((Days - 1)^2) || Subject)", sleep)
    assert [t.cnames for t in split.design.terms] == [
        ("(Intercept)",),
        ("Days",),
        ("I((Days - 1)^2)",),
    ]
    np.testing.assert_array_equal(split.design.terms[2].X[:, 0], (sleep["Days"] - 1) ** 2)


def test_formula_level_power_is_interactions(sleep):
    data = sleep.assign(z=np.sin(sleep["Days"]))
    model = blm.Model("Reaction ~ (Days + z + I(Days^2))^2 + (1 | Subject)", data)
    assert model.fixef_names == [
        "(Intercept)",
        "Days",
        "z",
        "I(Days^2)",
        "Days:z",
        "Days:I(Days^2)",
        "z:I(Days^2)",
    ]
    X = model.design.X
    np.testing.assert_allclose(X[:, 6], data["z"] * data["Days"] ** 2)


def test_python_power_keeps_its_name(sleep):
    assert blm.Model("Reaction ~ I(Days**2) + (1 | Subject)", sleep).fixef_names[1] == (
        "I(Days ** 2)"
    )


def test_squared_term_predicts_on_new_rows(sleep):
    model = blm.Model("Reaction ~ Days + I(Days^2) + (I(Days^2) | Subject)", sleep)
    rows = new_rows(model.design, sleep.iloc[:7].drop(columns="Reaction"))
    np.testing.assert_array_equal(rows.X, model.design.X[:7])
    np.testing.assert_array_equal(rows.terms[0].X, model.design.terms[0].X[:7])


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("Reaction ~ I(Days^) + (1 | Subject)", r"I\(Days\^\)"),
        ("Reaction ~ Days + (I(Days^2 +) | Subject)", r"I\(Days\^2 \+\)"),
    ],
)
def test_bad_power_names_the_term(sleep, formula, match):
    with pytest.raises(blm.FormulaError, match=match):
        blm.Model(formula, sleep)


# --------------------------------------------------------------------------------------
# Ordered factors: contr.poly
# --------------------------------------------------------------------------------------


def _level_rows(model: blm.Model, data: pd.DataFrame, factor: str, cols: list[str]) -> np.ndarray:
    """The columns ``cols`` of X at the first row of each level of ``factor``."""
    first = [int(np.flatnonzero(data[factor].to_numpy() == lev)[0]) for lev in TEMPS]
    idx = [model.fixef_names.index(c) for c in cols]
    return model.design.X[np.ix_(first, idx)]


def test_contr_poly_closed_form():
    np.testing.assert_allclose(
        _contr_poly(3),
        [[-0.7071068, 0.4082483], [0, -0.8164966], [0.7071068, 0.4082483]],
        atol=1e-7,
    )
    np.testing.assert_allclose(
        _contr_poly(4).T,
        [
            [-0.6708204, -0.2236068, 0.2236068, 0.6708204],
            [0.5, -0.5, -0.5, 0.5],
            [-0.2236068, 0.6708204, -0.6708204, 0.2236068],
        ],
        atol=1e-7,
    )


@pytest.mark.parametrize("n", [2, 3, 4, 6, 9])
def test_ordered_factor_gets_contr_poly(n):
    levels = [f"l{i}" for i in range(n)]
    data = pd.DataFrame(
        {
            "o": pd.Categorical(levels * 4, categories=levels, ordered=True),
            "g": np.repeat(np.arange(4), n),
            "y": np.random.default_rng(n).normal(size=4 * n),
        }
    )
    model = blm.Model("y ~ o + (1 | g)", data)
    poly = [".L", ".Q", ".C"] + [f"^{d}" for d in range(4, n)]
    assert model.fixef_names == ["(Intercept)"] + [f"o{s}" for s in poly[: n - 1]]
    np.testing.assert_allclose(model.design.X[:n, 1:], _contr_poly(n), rtol=0, atol=1e-13)


def test_cake_names_follow_lme4(cake):
    model = blm.Model("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)
    poly = ["temperature.L", "temperature.Q", "temperature.C", "temperature^4", "temperature^5"]
    interactions = [f"recipe{r}:{p}" for p in poly for r in "BC"]
    assert model.fixef_names == ["(Intercept)", "recipeB", "recipeC", *poly, *interactions]
    np.testing.assert_allclose(
        _level_rows(model, cake, "temp", poly), _contr_poly(6), rtol=0, atol=1e-13
    )
    b = cake["recipe"].to_numpy() == "B"
    j = model.fixef_names.index("recipeB:temperature.Q")
    np.testing.assert_allclose(model.design.X[:, j], b * model.design.X[:, 4])


def test_unordered_factor_keeps_treatment_contrasts(cake):
    data = cake.assign(temperature=cake["temperature"].cat.as_unordered())
    model = blm.Model("angle ~ temperature + (1 | replicate)", data)
    assert model.fixef_names == ["(Intercept)"] + [f"temperature{t}" for t in TEMPS[1:]]


def test_ordered_factor_fits_as_explicit_poly_columns(cake):
    poly = pd.DataFrame(
        _contr_poly(6)[cake["temperature"].cat.codes], columns=["L", "Q", "C", "P4", "P5"]
    )
    explicit = pd.concat([cake, poly], axis=1)
    fit = blm.Model("angle ~ recipe + temperature + (1 | replicate)", cake).fit_reml()
    ref = blm.Model("angle ~ recipe + L + Q + C + P4 + P5 + (1 | replicate)", explicit).fit_reml()
    _same_fit(fit, ref)


def test_ordered_factor_in_a_bar_follows_r(cake):
    data = cake[cake["temp"] <= 195].assign(
        t3=lambda d: d["temperature"].cat.remove_unused_categories()
    )
    poly = _contr_poly(3)[data["t3"].cat.codes.to_numpy()]
    data = data.assign(L=poly[:, 0], Q=poly[:, 1])
    model = blm.Model("angle ~ t3 + (t3 | replicate)", data)
    ref = blm.Model("angle ~ L + Q + (L + Q | replicate)", data)
    assert model.design.terms[0].cnames == ("(Intercept)", "t3.L", "t3.Q")
    assert model.theta_names[1] == "replicate.t3.L.(Intercept)"
    _same_fit(model.fit_reml(), ref.fit_reml())
    # without an intercept R codes the first factor by indicators, ordered or not
    (term,) = blm.Model("angle ~ t3 + (0 + t3 | replicate)", data).design.terms
    assert term.cnames == ("t3175", "t3185", "t3195")
    np.testing.assert_array_equal(term.X, np.eye(3)[data["t3"].cat.codes])


def test_ordered_factor_predicts_on_new_rows(cake):
    model = blm.Model("angle ~ recipe * temperature + (temperature | replicate)", cake)
    new = cake.iloc[::37].drop(columns="angle")
    rows = new_rows(model.design, new.assign(temperature=new["temp"]))  # plain ints work too
    np.testing.assert_allclose(rows.X, model.design.X[::37], rtol=0, atol=1e-15)
    np.testing.assert_allclose(rows.terms[0].X, model.design.terms[0].X[::37], rtol=0, atol=1e-15)
    with pytest.raises(blm.DataError, match="temperature"):
        new_rows(model.design, new.assign(temperature=new["temp"] + 1))

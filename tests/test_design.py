"""The formula -> design compiler against lme4's names, orders and matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm.formula import Bar, parse_formula


def _model(ref: dict) -> blm.Model:
    return blm.Model(ref["formula"], blm.load_dataset(ref["dataset"]))


# -- every lme4 reference case ---------------------------------------------------------


def test_reference_spec_matches_lme4(reference):
    model = _model(reference)
    assert model.fixef_names == reference["fixef_names"]
    assert model.group_factors == list(reference["ngroups"])
    assert model.ngroups == reference["ngroups"]
    assert model.theta_names == reference["theta_names"]
    assert model.nobs == reference["nobs"]
    assert model.n_dropped == 0
    lower = [0.0 if v == 0 else -np.inf for v in reference["lower"]]
    np.testing.assert_array_equal(model.design.theta_lower, lower)
    for term in model.design.terms:
        assert list(term.levels) == reference["ranef"][term.factor]["levels"]


def test_reference_varcorr_groups(reference):
    groups = [t.group for t in _model(reference).design.terms]
    assert groups == [vc["group"] for vc in reference["varcorr"]]
    cnames = [list(t.cnames) for t in _model(reference).design.terms]
    assert cnames == [vc["terms"] for vc in reference["varcorr"]]


def test_reference_fitted_values_from_X_and_Z(reference):
    """lme4's fitted values are X β + Z b with its fixef and ranef: checks X, Z and b's layout."""
    design = _model(reference).design
    beta = np.array([reference["fixef"][name] for name in design.fixef_names])
    b = []
    for term in design.terms:
        ranef = reference["ranef"][term.factor]
        cols = [ranef["terms"].index(c) for c in term.cnames]
        values = np.asarray(ranef["values"], dtype=float)[:, cols]
        b.append(values.ravel())  # level-major: level 1's k values, then level 2's
    fitted = design.X @ beta + design.Z() @ np.concatenate(b)
    np.testing.assert_allclose(fitted[:10], reference["fitted_first10"], rtol=1e-10)


def test_sleepstudy_matrices():
    data = blm.load_dataset("sleepstudy")
    design = blm.Model("Reaction ~ Days + (Days | Subject)", data).design
    np.testing.assert_array_equal(design.X, np.column_stack([np.ones(180), data["Days"]]))
    np.testing.assert_array_equal(design.y, data["Reaction"])
    (term,) = design.terms
    assert term.cnames == ("(Intercept)", "Days")
    assert term.Z().shape == (180, 36)
    assert term.Z().nnz == 180 * 2
    assert list(np.bincount(term.codes)) == [10] * 18


# -- formula language --------------------------------------------------------------------


def test_parse_double_bar_nested_and_crossed():
    assert parse_formula("y ~ x + (x || g)").bars == (Bar("1", ("g",)), Bar("0 + x", ("g",)))
    assert parse_formula("y ~ (0 + x || g)").bars == (Bar("0 + x", ("g",)),)
    assert parse_formula("y ~ 1 + (1 | a/b)").bars == (Bar("1", ("b", "a")), Bar("1", ("a",)))
    assert parse_formula("y ~ (1 | a:b) + (1 | c)").bars == (Bar("1", ("a", "b")), Bar("1", ("c",)))
    parsed = parse_formula("y ~ x - 1 + (1 | g)")
    assert parsed.fixed == "x - 1"
    assert parse_formula("y ~ (1 | g)").fixed == "1"


@pytest.fixture
def toy() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.uniform(1, 2, size=n),
            "z": rng.normal(size=n),
            "recipe": rng.choice(["C", "A", "B"], size=n),
            "Machine": pd.Categorical(
                rng.choice(["B", "A", "C"], size=n), categories=["C", "B", "A"]
            ),
            "flag": np.tile([True, False], n // 2),
            "g": np.repeat([10, 9, 100, 1, 2, 3], n // 6),
            "h": np.tile(["u", "v", "w", "k"], n // 4),
        }
    )


def test_categorical_names_follow_lme4(toy):
    model = blm.Model("y ~ recipe * x + flag + Machine + (1 | g)", toy)
    assert model.fixef_names == [
        "(Intercept)",
        "recipeB",
        "recipeC",
        "x",
        "flagTRUE",
        "MachineB",
        "MachineA",
        "recipeB:x",
        "recipeC:x",
    ]


def test_no_intercept_and_transformations(toy):
    assert blm.Model("y ~ 0 + x + (1 | g)", toy).fixef_names == ["x"]
    assert blm.Model("y ~ x - 1 + (1 | g)", toy).fixef_names == ["x"]
    model = blm.Model("y ~ np.log(x) + I(x**2) + sqrt(x) + center(z) + C(g) + (1 | h)", toy)
    X = model.design.X
    names = model.fixef_names
    np.testing.assert_allclose(X[:, names.index("np.log(x)")], np.log(toy["x"]))
    np.testing.assert_allclose(X[:, names.index("sqrt(x)")], np.sqrt(toy["x"]))
    np.testing.assert_allclose(X[:, names.index("I(x ** 2)")], toy["x"] ** 2)
    np.testing.assert_allclose(X[:, names.index("center(z)")], toy["z"] - toy["z"].mean())
    assert [n for n in names if n.startswith("C(g)")] == [f"C(g){v}" for v in (2, 3, 9, 10, 100)]


def test_numeric_group_codes_sort_numerically(toy):
    (term,) = blm.Model("y ~ x + (1 | g)", toy).design.terms
    assert term.levels == ("1", "2", "3", "9", "10", "100")
    assert term.levels[term.codes[0]] == "10"


def test_categorical_inside_bar_and_several_terms(toy):
    model = blm.Model("y ~ x + (0 + Machine | h) + (1 | h) + (1 | g)", toy)
    # lme4 sorts by levels (g: 6 before h: 4) and puts tied terms in reverse formula order
    assert [t.group for t in model.design.terms] == ["g", "h", "h.1"]
    terms = {t.group: t for t in model.design.terms}
    assert terms["h.1"].cnames == ("MachineC", "MachineB", "MachineA")  # Categorical order kept
    np.testing.assert_array_equal(terms["h.1"].X.sum(axis=1), 1.0)
    assert terms["h"].cnames == ("(Intercept)",)
    assert model.theta_names == [
        "g.(Intercept)",
        "h.(Intercept)",
        "h.MachineC",
        "h.MachineB.MachineC",
        "h.MachineA.MachineC",
        "h.MachineB",
        "h.MachineA.MachineB",
        "h.MachineA",
    ]


def test_interaction_grouping_factor_levels(toy):
    model = blm.Model("y ~ x + (1 | h:recipe)", toy)
    (term,) = model.design.terms
    assert term.factor == "h:recipe"
    assert term.levels[:3] == ("k:A", "k:B", "k:C")  # first factor varies slowest
    assert term.nl == 12
    labels = np.array(term.levels)[term.codes]
    np.testing.assert_array_equal(labels, toy["h"] + ":" + toy["recipe"])


def test_dotted_column_names_and_backticks():
    iris = blm.load_dataset("iris")
    model = blm.Model("Petal.Width ~ `Sepal.Width` + Sepal.Length + (1 | Species)", iris)
    assert model.fixef_names == ["(Intercept)", "Sepal.Width", "Sepal.Length"]
    np.testing.assert_array_equal(model.design.y, iris["Petal.Width"])


# -- data handling and bad input ---------------------------------------------------------


def test_missing_values_dropped_counted_and_reported(toy):
    data = toy.copy()
    data.loc[[0, 5], "x"] = np.nan
    data.loc[7, "g"] = np.nan
    data["recipe"] = data["recipe"].astype(object)
    data.loc[9, "recipe"] = None  # unused column: its NA must not drop the row
    before = data.copy()
    with pytest.warns(blm.DataWarning, match=r"dropped 3 of 60 rows .*'x'.*'g'"):
        model = blm.Model("y ~ x + (1 | g)", data)
    assert (model.nobs, model.n_dropped) == (57, 3)
    pd.testing.assert_frame_equal(data, before)  # the caller's DataFrame is untouched


def test_dataframe_not_modified(toy):
    before = toy.copy()
    dtypes = toy.dtypes.copy()
    blm.Model("y ~ recipe + flag + (x | g) + (1 | h)", toy)
    pd.testing.assert_frame_equal(toy, before)
    pd.testing.assert_series_equal(toy.dtypes, dtypes)


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("y ~ x + (1 | g", "unbalanced parentheses"),
        ("y ~ x) + (1 | g)", "unbalanced parentheses"),
        ("y ~ x + ( | g)", "empty left side"),
        ("y ~ x + (1 | )", "empty grouping factor"),
        ("~ x + (1 | g)", "no response"),
        ("y x + (1 | g)", "exactly one '~'"),
        ("y ~ ", "no predictors"),
        ("y ~ x + 1 | g", "wrapped in parentheses"),
        ("y ~ x + (1 | g + h)", "invalid grouping factor"),
        ("y ~ x + ", "dangling"),
    ],
)
def test_malformed_formula(toy, formula, match):
    with pytest.raises(blm.FormulaError, match=match):
        blm.Model(formula, toy)


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("y ~ xx + (1 | g)", "'xx' in the fixed effects not found"),
        ("y ~ x + (zz | g)", r"'zz' in \(zz \| g\) not found"),
        ("y ~ x + (1 | gg)", "grouping factor 'gg'"),
        ("yy ~ x + (1 | g)", "'yy' in the response not found"),
        ("y ~ center(qq) + (1 | g)", "'qq' in the fixed effects not found"),
        ("recipe ~ x + (1 | g)", "response 'recipe' must be numeric"),
    ],
)
def test_bad_columns(toy, formula, match):
    with pytest.raises(blm.DataError, match=match):
        blm.Model(formula, toy)


def test_bad_data(toy):
    with pytest.raises(blm.DataError, match="no rows"):
        blm.Model("y ~ x + (1 | g)", toy.iloc[:0])
    with pytest.raises(blm.DataError, match="DataFrame"):
        blm.Model("y ~ x + (1 | g)", toy.to_dict())
    bad = toy.assign(x=toy["x"].where(toy.index != 3, np.inf))
    with pytest.raises(blm.DataError, match="column 'x' has infinite values"):
        blm.Model("y ~ x + (1 | g)", bad)
    with pytest.raises(blm.DataError, match="single level"):
        blm.Model("y ~ x + (1 | one)", toy.assign(one="a"))
    with pytest.raises(blm.DataError, match="60 levels for 60 observations"):
        blm.Model("y ~ x + (1 | row)", toy.assign(row=np.arange(60)))
    with pytest.raises(blm.DataError, match="unidentifiable"):
        blm.Model("y ~ x + (1 + x + z | row)", toy.assign(row=np.arange(60) // 2))
    with pytest.raises(blm.DataError, match="missing values"), warnings.catch_warnings():
        warnings.simplefilter("ignore", blm.DataWarning)
        blm.Model("y ~ x + (1 | g)", toy.assign(x=np.nan))


def test_errors_share_one_base_class():
    assert issubclass(blm.FormulaError, blm.BayesLMMError)
    assert issubclass(blm.DataError, blm.BayesLMMError)


def test_rank_deficient_fixed_effects_dropped(toy):
    with pytest.warns(blm.DataWarning, match=r"rank deficient so dropping 1 column: I\(2 \* x\)"):
        model = blm.Model("y ~ x + I(2*x) + (1 | g)", toy)
    assert model.fixef_names == ["(Intercept)", "x"]


def test_datasets():
    listing = blm.list_datasets()
    assert set(listing.index) == {"sleepstudy", "iris", "dyestuff", "penicillin", "pastes"}
    sleep = blm.load_dataset("sleepstudy")
    assert isinstance(sleep["Subject"].dtype, pd.CategoricalDtype)
    assert list(sleep["Subject"].cat.categories[:3]) == ["308", "309", "310"]
    assert sleep.shape == (180, 3)
    with pytest.raises(blm.DataError, match="unknown dataset 'nope'"):
        blm.load_dataset("nope")


@pytest.mark.parametrize("expr", ["1 + x", "x + z", "0 + x + z", "1", "z + x + x"])
def test_additive_fast_path_equals_formulaic(toy, expr):
    """The formulaic-free path for sums of numeric columns gives formulaic's matrix."""
    import formulaic

    from bayeslmm.design import _additive_numeric, _Aliases, _Columns

    alias = _Aliases(list(toy.columns))
    cols = _Columns(toy, list(toy.columns), alias)
    X, names = _additive_numeric(alias.encode(expr), cols, alias)
    reference = formulaic.model_matrix(alias.encode(expr), cols.work)
    np.testing.assert_array_equal(X, np.asarray(reference, dtype=float))
    assert names == [alias.decode(c).replace("Intercept", "(Intercept)") for c in reference.columns]


def test_dropped_rows_reported_in_summaries(toy):
    data = toy.assign(x=toy["x"].where(toy.index > 1))
    with pytest.warns(blm.DataWarning):
        model = blm.Model("y ~ x + (1 | g)", data)
    assert model.design.missing_note == ["(2 observations deleted due to missingness)"]
    summary = model.fit_reml().summary().splitlines()
    at = next(i for i, line in enumerate(summary) if line.startswith("Number of obs: 58"))
    assert summary[at + 1] == "(2 observations deleted due to missingness)"
    assert blm.Model("y ~ x + (1 | g)", toy).design.missing_note == []

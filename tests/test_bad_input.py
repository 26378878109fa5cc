"""Bad input anywhere in the API gives a clear package error, never a library traceback.

Every case asserts the :class:`~bayeslmm.BayesLMMError` subclass and the words of the
message that tell the user what to fix.  The formula grammar itself is covered by
``test_formula_properties.py`` and files that cannot be loaded by ``test_persistence.py``;
here: types, NA/inf, degenerate designs, sampler settings, priors, prediction,
simulation, comparison and the CLI.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import prior_posterior

import bayeslmm as blm
from bayeslmm import (
    BayesLMMError,
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    Model,
    ParameterError,
    PriorError,
    SamplingError,
    SingularFitWarning,
)
from bayeslmm.cli import main

FORMULA = "y ~ x + (1 | g)"


def _frame(ngroups: int = 8, nper: int = 5, seed: int = 1) -> pd.DataFrame:
    """y = 1 + 0.5 x + b_g + ε on ``ngroups`` x ``nper`` rows."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ngroups), nper)
    x = rng.standard_normal(len(g))
    y = 1 + 0.5 * x + rng.normal(0, 2, ngroups)[g] + rng.normal(0, 1, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def model(data) -> Model:
    return Model(FORMULA, data)


@pytest.fixture(scope="module")
def fit(model):
    return model.fit_reml()


@pytest.fixture(scope="module")
def fake_posterior(model):
    """A Posterior holding prior draws of the real PyMC model (no NUTS needed)."""
    return prior_posterior(model, draws=20, seed=5)


# --------------------------------------------------------------------------------------
# Model(formula, data, priors)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "make_data", "error", "message"),
    [
        (3, _frame, FormulaError, "formula must be a string, got int"),
        (None, _frame, FormulaError, "formula must be a string, got NoneType"),
        (FORMULA, lambda: _frame().to_dict("list"), DataError, "must be a pandas DataFrame"),
        (FORMULA, lambda: _frame().to_numpy(), DataError, "got ndarray"),
        (FORMULA, lambda: _frame().iloc[:0], DataError, "data has no rows"),
        ("y ~ z + (1 | g)", _frame, DataError, "column 'z'"),
        ("y ~ x + (1 | h)", _frame, DataError, "grouping factor 'h'"),
        ("y ~ x + (1 | g", _frame, FormulaError, "unbalanced parentheses"),
        (FORMULA, lambda: _frame().assign(y=lambda d: d.y.astype(str)), DataError, "numeric"),
        (FORMULA, lambda: _frame().assign(y=np.nan), DataError, "no rows left.*'y' has no"),
        (FORMULA, lambda: _frame().assign(x=np.nan), DataError, "column 'x' has no values"),
        (
            FORMULA,
            lambda: _frame().assign(
                x=lambda d: d.x.where(d.index % 2 == 0), y=lambda d: d.y.where(d.index % 2 == 1)
            ),
            DataError,
            "every row misses a value in 'y', 'x'",
        ),
        ("y ~ x + (1 | x)", _frame, DataError, "40 levels for 40 observations"),
        ("y ~ x + (1 | k)", lambda: _frame().assign(k="one"), DataError, "single level"),
    ],
)
@pytest.mark.filterwarnings("ignore::bayeslmm.DataWarning")
def test_model_rejects_bad_formula_or_data(formula, make_data, error, message):
    with pytest.raises(error, match=message):
        Model(formula, make_data())


@pytest.mark.parametrize("column", ["y", "x"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_an_error_naming_the_column(data, column, value):
    bad = data.copy()
    bad.loc[3, column] = value
    with pytest.raises(DataError, match=f"column '{column}' has infinite values"):
        Model(FORMULA, bad)


def test_rows_with_na_are_dropped_and_counted(data):
    bad = data.copy()
    bad.loc[[0, 7], "x"] = np.nan
    bad.loc[11, "y"] = None
    with pytest.warns(DataWarning, match=r"dropped 3 of 40 rows with missing values in 'y', 'x'"):
        model = Model(FORMULA, bad)
    assert (model.nobs, model.n_dropped) == (37, 3)
    assert np.isnan(bad["x"]).sum() == 2  # the caller's frame is untouched


def test_a_group_whose_rows_are_all_na_disappears(data):
    bad = data.copy()
    bad.loc[bad.g == "g3", "x"] = np.nan
    with pytest.warns(DataWarning, match="dropped 5 of 40 rows"):
        model = Model(FORMULA, bad)
    assert model.ngroups == {"g": 7}
    assert "g3" not in model.design.terms[0].levels
    fit = model.fit_reml()
    assert list(fit.ranef["g"].index) == [f"g{i}" for i in range(8) if i != 3]


def test_aliased_fixed_effects_are_dropped_by_name(data):
    aliased = data.assign(x2=2 * data.x, x3=data.x + 1)
    with pytest.warns(DataWarning, match="rank deficient so dropping 2 columns: x2, x3"):
        model = Model("y ~ x + x2 + x3 + (1 | g)", aliased)
    assert model.fixef_names == ["(Intercept)", "x"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        reference = Model(FORMULA, data).fit_reml()
    np.testing.assert_allclose(model.fit_reml().fixef, reference.fixef, rtol=1e-6)


def test_more_random_effects_than_observations():
    # 8 groups x (intercept, slope) = 16 random effects for 16 observations
    with pytest.raises(DataError, match="16 random effects for 16 observations"):
        Model("y ~ x + (1 + x | g)", _frame(nper=2))


@pytest.mark.parametrize("priors", [["sigma"], "sigma"])
def test_priors_that_are_not_a_dict(data, priors):
    with pytest.raises(PriorError, match="priors"):
        Model(FORMULA, data, priors=priors)


# --------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priors", "message"),
    [
        ({"sd_h": "HalfNormal(1)"}, r"unknown prior parameter 'sd_h'; valid: Intercept"),
        ({"fixef[z]": "Normal(0, 1)", "tau": 1}, r"parameters 'fixef\[z\]', 'tau'"),
        ({"corr_g": "LKJ(2)"}, "unknown prior parameter 'corr_g'"),  # one column: no corr
        ({"sigma": "Foo(1)"}, "'Foo' is not a PyMC distribution"),
        ({"sigma": "Normal(0, 1)"}, r"must be on \[0, inf\)"),
        ({"sigma": "HalfNormal(sigma=-1)"}, "invalid prior HalfNormal"),
        ({"sigma": 3}, "must be a Prior"),
        ({"sigma": "HalfNormal(("}, "cannot read the prior"),
        ({"Intercept": "LKJ(eta=1)"}, "LKJ is a prior for correlations"),
    ],
)
def test_bad_priors_raise_prior_error(data, priors, message):
    with pytest.raises(PriorError, match=message):
        _ = Model(FORMULA, data, priors=priors).priors


def test_an_unknown_prior_is_rejected_when_the_model_is_built():
    """Not at sampling time: Model() names the key and lists the valid ones (PyMC-free:
    tests/test_architecture.py checks that this path imports no PyMC)."""
    sleep = blm.load_dataset("sleepstudy")
    valid = (
        r"valid: Intercept, fixef\[Days\], sd_Subject\[\(Intercept\)\], sd_Subject\[Days\], "
        r"corr_Subject, sigma, fixef, sd_Subject$"
    )
    with pytest.raises(PriorError, match=r"unknown prior parameter 'Dayz'; " + valid):
        Model("Reaction ~ Days + (Days | Subject)", sleep, priors={"Dayz": "Normal(0, 1)"})


def test_unknown_prior_is_rejected_by_every_entry_point(model):
    with pytest.raises(PriorError, match="'sd_Subject'"):
        model.sample(priors={"sd_Subject": "HalfNormal(1)"})
    with pytest.raises(PriorError, match="'nope'"):
        model.pymc_model(priors={"nope": "Normal(0, 1)"})
    with pytest.raises(PriorError, match="'nope'"):
        model.sample_prior_predictive(priors={"nope": "Normal(0, 1)"})


# --------------------------------------------------------------------------------------
# Sampler settings (all rejected before anything is compiled)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"draws": "a"}, "draws must be an integer >= 1, got 'a'"),
        ({"draws": 0}, "draws must be an integer >= 1, got 0"),
        ({"draws": -5}, "draws must be an integer >= 1, got -5"),
        ({"draws": 1.5}, "draws must be an integer >= 1, got 1.5"),
        ({"draws": 10.5}, "draws must be an integer >= 1, got 10.5"),
        ({"draws": True}, "draws must be an integer >= 1, got True"),
        ({"chains": 0}, "chains must be an integer >= 1, got 0"),
        ({"chains": -1}, "chains must be an integer >= 1"),
        ({"chains": True}, "chains must be an integer >= 1, got True"),
        ({"tune": -1}, "tune must be an integer >= 0"),
        ({"tune": -5}, "tune must be an integer >= 0"),
        ({"cores": 0}, "cores must be an integer >= 1"),
        ({"target_accept": 1.5}, r"target_accept must be in \(0, 1\)"),
        ({"target_accept": 1.2}, r"target_accept must be in \(0, 1\)"),
        ({"target_accept": "high"}, r"target_accept must be in \(0, 1\)"),
        ({"nuts_sampler": "stan"}, "nuts_sampler must be one of"),
        ({"parameterization": "both"}, "parameterization must be one of 'auto', 'marginal'"),
        ({"nuts_sampler": "bayeslmm", "parameterization": "centered"}, "samples the marginal"),
        ({"max_treedepth": 0}, "max_treedepth must be an integer >= 1"),
        ({"step_scale": 0.3}, "takes no option 'step_scale'"),
        ({"random_seed": 1}, "pass seed= instead of 'random_seed'"),
    ],
)
def test_bad_sampler_settings(model, options, message):
    with pytest.raises(SamplingError, match=message):
        model.sample(**options)


def test_bad_prior_predictive_draws(model):
    with pytest.raises(SamplingError, match="draws must be an integer >= 1, got 0"):
        model.sample_prior_predictive(draws=0)


def test_sample_rejects_a_non_integer_seed(model):
    with pytest.raises(SamplingError, match="seed"):
        model.sample(draws=10, tune=10, chains=1, seed="a")


def test_fit_reml_rejects_a_non_bool(model):
    with pytest.raises(BayesLMMError, match="reml"):
        model.fit_reml(reml="no")


# --------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------


def test_predict_needs_a_frame_with_the_formula_columns(fit, data):
    with pytest.raises(DataError, match="newdata must be a pandas DataFrame, got list"):
        fit.predict([1.0, 2.0])
    with pytest.raises(DataError, match="newdata lacks column 'x' used by the formula"):
        fit.predict(data[["y", "g"]])
    with pytest.raises(DataError, match="newdata lacks columns 'x', 'g'"):
        fit.predict(pd.DataFrame({"y": [1.0]}))
    with pytest.raises(DataError, match=r"fixed-effect columns \['x'\]"):
        fit.predict(pd.DataFrame({"x": ["a"], "g": ["g1"]}))


def test_predict_na_rows_are_named_and_new_levels_get_the_population(fit):
    new = pd.DataFrame({"x": [0.0, np.nan, 1.0], "g": ["unseen", "g1", "g1"]})
    with pytest.raises(DataError, match=r"newdata has missing values in 'x' \(row 1\)"):
        fit.predict(new)
    pred = fit.predict(new.dropna())
    beta = fit.fixef.to_numpy()
    assert pred[0] == pytest.approx(beta[0])
    assert pred[1] == pytest.approx(beta.sum() + fit.ranef["g"].loc["g1", "(Intercept)"])


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------

GOOD = {"fixef": [1.0, 0.5], "sigma": 1.0, "sd": {"g": 0.7}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sigma": -1.0}, "sigma must be >= 0"),
        ({"sigma": np.inf}, "sigma"),
        ({"fixef": [np.nan, 0.5]}, "fixef must be finite"),
        ({"fixef": [1.0]}, r"fixef has shape \(1,\), the model has 2 fixed effects"),
        ({"fixef": {"(Intercept)": 1.0, "z": 1.0}}, r"unknown \['z'\]"),
        ({"sd": {"h": 1.0}}, "unknown group 'h'"),
        ({"sd": {"g": -0.1}}, r"sd\['g'\]"),
        ({"sd": {"g": [1.0, 2.0]}}, r"sd\['g'\] has 2 values"),
        ({"corr": {"g": 0.5}}, "names no single correlated term"),
        ({"foo": 1}, "unknown parameters key 'foo'"),
    ],
)
def test_simulate_rejects_bad_parameters(model, change, message):
    with pytest.raises(ParameterError, match=message):
        model.simulate({**GOOD, **change})


def test_simulate_rejects_missing_parameters(model):
    with pytest.raises(ParameterError, match="lack the random-effect SDs 'sd' of g"):
        model.simulate({"fixef": [1.0, 0.5], "sigma": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nsim": 0}, "nsim must be a positive integer, got 0"),
        ({"nsim": "a"}, "nsim must be a positive integer, got 'a'"),
        ({"nsim": 2.0}, "nsim must be a positive integer"),
        ({"group_effects": "old"}, "group_effects must be 'new' or 'observed'"),
    ],
)
def test_simulate_rejects_bad_options(model, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        model.simulate(GOOD, **kwargs)


def test_simulate_rejects_bad_sources(model, data, fake_posterior):
    with pytest.raises(ParameterError, match=r"source must be a REML fit, .* got str"):
        model.simulate("fit")
    with pytest.raises(ParameterError, match="no observed groups' effects"):
        model.simulate(None, group_effects="observed")
    other = Model("y ~ 1 + (1 | g)", data)
    with pytest.raises(ParameterError, match="of another model"):
        other.simulate(model.fit_reml())
    with pytest.raises(ParameterError, match="the Posterior is of another model"):
        other.simulate(fake_posterior)


def test_simulate_rejects_a_bad_seed(model):
    with pytest.raises(ParameterError, match="seed"):
        model.simulate(GOOD, seed="a")


# --------------------------------------------------------------------------------------
# compare / shrinkage
# --------------------------------------------------------------------------------------


def test_compare_rejects_wrong_types(fit, fake_posterior):
    with pytest.raises(BayesLMMError, match="fit must be an LmerFit"):
        blm.compare(fake_posterior, None)
    with pytest.raises(BayesLMMError, match="posterior must be a Posterior"):
        blm.compare(None, fit)
    with pytest.raises(BayesLMMError, match="got neither"):
        blm.shrinkage(None, None)


def test_compare_rejects_mismatched_models(data, fit, fake_posterior):
    assert len(blm.compare(fit, fake_posterior)) == 4  # the matched pair works
    other_formula = Model("y ~ 1 + (1 | g)", data).fit_reml()
    with pytest.raises(BayesLMMError, match="formulas differ"):
        blm.compare(other_formula, fake_posterior)
    other_y = Model(FORMULA, data.assign(y=data.y + 1)).fit_reml()
    with pytest.raises(BayesLMMError, match="responses differ"):
        blm.compare(other_y, fake_posterior)
    fewer = Model(FORMULA, data.iloc[:30]).fit_reml()
    with pytest.raises(BayesLMMError, match="numbers of observations differ"):
        blm.shrinkage(fewer, fake_posterior)
    with pytest.raises(BayesLMMError, match=r"ci_prob must be in \(0, 1\)"):
        blm.compare(fit, fake_posterior, ci_prob=1.5)


# --------------------------------------------------------------------------------------
# CLI: exit code 2, one line "bayeslmm: error: ..." on stderr
# --------------------------------------------------------------------------------------


def _csv(tmp_path, frame: pd.DataFrame) -> str:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("formula", "make_data", "message"),
    [
        (FORMULA, lambda: _frame().assign(x=lambda d: d.x.where(d.index != 2, np.inf)), "inf"),
        (FORMULA, lambda: _frame().assign(y=np.nan), "no rows left"),
        ("y ~ x + (1 + x | g)", lambda: _frame(nper=2), "16 random effects"),
        ("y ~ x + (1 | grp)", _frame, "grouping factor 'grp'"),
        ("y ~ x + (1 | g))", _frame, "unbalanced"),
    ],
)
def test_cli_bad_data_is_one_error_line(tmp_path, capsys, formula, make_data, message):
    argv = ["fit", formula, "--data", _csv(tmp_path, make_data()), "--method", "reml"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("bayeslmm: error:")]
    assert len(errors) == 1 and message in errors[0]
    # anything else is a one-line warning (e.g. the NA rows dropped before nothing was left)
    assert all(line.startswith("bayeslmm: warning:") for line in lines if line not in errors)


def test_cli_unreadable_files(tmp_path, capsys):
    text = tmp_path / "data.txt"
    text.write_text("y,x,g\n1,2,a\n")
    assert main(["fit", FORMULA, "--data", str(text)]) == 2
    assert "must be .csv or .parquet" in capsys.readouterr().err
    broken = tmp_path / "data.parquet"
    broken.write_text("not parquet")
    assert main(["explain", FORMULA, "--data", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayeslmm: error: cannot read") and len(err.splitlines()) == 1


def test_cli_na_rows_are_dropped_not_fatal(tmp_path, capsys):
    frame = _frame().assign(x=lambda d: d.x.where(d.g != "g3"))
    argv = ["fit", FORMULA, "--data", _csv(tmp_path, frame), "--method", "reml"]
    assert main(argv) == 0
    assert "Number of obs: 35, groups:  g, 7" in capsys.readouterr().out


@pytest.mark.parametrize("option", [["--draws", "a"], ["--chains", "0"], ["--tune", "-3"]])
def test_cli_bad_numbers_exit_2_without_traceback(capsys, option):
    assert main(["fit", FORMULA, "--dataset", "sleepstudy", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayeslmm: error: argument ")
    assert "expected a positive integer" in err and len(err.splitlines()) == 1


def test_collinear_random_effect_columns_warn_and_stay_finite():
    """x2 = 2x + 1 inside (1 + x + x2 | g): a warning names the column; REML is singular;
    the marginal posterior has no NaN and no divergence (Σ's unseen directions follow the
    prior)."""
    rng = np.random.default_rng(0)
    g = rng.integers(0, 20, 200)
    x = rng.normal(size=200)
    data = pd.DataFrame(
        {"g": g.astype(str), "x": x, "x2": 2 * x + 1, "y": x + rng.normal(size=20)[g]}
    )
    data["y"] += rng.normal(size=200)
    with pytest.warns(
        DataWarning,
        match=r"columns of random-effect term \(1 \+ x \+ x2 \| g\) are collinear: x2 is a "
        r"linear combination of \(Intercept\), x",
    ):
        model = blm.Model("y ~ x + (1 + x + x2 | g)", data)
    with pytest.warns(SingularFitWarning):
        model.fit_reml()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = model.sample(draws=200, tune=200, chains=2, seed=1, progressbar=False)
    assert post.diagnostics.divergences == 0
    for v in post.draws.data_vars.values():
        assert np.isfinite(v.to_numpy()).all()

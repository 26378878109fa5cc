"""Property-based tests: any formula the grammar accepts compiles to consistent dimensions;
anything else raises a package error, never a raw numpy/formulaic traceback."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayeslmm as blm


def _data(n: int, seed: int, na: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x1": rng.normal(size=n),
            "x2": rng.uniform(1, 3, size=n),
            "f": rng.choice(["lo", "mid", "hi"], size=n),
            "g": rng.integers(0, 6, size=n),
            "h": pd.Categorical(rng.choice(list("abcd"), size=n)),
        }
    )
    if na:
        df.loc[rng.choice(n, size=3, replace=False), "x1"] = np.nan
    return df


fixed_terms = st.lists(
    st.sampled_from(["x1", "x2", "f", "x1:f", "x1*x2", "np.log(x2)", "I(x1**2)"]),
    max_size=3,
    unique=True,
)
bar_lhs = st.sampled_from(["1", "x1", "1 + x1", "0 + x1", "0 + f", "x2", "x1 + x2"])
bar_groups = st.sampled_from(["g", "h", "g:h", "h/g"])
bars = st.lists(
    st.tuples(bar_lhs, st.sampled_from(["|", "||"]), bar_groups), min_size=1, max_size=3
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fixed=fixed_terms,
    intercept=st.sampled_from(["", "0 + ", "1 + "]),
    bars=bars,
    n=st.integers(40, 120),
    seed=st.integers(0, 10_000),
    na=st.booleans(),
)
def test_grammar_compiles_to_consistent_design(fixed, intercept, bars, n, seed, na):
    data = _data(n, seed, na)
    rhs = intercept + (" + ".join(fixed) if fixed else "1")
    formula = "y ~ " + rhs + "".join(f" + ({lhs} {bar} {g})" for lhs, bar, g in bars)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", blm.DataWarning)
            model = blm.Model(formula, data)
    except blm.DataError as exc:  # e.g. more random effects than observations
        assert "observations" in str(exc) or "level" in str(exc)
        return
    design = model.design
    n_used = n - (3 if na and "x1" in formula else 0)  # only NAs in used columns drop rows
    assert design.nobs == n_used == len(design.frame)
    assert design.X.shape == (n_used, len(model.fixef_names))
    assert np.linalg.matrix_rank(design.X) == design.X.shape[1]
    assert design.Z().shape == (n_used, design.q)
    assert len(model.theta_names) == len(design.theta_lower) == sum(t.ntheta for t in design.terms)
    nl = [t.nl for t in design.terms]
    for term in design.terms:
        assert term.X.shape == (n_used, term.nc)
        assert term.codes.min() >= 0 and term.codes.max() == term.nl - 1
        assert len(np.unique(term.codes)) == term.nl  # only observed levels
    if any(b > a for a, b in itertools.pairwise(nl)):
        raise AssertionError(f"terms not in lme4 order: {nl}")


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("yx12fgh ~+-*/:|()01.")),
        min_size=1,
        max_size=30,
    )
)
def test_any_string_compiles_or_raises_package_error(formula):
    data = _data(60, 0, False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = blm.Model(formula, data)
    except blm.BayesLMMError as exc:
        assert str(exc)  # a message for the user, not an empty error
    else:  # what compiles is a usable design
        design = model.design
        assert design.X.shape == (design.nobs, len(design.fixef_names))
        assert design.Z().shape == (design.nobs, design.q) and design.terms

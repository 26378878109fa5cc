"""One vocabulary: docs/vocabulary.md against the code, point estimates in the REML shapes,
and interval labels that agree everywhere."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from conftest import prior_posterior
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bayeslmm as blm
from bayeslmm import names
from bayeslmm.design import Design

DOC = Path(__file__).parent.parent / "docs" / "vocabulary.md"
SHARED = {
    "fixef",
    "ranef",
    "coef",
    "varcorr",
    "sigma",
    "theta",
    "conditional_sd",
    "predict",
    "summary",
}
TYPES = {
    "Series": pd.Series,
    "DataFrame": pd.DataFrame,
    "float": float,
    "str": str,
    "ndarray": np.ndarray,
    "dict[str, DataFrame]": dict,
}
CELL = re.compile(r"^(?P<method>method → )?`(?P<type>[^`]+)`(?: \((?P<shape>[^)]*)\))?")


def _table() -> dict[str, tuple[str, str]]:
    """name -> (LmerFit cell, Posterior cell) of the table whose header names both."""
    lines = DOC.read_text().splitlines()
    start = lines.index("| name | `LmerFit` | `Posterior` |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


TABLE = _table()


def _symbols(design: Design, factor: str | None = None) -> dict[str, int]:
    out = {
        "p": design.p,
        "n": design.nobs,
        "t": len(design.theta_names),
        "r": len(design.parameters) - design.p,
    }
    if factor is not None:
        columns = design.factor_columns(factor)
        out["ℓ"] = design.factor_terms(factor)[0].nl
        out["k"] = len(columns)
        out["c"] = design.p + len([c for c in columns if c not in design.fixef_names])
    return out


def _shape(spec: str, symbols: dict[str, int]) -> tuple[int, ...]:
    """ "ℓ·k × 7" -> (ℓ·k, 7) with the symbols' values."""
    dims = []
    for dim in spec.split("×"):
        size = 1
        for factor in dim.strip().split("·"):
            size *= int(factor) if factor.isdigit() else symbols[factor]
        dims.append(size)
    return tuple(dims)


def _check(result: object, name: str, cell: str, design: Design) -> None:
    """``result.name`` is what the table cell says: absent, or of its type and shape."""
    if cell.startswith("—"):
        assert not hasattr(result, name), f"{name} is documented as absent"
        return
    spec = CELL.match(cell)
    assert spec, f"unreadable cell for {name}: {cell}"
    value = getattr(result, name)
    if spec["method"]:
        value = value()
    assert isinstance(value, TYPES[spec["type"]]), (name, type(value))
    if spec["type"].startswith("dict"):
        assert list(value) == design.group_factors, name
        for factor, table in value.items():
            assert isinstance(table, pd.DataFrame), (name, factor)
            assert table.shape == _shape(spec["shape"], _symbols(design, factor)), (name, factor)
    elif spec["shape"] is not None:
        assert np.shape(value) == _shape(spec["shape"], _symbols(design)), name


def test_the_table_covers_the_shared_names():
    assert set(TABLE) == SHARED


@pytest.mark.parametrize("name", sorted(SHARED))
def test_lmer_fits_answer_as_documented(reference_fits, name):
    for _, fit in reference_fits.values():
        _check(fit, name, TABLE[name][0], fit.design)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_a_posterior_answers_as_documented(sleep_posterior, name):
    _check(sleep_posterior, name, TABLE[name][1], sleep_posterior.design)


@pytest.fixture(scope="module")
def uncorrelated(sleepstudy) -> blm.Posterior:
    """Prior draws of ``(Days || Subject)``: two terms on one factor (no sampler stats)."""
    return prior_posterior(blm.Model("Reaction ~ Days + (Days || Subject)", sleepstudy), 20, 1)


@pytest.mark.parametrize("name", sorted(SHARED - {"summary"}))
def test_a_posterior_with_two_terms_on_one_factor_answers_as_documented(uncorrelated, name):
    _check(uncorrelated, name, TABLE[name][1], uncorrelated.design)


# --------------------------------------------------------------------------------------
# The REML shapes from a posterior
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stat", ["mean", "median"])
def test_point_estimates_have_the_reml_fits_shapes(sleep_fit, sleep_posterior, stat):
    point = sleep_posterior.point_estimate(stat)
    assert point.stat == stat
    pd.testing.assert_index_equal(point.fixef.index, sleep_fit.fixef.index)
    assert isinstance(point.sigma, float)
    vc, reml_vc = point.varcorr, sleep_fit.varcorr
    assert list(vc.columns) == list(reml_vc.columns)
    keys = ["grp", "var1", "var2"]
    pd.testing.assert_frame_equal(vc[keys], reml_vc[keys])
    for factor in sleep_fit.design.group_factors:
        for mine, reml in ((point.ranef, sleep_fit.ranef), (point.coef, sleep_fit.coef)):
            pd.testing.assert_index_equal(mine[factor].index, reml[factor].index)
            pd.testing.assert_index_equal(mine[factor].columns, reml[factor].columns)


def test_the_mean_point_estimate_is_the_posterior_mean(sleep_posterior):
    post, point = sleep_posterior, sleep_posterior.point_estimate()
    np.testing.assert_allclose(point.fixef, post.fixef["mean"], rtol=1e-12)
    np.testing.assert_allclose(point.varcorr["sdcor"], post.varcorr["sdcor"], rtol=1e-12)
    np.testing.assert_allclose(point.varcorr["sdcor"], post.varcorr["mean"], rtol=1e-12)
    assert point.sigma == pytest.approx(post.sigma["mean"], rel=1e-12)
    ranef = post.ranef["Subject"]["mean"].unstack("term")[["(Intercept)", "Days"]]
    np.testing.assert_allclose(point.ranef["Subject"], ranef.loc[point.ranef["Subject"].index])
    # vcov from the point's own SDs and correlation, as REML's varcorr has it
    sd = point.varcorr["sdcor"].iloc[:2].to_numpy()
    rho = point.varcorr["sdcor"].iloc[2]
    np.testing.assert_allclose(point.varcorr["vcov"].iloc[:3], [*sd**2, rho * sd[0] * sd[1]])
    assert point.varcorr["vcov"].iloc[3] == pytest.approx(point.sigma**2)


def test_simulate_takes_a_posteriors_varcorr(sleep_model, sleep_posterior):
    """The issue's example: fixef values and a posterior's varcorr table."""
    post = sleep_posterior
    point = post.point_estimate()
    a = sleep_model.simulate({"fixef": post.fixef["mean"], "varcorr": post.varcorr}, seed=3)
    b = sleep_model.simulate({"fixef": point.fixef, "varcorr": point.varcorr}, seed=3)
    pd.testing.assert_frame_equal(a, b)
    observed = {"fixef": point.fixef, "varcorr": point.varcorr, "ranef": point.ranef}
    sim = sleep_model.simulate(observed, seed=3, group_effects="observed", return_components=True)
    np.testing.assert_allclose(sim.ranef["Subject"].loc[0], point.ranef["Subject"])


# --------------------------------------------------------------------------------------
# Interval labels: one rule
# --------------------------------------------------------------------------------------


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(prob=st.floats(0.01, 0.999).map(lambda p: round(p, 3)), kind=st.sampled_from(["eti", "hdi"]))
@example(prob=0.57, kind="eti")
@example(prob=0.999, kind="hdi")
def test_interval_labels_agree_everywhere(sleep_fit, sleep_posterior, prob, kind):
    lb, ub = names.ci_columns(kind, prob)
    post = sleep_posterior.with_ci(prob, kind)
    assert (lb, ub) == post.ci_columns == tuple(post.fixef.columns[2:4])
    assert {lb, ub} <= set(post.varcorr.columns)
    assert {lb, ub} <= set(blm.compare(sleep_fit, sleep_posterior, ci_prob=prob, ci_kind=kind))
    assert {lb, ub} <= set(blm.compare(None, post))
    shrink = blm.shrinkage(sleep_fit, sleep_posterior, ci_prob=prob, ci_kind=kind)
    assert {lb, ub} <= set(shrink.columns)
    percent = lb.removeprefix(kind).removesuffix("_lb")
    assert f"{percent}% {kind.upper()}" in " ".join(
        _legend_texts(blm.plot_compare(sleep_fit, sleep_posterior, ci_kind=kind, ci_prob=prob))
    )
    assert float(percent) == pytest.approx(100 * prob, rel=1e-5)


def test_group_fit_bands_use_the_same_percentage(sleep_fit, sleep_posterior):
    for prob in (0.57, 0.999):
        fig = blm.plot_group_fits(sleep_fit, sleep_posterior.with_ci(prob))
        percent = names.ci_percent(prob)
        assert f"posterior {percent}% band" in _legend_texts(fig)


@pytest.mark.parametrize("prob", [0.5, 0.8, 0.89, 0.9, 0.94, 0.95, 0.99])
def test_labels_are_arvizs_wherever_its_percentage_is_exact(sleep_posterior, prob):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(sleep_posterior.idata, var_names=["sigma"], ci_prob=prob)
    assert list(table.columns[2:4]) == list(names.ci_columns("eti", prob))

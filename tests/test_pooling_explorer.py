"""The partial-pooling explorer, driven through its widget: sliders and buttons in, the
coefficients, shrinkage table and arrows out, checked against Henderson's mixed-model
equations solved independently (with Σ⁻¹, where the explorer never inverts Σ)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm.pooling import Setting, setting_from_varcorr

pytest.importorskip("ipywidgets")

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def fit():
    return blm.lmer(FORMULA, blm.load_dataset("sleepstudy"))


@pytest.fixture
def explorer(fit):
    return blm.explore_pooling(fit)


def henderson(design, setting: Setting, rows=None):
    """β̂ and b̂ from the mixed-model equations with G⁻¹ (every SD > 0)."""
    rows = np.ones(design.nobs, bool) if rows is None else rows
    X, Z, y = design.X[rows], design.Z().toarray()[rows], design.y[rows]
    blocks = []
    for t in design.terms:
        sd = np.array([setting.sd[(t.group, c)] for c in t.cnames])
        R = np.eye(t.nc)
        for i in range(t.nc):
            for j in range(i + 1, t.nc):
                R[i, j] = R[j, i] = setting.corr[(t.group, t.cnames[i], t.cnames[j])]
        blocks.append(np.kron(np.eye(t.nl), R * np.outer(sd, sd)))
    G = np.zeros((Z.shape[1],) * 2)
    start = 0
    for b in blocks:
        G[start : start + len(b), start : start + len(b)] = b
        start += len(b)
    lhs = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + setting.sigma**2 * np.linalg.inv(G)]])
    sol = np.linalg.solve(lhs, np.concatenate([X.T @ y, Z.T @ y]))
    return sol[: X.shape[1]], sol[X.shape[1] :]


def sleep_coef(beta, b):
    return pd.DataFrame(beta + b.reshape(-1, 2), columns=["(Intercept)", "Days"])


@pytest.mark.parametrize(
    ("formula", "dataset", "factor"),
    [
        (FORMULA, "sleepstudy", None),
        ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy", None),
        ("Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)", "iris", None),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin", "sample"),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin", "plate"),
    ],
)
def test_at_the_reml_estimates_the_explorer_shows_lme4s_coef(formula, dataset, factor):
    fit = blm.lmer(formula, blm.load_dataset(dataset))
    ex = blm.explore_pooling(fit, factor=factor)
    expected = fit.coef[ex.factor][ex.coefficients.columns]
    np.testing.assert_allclose(ex.coefficients.to_numpy(), expected.to_numpy(), atol=1e-7)


def test_moving_sliders_recomputes_table_and_arrows_by_the_closed_form(explorer, fit):
    before_table, before_arrows = explorer.table.copy(), explorer.arrows.copy()
    sliders = explorer.sliders
    assert set(sliders) == {
        "sd_Subject[(Intercept)]",
        "sd_Subject[Days]",
        "corr_Subject[(Intercept), Days]",
        "sigma",
        "kept",
    }
    assert sliders["sd_Subject[Days]"].value == pytest.approx(fit.varcorr["sdcor"].iloc[1])
    sliders["sd_Subject[Days]"].value = 2.0
    sliders["corr_Subject[(Intercept), Days]"].value = -0.4
    sliders["sigma"].value = 31.0
    setting = explorer.setting
    assert setting.sd[("Subject", "Days")] == 2.0
    assert setting.corr[("Subject", "(Intercept)", "Days")] == -0.4 and setting.sigma == 31.0
    beta, b = henderson(fit.design, setting)
    coef = sleep_coef(beta, b)
    np.testing.assert_allclose(explorer.coefficients.to_numpy(), coef.to_numpy(), rtol=1e-9)
    table = explorer.table
    np.testing.assert_allclose(table["partial"].to_numpy(), coef.to_numpy().ravel(), rtol=1e-9)
    own, partial = table["no_pooling"].to_numpy(), table["partial"].to_numpy()
    population = np.tile(beta, 18)
    np.testing.assert_allclose(
        table["shrinkage"], 1 - (partial - population) / (own - population), rtol=1e-9
    )
    # a smaller slope SD pools the slopes harder: they spread less
    slopes = [t.xs("Days", level="term")["partial"].std() for t in (before_table, table)]
    assert slopes[1] < slopes[0] / 2
    arrows = explorer.arrows
    np.testing.assert_allclose(arrows[["end (Intercept)", "end Days"]], coef.to_numpy())
    np.testing.assert_allclose(arrows.filter(like="start"), before_arrows.filter(like="start"))
    assert not np.allclose(arrows.filter(like="end"), before_arrows.filter(like="end"))
    centre, cov = explorer.ellipse
    np.testing.assert_allclose(centre, beta)
    sd0 = setting.sd[("Subject", "(Intercept)")]
    np.testing.assert_allclose(cov, [[sd0**2, -0.4 * sd0 * 2.0], [-0.4 * sd0 * 2.0, 4.0]])
    assert explorer.widget.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "shrinkage" in explorer.widget.table.value


def test_tau_to_zero_is_complete_pooling_and_to_infinity_no_pooling(explorer, fit):
    table = blm.shrinkage(fit, None)
    complete = table["complete_pooling"].unstack("term")[["(Intercept)", "Days"]].to_numpy()
    own = table["no_pooling"].unstack("term")[["(Intercept)", "Days"]].to_numpy()
    for label in ("sd_Subject[(Intercept)]", "sd_Subject[Days]"):
        # the slider's smallest SD (a log slider: min is log10), a thousandth of REML's
        explorer.sliders[label].value = 10 ** explorer.sliders[label].min
    assert (explorer.table["shrinkage"] > 0.999).all()
    np.testing.assert_allclose(explorer.coefficients.to_numpy(), complete, rtol=1e-3)
    for label in ("sd_Subject[(Intercept)]", "sd_Subject[Days]"):
        explorer.sliders[label].value = 10 ** explorer.sliders[label].max
    assert (explorer.table["shrinkage"].abs() < 1e-3).all()
    np.testing.assert_allclose(explorer.coefficients.to_numpy(), own, rtol=1e-4)
    # and exactly at the ends: Σ = 0 needs no Σ⁻¹
    explorer.set(explorer.setting.scaled(0.0))
    np.testing.assert_allclose(explorer.coefficients.to_numpy(), complete, rtol=1e-10)
    explorer.set(explorer.reml.scaled(1e9))
    np.testing.assert_allclose(explorer.coefficients.to_numpy(), own, rtol=1e-6)


def test_only_the_ratio_of_sigma_to_tau_matters(explorer):
    before = explorer.coefficients.copy()
    s = explorer.setting
    explorer.set(Setting({k: 3 * v for k, v in s.sd.items()}, dict(s.corr), 3 * s.sigma))
    np.testing.assert_allclose(explorer.coefficients, before, rtol=1e-9)
    explorer.sliders["sigma"].value = 0.5 * explorer.setting.sigma  # less noise: less pooling
    moved = explorer.table["shrinkage"].abs()
    at_start = explorer.view_at(s)[0].table()["shrinkage"].abs()
    assert (moved < at_start).all()


def test_keeping_fewer_observations_pools_harder(explorer, fit):
    sleep = blm.load_dataset("sleepstudy")
    explorer.sliders["kept"].value = 3
    table = explorer.table
    assert (table["n"] == 3).all()
    first3 = sleep[sleep["Days"] < 3]  # sleepstudy is sorted by Subject, Days
    own = first3.groupby("Subject", observed=True).apply(
        lambda d: pd.Series(np.polyfit(d["Days"], d["Reaction"], 1)[::-1], ["(Intercept)", "Days"])
    )
    np.testing.assert_allclose(explorer.view.no_pooling.to_numpy(), own.to_numpy(), rtol=1e-9)
    beta, b = henderson(fit.design, explorer.setting, rows=sleep["Days"].to_numpy() < 3)
    np.testing.assert_allclose(explorer.coefficients, sleep_coef(beta, b), rtol=1e-9)
    full = explorer.view_at(explorer.setting)  # same rows: kept is part of the state
    assert (full[0].n == 3).all()
    explorer.sliders["kept"].value = 10
    assert (explorer.table["shrinkage"].xs("Days", level="term") < table["shrinkage"].xs(
        "Days", level="term"
    )).mean() > 0.8  # fmt: skip


def test_buttons_reml_posterior_simulate_observed(fit):
    design = fit.design
    reml = setting_from_varcorr(design, fit.varcorr)
    post = reml.scaled(1.5)
    ex = blm.PoolingExplorer(design, reml, post, seed=3)
    assert not ex.buttons["posterior"].disabled
    ex.buttons["posterior"].click()
    assert ex.sliders["sd_Subject[Days]"].value == pytest.approx(1.5 * reml.sd[("Subject", "Days")])
    np.testing.assert_allclose(ex.coefficients, sleep_coef(*henderson(design, post)), rtol=1e-9)
    ex.buttons["reml"].click()
    np.testing.assert_allclose(ex.coefficients, fit.coef["Subject"], rtol=1e-9)
    ex.buttons["simulate"].click()
    y1 = ex.y.copy()
    assert not np.allclose(y1, design.y)
    again = blm.PoolingExplorer(design, reml, post, seed=3)
    again.buttons["simulate"].click()
    np.testing.assert_array_equal(again.y, y1)  # the seed fixes the simulated data
    ex.buttons["observed"].click()
    np.testing.assert_array_equal(ex.y, design.y)
    np.testing.assert_allclose(ex.coefficients, fit.coef["Subject"], rtol=1e-9)
    assert blm.explore_pooling(fit).buttons["posterior"].disabled  # no posterior given


def test_simulated_data_follow_the_settings_variances(fit):
    """Over many simulations the per-subject own fits spread as Σ + σ²(X'X)⁻¹ says."""
    ex = blm.explore_pooling(fit, seed=1)
    own = []
    for _ in range(300):
        ex.simulate()
        own.append(ex.view.no_pooling.to_numpy())
    own = np.concatenate(own)
    days = np.arange(10.0)
    X = np.column_stack([np.ones(10), days])
    _, cov = ex.ellipse
    expected = cov + ex.setting.sigma**2 * np.linalg.inv(X.T @ X)
    d = np.diag(expected)
    se = np.sqrt((np.outer(d, d) + expected**2) / len(own))  # of a sample covariance
    assert (np.abs(np.cov(own.T) - expected) < 4 * se).all()


def test_a_value_set_from_code_widens_its_sliders_range(explorer, fit):
    explorer.set(explorer.reml.scaled(1e6))
    slider = explorer.sliders["sd_Subject[Days]"]
    assert slider.value == pytest.approx(1e6 * fit.varcorr["sdcor"].iloc[1])
    slider.value = 3.0  # still reaches the estimates' range
    assert explorer.setting.sd[("Subject", "Days")] == pytest.approx(3.0)


def test_bad_settings_name_the_parameter(explorer):
    s = explorer.setting
    with pytest.raises(blm.PoolingError, match=r"sd_Subject\[Days\]"):
        explorer.set(Setting({**s.sd, ("Subject", "Days"): -1.0}, s.corr, s.sigma))
    with pytest.raises(blm.PoolingError, match=r"corr_Subject"):
        explorer.set(Setting(s.sd, {("Subject", "(Intercept)", "Days"): 1.5}, s.sigma))
    with pytest.raises(blm.PoolingError, match="sigma"):
        explorer.set(Setting(s.sd, s.corr, 0.0))
    with pytest.raises(blm.PoolingError, match="kept"):
        explorer.set(kept=11)
    with pytest.raises(blm.PoolingError, match="Model or a REML fit"):
        blm.explore_pooling("sleepstudy")
    with pytest.raises(blm.ComparisonError, match="Subjekt"):
        blm.explore_pooling(blm.lmer(FORMULA, blm.load_dataset("sleepstudy")), factor="Subjekt")


def test_too_large_a_design_is_refused_naming_its_size():
    rng = np.random.default_rng(0)
    n = 60_000
    g, x = rng.integers(0, 100, n), rng.normal(size=n)
    a, b = rng.normal(size=(2, 100))
    data = pd.DataFrame(
        {"y": a[g] + (1 + b[g]) * x + rng.normal(size=n), "x": x, "g": g.astype(str)}
    )
    fit = blm.lmer("y ~ x + (x | g)", data)
    with pytest.raises(blm.PoolingError, match="60000 rows x 200 random effects"):
        blm.explore_pooling(fit)


def test_static_fallback_is_a_small_multiple_at_three_taus(explorer):
    fig = explorer.small_multiple()
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["τ × 0.1", "τ × 1", "τ × 10"]
    # the lines panel at τ x 0.1 is tighter than at τ x 10
    low, high = fig.axes[3], fig.axes[5]
    spread = [np.ptp([line.get_ydata()[-1] for line in ax.get_lines()]) for ax in (low, high)]
    assert spread[0] < spread[1] / 3


def test_explorer_accepts_a_model(fit):
    model = blm.Model(FORMULA, blm.load_dataset("sleepstudy"))
    ex = blm.explore_pooling(model)
    np.testing.assert_allclose(ex.coefficients, fit.coef["Subject"], rtol=1e-9)

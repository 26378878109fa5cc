"""plot_compare, plot_shrinkage, plot_group_fits on sleepstudy and iris.

The sleepstudy fits are session fixtures (conftest.py); this module samples iris once.
"""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from conftest import SLEEP
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from matplotlib.text import Annotation

import bayeslmm as blm
from bayeslmm.compare import ComparisonError

matplotlib.use("Agg")

IRIS = "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)"


@pytest.fixture(scope="module")
def sleep(sleep_model, sleep_fit, sleep_posterior):
    return sleep_model, sleep_fit, sleep_posterior


@pytest.fixture(scope="module")
def iris():
    model = blm.Model(IRIS, blm.load_dataset("iris"))
    fit = model.fit_reml()
    with warnings.catch_warnings():  # a short run: convergence warnings are expected
        warnings.simplefilter("ignore", blm.ConvergenceWarning)
        posterior = model.sample(draws=200, tune=200, chains=2, seed=7, target_accept=0.95)
    return model, fit, posterior


def _save(fig: Figure, path) -> np.ndarray:
    """Write the PNG and read it back: (height, width, channels)."""
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=100)
    assert path.stat().st_size > 15_000
    return matplotlib.image.imread(path)


def _sane(img: np.ndarray) -> None:
    h, w = img.shape[:2]
    assert 400 <= w <= 1600 and 250 <= h <= 1600, (w, h)


def _arrows(ax) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(start, end, colour) of every arrow annotation of an axes."""
    out = []
    for child in ax.get_children():
        if isinstance(child, Annotation) and child.arrow_patch is not None:
            colour = matplotlib.colors.to_hex(child.arrow_patch.get_edgecolor())
            out.append((np.array(child.xyann, float), np.array(child.xy, float), colour))
    return out


BLUE, ORANGE = matplotlib.colors.to_hex("tab:blue"), matplotlib.colors.to_hex("tab:orange")


# --------------------------------------------------------------------------------------
# sleepstudy
# --------------------------------------------------------------------------------------


def _segments(ax, colour: str) -> list[tuple[float, float]]:
    """(left, right) of every two-point line of one colour in an axes."""
    return [
        (float(line.get_xdata()[0]), float(line.get_xdata()[1]))
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and matplotlib.colors.to_hex(line.get_color()) == colour
    ]


def test_plot_compare_sleepstudy(sleep, tmp_path):
    """Every row: the REML point with its profile interval and the posterior mean with its
    credible interval, both of the posterior's probability (89 %)."""
    _, fit, posterior = sleep
    fig = blm.plot_compare(fit, posterior)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    table = blm.compare(fit, posterior)
    assert [ax.get_yticklabels()[0].get_text() for ax in axes] == list(table.index)
    for ax, (_, row) in zip(axes, table.iterrows(), strict=True):
        xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
        assert row["reml"] in xs and row["mean"] in xs
        assert _segments(ax, BLUE) == [(row["profile89_lb"], row["profile89_ub"])]
        assert _segments(ax, ORANGE) == [(row["eti89_lb"], row["eti89_ub"])]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["REML estimate and 89% profile CI", "posterior mean and 89% ETI"]
    _sane(_save(fig, tmp_path / "compare.png"))
    wald = blm.plot_compare(fit, posterior, ci_prob=0.95, reml_ci="wald")
    days, sd = wald.axes[1], wald.axes[2]
    z = 1.959963984540054
    beta, se = fit.fixef["Days"], fit.fixef_se["Days"]
    assert _segments(days, BLUE) == [pytest.approx((beta - z * se, beta + z * se))]
    assert _segments(sd, BLUE) == []  # Wald: no interval for an SD


def test_plot_shrinkage_sleepstudy_draws_arrows_from_no_to_partial_pooling(sleep, tmp_path):
    _, fit, posterior = sleep
    fig = blm.plot_shrinkage(fit, posterior, terms=("(Intercept)", "Days"))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "(Intercept)" and ax.get_ylabel() == "Days"
    table = blm.shrinkage(fit, posterior).loc["Subject"]
    nopool = table["no_pooling"].unstack("term")[["(Intercept)", "Days"]].to_numpy()
    reml = table["reml"].unstack("term")[["(Intercept)", "Days"]].to_numpy()
    post = table["posterior_mean"].unstack("term")[["(Intercept)", "Days"]].to_numpy()
    arrows = _arrows(ax)
    assert len(arrows) == 18 and {c for _, _, c in arrows} == {BLUE}
    np.testing.assert_allclose([a for a, _, _ in arrows], nopool)
    np.testing.assert_allclose([b for _, b, _ in arrows], reml)
    # the posterior means: hollow orange diamonds
    (diamonds,) = [li for li in ax.get_lines() if li.get_marker() == "D"]
    assert matplotlib.colors.to_hex(diamonds.get_color()) == ORANGE
    np.testing.assert_allclose(np.column_stack(diamonds.get_data()), post)
    # 50 % and 90 % contours of N(β̂, Σ̂), centred on β̂
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2
    beta = fit.fixef[["(Intercept)", "Days"]].to_numpy(float)
    for e in ellipses:
        np.testing.assert_allclose(e.center, beta)
    small, large = sorted(ellipses, key=lambda e: e.width)
    vc = fit.varcorr["sdcor"].to_numpy(float)
    cov = vc[2] * vc[0] * vc[1]
    lam = np.linalg.eigvalsh(np.array([[vc[0] ** 2, cov], [cov, vc[1] ** 2]]))
    for e, p in ((small, 0.5), (large, 0.9)):
        r2 = -2 * np.log(1 - p)  # χ²₂ quantile
        assert e.width == pytest.approx(2 * np.sqrt(r2 * lam[1]))
        assert e.height == pytest.approx(2 * np.sqrt(r2 * lam[0]))
    _sane(_save(fig, tmp_path / "shrinkage.png"))


def test_plot_group_fits_sleepstudy_has_one_panel_per_subject(sleep, tmp_path):
    _, fit, posterior = sleep
    fig = blm.plot_group_fits(fit, posterior)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 18
    assert axes[0].get_title() == "308 (n=10)"
    coef = fit.coef["Subject"].loc["308"]
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert set(lines) >= {
        "data",
        "no pooling",
        "complete pooling",
        "partial pooling (REML)",
        "partial pooling (posterior)",
    }
    reml = lines["partial pooling (REML)"]
    x = np.asarray(reml.get_xdata())
    np.testing.assert_allclose(reml.get_ydata(), coef["(Intercept)"] + coef["Days"] * x)
    assert x.min() == 0 and x.max() == 9
    assert len(lines["data"].get_xdata()) == 10
    assert fig.get_supxlabel() == "Days"
    _sane(_save(fig, tmp_path / "group_fits.png"))


def test_figures_do_not_touch_pyplot(sleep):
    import matplotlib.pyplot as plt

    _, fit, _ = sleep
    before = plt.get_fignums()
    blm.plot_compare(fit)
    blm.plot_shrinkage(fit)
    blm.plot_group_fits(fit)
    assert plt.get_fignums() == before


# --------------------------------------------------------------------------------------
# iris (a fixed-only covariate, 3 groups)
# --------------------------------------------------------------------------------------


def test_iris_figures(iris, tmp_path):
    _, fit, posterior = iris
    fig = blm.plot_compare(fit, posterior)
    assert len(fig.axes) == 3 + 2 + 1 + 1
    _sane(_save(fig, tmp_path / "iris_compare.png"))

    fig = blm.plot_shrinkage(fit, posterior)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "(Intercept)" and ax.get_ylabel() == "Sepal.Length"
    ends = [b for _, b, c in _arrows(ax) if c == BLUE]
    coef = fit.coef["Species"][["(Intercept)", "Sepal.Length"]].to_numpy()
    np.testing.assert_allclose(ends, coef)
    _sane(_save(fig, tmp_path / "iris_shrinkage.png"))

    fig = blm.plot_group_fits(fit, posterior)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [
        "setosa (n=50)",
        "versicolor (n=50)",
        "virginica (n=50)",
    ]
    assert fig.get_supxlabel() == "Sepal.Length"
    # the REML line of setosa at its mean Sepal.Width
    data = blm.load_dataset("iris")
    setosa = data[data["Species"] == "setosa"]
    c = fit.coef["Species"].loc["setosa"]
    line = next(li for li in axes[0].get_lines() if li.get_label() == "partial pooling (REML)")
    x = np.asarray(line.get_xdata())
    expected = c["(Intercept)"] + c["Sepal.Width"] * setosa["Sepal.Width"].mean()
    np.testing.assert_allclose(line.get_ydata(), expected + c["Sepal.Length"] * x)
    _sane(_save(fig, tmp_path / "iris_group_fits.png"))


# --------------------------------------------------------------------------------------
# One side only, the 1-D picture, bad input
# --------------------------------------------------------------------------------------


def test_plots_with_one_side_only(sleep, tmp_path):
    _, fit, posterior = sleep
    fig = blm.plot_shrinkage(fit)
    colours = [c for _, _, c in _arrows(fig.axes[0])]
    assert colours.count(BLUE) == 18 and ORANGE not in colours
    fig = blm.plot_shrinkage(None, posterior)
    colours = [c for _, _, c in _arrows(fig.axes[0])]
    assert colours.count(ORANGE) == 18 and BLUE not in colours
    fig = blm.plot_group_fits(None, posterior)
    labels = {li.get_label() for li in fig.axes[0].get_lines()}
    assert "partial pooling (posterior)" in labels and "partial pooling (REML)" not in labels
    fig = blm.plot_compare(None, posterior)
    assert len(fig.axes) == 6
    _sane(_save(fig, tmp_path / "compare_posterior_only.png"))


def test_plot_shrinkage_of_a_random_intercept_is_one_dimensional(tmp_path):
    fit = blm.lmer("Yield ~ 1 + (1 | Batch)", blm.load_dataset("dyestuff"))
    fig = blm.plot_shrinkage(fit)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == [f"{b} (n=5)" for b in "ABCDEF"]
    arrows = _arrows(ax)
    assert len(arrows) == 6
    coef = fit.coef["Batch"]["(Intercept)"]
    np.testing.assert_allclose(sorted(b[0] for _, b, _ in arrows), sorted(coef))
    _sane(_save(fig, tmp_path / "dyestuff_shrinkage.png"))


def test_plots_reject_bad_input(sleep):
    _, fit, posterior = sleep
    with pytest.raises(ComparisonError, match="terms must be one or two"):
        blm.plot_shrinkage(fit, terms=("(Intercept)", "Reaction"))
    with pytest.raises(ComparisonError, match="x must be a covariate"):
        blm.plot_group_fits(fit, x="Reaction")
    with pytest.raises(ComparisonError, match="unknown grouping factor"):
        blm.plot_group_fits(fit, factor="Days")
    with pytest.raises(ComparisonError, match="fit must be an LmerFit"):
        blm.plot_compare(posterior, fit)


def test_plots_skip_no_pooling_arrows_that_are_not_estimable(tmp_path):
    # one subject with a single observation, one observed on a single day: no slope
    data = blm.load_dataset("sleepstudy").astype({"Subject": str})
    extra = pd.DataFrame(
        {
            "Reaction": [286.0, 250.0, 270.0],
            "Days": [0.0, 3.0, 3.0],
            "Subject": ["374"] + ["375"] * 2,
        }
    )
    fit = blm.lmer(SLEEP, pd.concat([data, extra], ignore_index=True))
    fig = blm.plot_shrinkage(fit)
    assert len(_arrows(fig.axes[0])) == 18
    _sane(_save(fig, tmp_path / "shrinkage_unestimable.png"))
    fig = blm.plot_group_fits(fit)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 20 and axes[18].get_title() == "374 (n=1)"
    nopool = next(li for li in axes[19].get_lines() if li.get_label() == "no pooling")
    np.testing.assert_allclose(nopool.get_ydata(), 260.0)  # lm drops the aliased slope


def test_plot_group_fits_of_an_intercept_only_model_plots_observations():
    fit = blm.lmer("Yield ~ 1 + (1 | Batch)", blm.load_dataset("dyestuff"))
    fig = blm.plot_group_fits(fit)
    assert fig.get_supxlabel() == "observation"
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6
    reml = next(li for li in axes[0].get_lines() if li.get_label() == "partial pooling (REML)")
    np.testing.assert_allclose(reml.get_ydata(), fit.coef["Batch"].loc["A", "(Intercept)"])

"""The exploration figures (issue 15): each is written as a PNG and checked for what it
draws (the PNGs of sleepstudy were looked at when the figures were made: see notebook 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import bayeslmm as blm
from bayeslmm.errors import BayesLMMError


def _legend(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _written(fig: Figure, path) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000


@pytest.mark.parametrize("kind", ["density", "ecdf"])
def test_plot_ppc_overlays_the_data_on_replicated_data(sleep_posterior, tmp_path, kind):
    fig = blm.plot_ppc(sleep_posterior, kind, num_draws=30, seed=1)
    _written(fig, tmp_path / f"ppc_{kind}.png")
    (ax,) = [a for a in fig.axes if a.get_visible()]
    lines = ax.get_lines()
    assert len(lines) >= 31  # 30 replicated curves and the data's
    observed = lines[-1].get_xdata() if kind == "ecdf" else None
    if observed is not None:
        y = np.sort(sleep_posterior.design.y)
        assert np.min(observed) <= y[0] + 1e-9 and np.max(observed) >= y[-1] - 1e-9


def test_plot_ppc_statistic_per_group(sleep_posterior, tmp_path):
    fig = blm.plot_ppc(sleep_posterior, stat="sd", group="Subject", seed=1)
    _written(fig, tmp_path / "ppc_sd.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(sleep_posterior.design.terms[0].levels)
    observed = ax.collections[-1].get_offsets()[:, 0]
    y = pd.Series(sleep_posterior.design.y).groupby(sleep_posterior.design.terms[0].codes)
    np.testing.assert_allclose(observed, y.std(ddof=1).to_numpy(), rtol=1e-12)
    assert "replicated, 89% ETI" in _legend(fig)
    assert ax.get_xlabel() == "sd(Reaction)"
    overall = blm.plot_ppc(sleep_posterior, stat=lambda a: np.quantile(a, 0.9, axis=-1))
    assert [t.get_text() for t in overall.axes[0].get_yticklabels()] == ["all"]


def test_plot_predictions_population_and_groups(sleep_fit, sleep_posterior, tmp_path):
    for name, source in (("reml", sleep_fit), ("posterior", sleep_posterior)):
        pop = blm.plot_predictions(source, x="Days")
        _written(pop, tmp_path / f"pred_{name}.png")
        legend = _legend(pop)
        assert "population line" in legend
        assert any(text.startswith("a new group's") for text in legend)
        by = blm.plot_predictions(source, by="Subject", levels=["308", "309", "335"])
        _written(by, tmp_path / f"pred_by_{name}.png")
        visible = [a for a in by.axes if a.get_visible()]
        assert [a.get_title() for a in visible] == ["308 (n=10)", "309 (n=10)", "335 (n=10)"]
    assert "89% normal interval (REML, given θ̂)" in " ".join(
        _legend(blm.plot_predictions(sleep_fit))
    )
    # the drawn group line is predict()'s mean
    fig = blm.plot_predictions(sleep_posterior, by="Subject", levels=["308"], points=5)
    line = fig.axes[0].get_lines()[1]
    new = pd.DataFrame({"Days": line.get_xdata(), "Subject": "308"})
    np.testing.assert_allclose(line.get_ydata(), sleep_posterior.predict(new)["mean"], rtol=1e-12)


def test_plot_trace_and_posterior_use_the_package_labels(sleep_posterior, tmp_path):
    trace = blm.plot_trace(sleep_posterior)
    _written(trace, tmp_path / "trace.png")
    texts = " ".join(a.get_xlabel() + a.get_ylabel() for a in trace.axes)
    for label in ("fixef[Days]", "sd_Subject[(Intercept)]", "corr_Subject[(Intercept), Days]"):
        assert label in texts
    post = blm.plot_posterior(sleep_posterior, var_names=["fixef", "sigma"])
    _written(post, tmp_path / "posterior.png")
    titles = {a.get_title() for a in post.axes if a.get_visible()}
    assert titles == {"fixef[(Intercept)]", "fixef[Days]", "sigma"}


def test_plot_errors(sleep_fit, sleep_posterior):
    with pytest.raises(BayesLMMError, match="plot_ppc needs a Posterior"):
        blm.plot_ppc(sleep_fit)
    with pytest.raises(BayesLMMError, match="kind must be 'density' or 'ecdf'"):
        blm.plot_ppc(sleep_posterior, "hist")
    with pytest.raises(BayesLMMError, match="unknown grouping factor 'Subjet'"):
        blm.plot_ppc(sleep_posterior, stat="mean", group="Subjet")
    with pytest.raises(BayesLMMError, match="stat must be one of"):
        blm.plot_ppc(sleep_posterior, stat="iqr")
    with pytest.raises(BayesLMMError, match="x must be a numeric predictor column"):
        blm.plot_predictions(sleep_fit, x="Subject")
    with pytest.raises(BayesLMMError, match=r"levels \['999'\] are not levels of 'Subject'"):
        blm.plot_predictions(sleep_fit, by="Subject", levels=["999"])
    with pytest.raises(BayesLMMError, match="needs a REML fit or a Posterior"):
        blm.plot_predictions({"fixef": 1})
    with pytest.raises(BayesLMMError, match="match no parameter"):
        blm.plot_trace(sleep_posterior, var_names="beta")

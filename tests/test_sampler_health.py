"""The sampler's health from sample_stats (bayes/health.py): E-BFMI, saturation,
acceptance, and the warnings that say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayeslmm.bayes.health import EBFMI_MIN, ebfmi, sampler_health


def _stats(energy, depth, max_td=10, div=None):
    ds = xr.Dataset(
        {
            "energy": (("chain", "draw"), energy),
            "tree_depth": (("chain", "draw"), depth),
            "reached_max_treedepth": (("chain", "draw"), depth >= max_td),
            "diverging": (("chain", "draw"), np.zeros_like(depth, bool) if div is None else div),
            "acceptance_rate": (("chain", "draw"), np.full(energy.shape, 0.9)),
            "step_size": (("chain", "draw"), np.full(energy.shape, 0.5)),
        },
        attrs={"max_treedepth": max_td, "target_accept": 0.9},
    )
    return ds


def test_ebfmi_closed_forms():
    """Independent energies: E[(Eᵢ − Eᵢ₋₁)²] = 2 Var E, so E-BFMI → 2; a random walk's
    differences are tiny against its spread: E-BFMI → 0."""
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(2, 20000))
    np.testing.assert_allclose(ebfmi(iid), 2.0, rtol=0.03)
    walk = np.cumsum(rng.normal(size=(1, 20000)), axis=1)
    assert ebfmi(walk)[0] < 0.01


def test_health_warns_on_low_ebfmi_and_saturation_and_says_what_to_do():
    rng = np.random.default_rng(1)
    energy = np.vstack([rng.normal(size=500), np.cumsum(rng.normal(size=500))])
    depth = np.full((2, 500), 3)
    depth[0, :7] = 10
    health = sampler_health(_stats(energy, depth))
    assert health.saturated == 7 and health.max_depth_seen == 10
    assert health.ebfmi[0] > EBFMI_MIN > health.ebfmi[1]
    text = "\n".join(health.problems())
    assert "7 transitions stopped at max_treedepth=10" in text and "raise max_treedepth" in text
    assert "E-BFMI < 0.3 (chain 1:" in text and "chain 0" not in text
    assert "acceptance 0.90 (target 0.9)" in health.describe()
    clean = sampler_health(_stats(rng.normal(size=(2, 500)), np.full((2, 500), 3)))
    assert clean.problems() == []


@pytest.mark.filterwarnings("ignore::bayeslmm.errors.ConvergenceWarning")
def test_posterior_diagnostics_show_every_statistic(tmp_path):
    """The compiled sampler stores every Stan statistic, the adapted metric and the step
    size; post.diagnostics and the printed summary show them; save_warmup keeps the
    warm-up; log_likelihood=True makes az.loo work."""
    import arviz as az

    import bayeslmm as blm

    model = blm.Model("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))
    post = model.sample(
        draws=200, tune=150, chains=2, seed=1, progressbar=False, save_warmup=True,
        log_likelihood=True, max_treedepth=6,
    )  # fmt: skip
    stats = post.idata["sample_stats"]
    stored = ("diverging", "tree_depth", "reached_max_treedepth", "energy", "lp")
    stored += ("acceptance_rate", "step_size", "n_steps", "metric", "adapted_step_size")
    for name in stored:
        assert name in stats, name
    assert stats["metric"].shape == (2, 4, 4)  # dense M⁻¹ of the 4 sampled parameters
    assert post.idata["warmup_sample_stats"]["energy"].shape == (2, 150)
    assert post.idata["warmup_posterior"]["sigma"].shape == (2, 150)
    d = post.diagnostics.sampler
    assert d is not None and d.max_treedepth == 6 and len(d.ebfmi) == 2
    assert d.target_accept == 0.95 and abs(d.acceptance - 0.95) < 0.06
    assert "E-BFMI per chain" in post.summary()
    loo = az.loo(post.idata)
    assert np.isfinite(loo.elpd) and loo.n_data_points == 180

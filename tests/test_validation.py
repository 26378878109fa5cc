"""Validation machinery (SBC ranks, uniformity tests, coverage), an SBC smoke run, and
seeded sampling across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayeslmm import Model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from validation import sbc  # noqa: E402

NAMES = [
    "fixef[(Intercept)]",
    "fixef[x]",
    "sd_g[(Intercept)]",
    "sd_g[x]",
    "corr_g[(Intercept),x]",
    "sigma",
]


@pytest.fixture(scope="module")
def model() -> Model:
    return sbc.reference_model()


# --------------------------------------------------------------------------------------
# Rank, uniformity and coverage machinery (exact posteriors, no NUTS)
# --------------------------------------------------------------------------------------


def test_ranks_count_the_draws_below_the_truth():
    draws = np.array([[0.1, 5.0], [0.3, 6.0], [0.2, 7.0], [0.4, 8.0]])
    np.testing.assert_array_equal(sbc.ranks(np.array([0.25, 4.0]), draws), [2, 0])
    np.testing.assert_array_equal(sbc.ranks(np.array([1.0, 7.5]), draws), [4, 3])
    # a truth equal to one of the draws ranks at its position among them
    np.testing.assert_array_equal(sbc.ranks(draws[1], draws), [2, 1])


def _conjugate_normal(nrep: int, L: int, scale: float, shift: float, seed: int = 0):
    """SBC of θ ~ N(0, 1), y_1..5 ~ N(θ, 1): exact posterior N(Σy/6, 1/6), optionally
    distorted (sd times ``scale``, mean plus ``shift`` posterior SDs)."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(nrep)
    y = theta[:, None] + rng.standard_normal((nrep, 5))
    mean, sd = y.sum(axis=1) / 6, np.sqrt(1 / 6)
    draws = mean[:, None] + sd * (shift + scale * rng.standard_normal((nrep, L)))
    ranks = np.array([sbc.ranks(theta[[i]], draws[i][:, None])[0] for i in range(nrep)])
    covered = [bool(sbc.covers(theta[[i]], draws[i][:, None])[0]) for i in range(nrep)]
    return pd.DataFrame({"theta": ranks}), pd.DataFrame({"theta": covered})


def test_exact_posterior_gives_uniform_ranks_and_nominal_coverage():
    ranks, _ = _conjugate_normal(2000, L=99, scale=1.0, shift=0.0)
    assert ranks["theta"].between(0, 99).all()
    test = sbc.uniformity(ranks, L=99)
    assert test.loc["theta", "chi2_p"] > 0.01 and test.loc["theta", "ks_p"] > 0.01
    # interval ends are sample quantiles: L = 999 draws keep their bias (~0.002) small
    _, covered = _conjugate_normal(2000, L=999, scale=1.0, shift=0.0)
    cov = sbc.coverage(covered).loc["theta"]
    assert cov["mc_se"] == pytest.approx(np.sqrt(0.94 * 0.06 / 2000))
    assert abs(cov["coverage"] - 0.94) < 4 * cov["mc_se"]


@pytest.mark.parametrize(("scale", "shift"), [(0.5, 0.0), (2.0, 0.0), (1.0, 0.5)])
def test_miscalibrated_posterior_is_detected(scale, shift):
    ranks, covered = _conjugate_normal(2000, L=99, scale=scale, shift=shift)
    test = sbc.uniformity(ranks, L=99)
    assert test.loc["theta", "chi2_p"] < 1e-6 and test.loc["theta", "ks_p"] < 1e-6
    cov = sbc.coverage(covered).loc["theta"]
    assert cov["binom_p"] < 1e-3


def test_uniformity_bins_need_not_divide_the_ranks():
    """L + 1 = 101 ranks in 20 bins: expected counts follow the bin widths (5 or 6)."""
    ranks = pd.DataFrame({"p": np.tile(np.arange(101), 3)})  # perfectly uniform
    test = sbc.uniformity(ranks, L=100, bins=20)
    assert test.loc["p", "chi2"] == pytest.approx(0.0, abs=1e-12)
    assert test.loc["p", "chi2_p"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------
# Parameters on both sides of the SBC use the same names, order and values
# --------------------------------------------------------------------------------------


def test_true_parameters_are_the_simulation_parameters(model):
    truth = {
        "fixef": [1.5, -0.25],
        "sigma": 0.8,
        "sd": {"g": {"(Intercept)": 1.2, "x": 0.4}},
        "corr": {"g": -0.3},
    }
    sim = model.simulate(truth, seed=1, nsim=3, return_components=True)
    table = sbc.true_parameters(model, sim)
    assert list(table.columns) == NAMES == sbc.parameter_names(model.design)
    expected = np.array([1.5, -0.25, 1.2, 0.4, -0.3, 0.8])
    np.testing.assert_allclose(table.to_numpy(), np.tile(expected, (3, 1)), rtol=1e-12)


def test_posterior_parameters_follow_the_names(model):
    prior = model.sample_prior_predictive(draws=7, seed=2)["prior"].to_dataset()
    arrays = {k: v.transpose("chain", "draw", ...).to_numpy() for k, v in prior.data_vars.items()}
    flat = sbc.posterior_parameters(model.design, arrays)
    assert flat.shape == (7, 6)
    np.testing.assert_array_equal(flat[:, 1], prior["fixef"].sel(fixef__term="x").values[0])
    np.testing.assert_array_equal(flat[:, 3], prior["sd_g"].sel(g__term="x").values[0])
    corr = prior["corr_g"].sel(g__term="x", g__term_bis="(Intercept)").values[0]
    np.testing.assert_array_equal(flat[:, 4], corr)
    np.testing.assert_array_equal(flat[:, 5], prior["sigma"].values[0])
    # a truth equal to the k-th draw ranks at the k-th draw's position
    k = 3
    order = flat.argsort(axis=0).argsort(axis=0)
    np.testing.assert_array_equal(sbc.ranks(flat[k], flat), order[k])


# --------------------------------------------------------------------------------------
# SBC smoke run (the full run: python -m validation.sbc; results in docs/validation.md)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(model) -> sbc.SBCResult:
    return sbc.run_sbc(6, model=model, draws=150, tune=150, thin=5, seed=11)


def test_sbc_smoke_shapes_and_ranges(model, smoke):
    assert smoke.L == 30
    for table in (smoke.ranks, smoke.truth, smoke.means, smoke.covered):
        assert table.shape == (6, 6) and list(table.columns) == NAMES
    assert smoke.ranks.dtypes.map(pd.api.types.is_integer_dtype).all()
    assert ((smoke.ranks >= 0) & (smoke.ranks <= smoke.L)).all().all()
    assert smoke.covered.dtypes.map(pd.api.types.is_bool_dtype).all()
    assert (smoke.divergences >= 0).all()
    assert (smoke.truth[["sd_g[(Intercept)]", "sd_g[x]", "sigma"]] > 0).all().all()
    assert smoke.truth["corr_g[(Intercept),x]"].between(-1, 1).all()
    assert smoke.settings["parameterization"] == {"g": "marginal"}


def test_sbc_truths_are_the_seeded_prior_predictive(model, smoke):
    sim = model.simulate(None, seed=11, nsim=6, return_components=True)
    pd.testing.assert_frame_equal(
        smoke.truth, sbc.true_parameters(model, sim).set_axis(smoke.truth.index)
    )


def test_sbc_fits_each_replications_data(smoke):
    """The prior of the intercept is wide; each fit's posterior mean tracks its own truth."""
    truth, means = smoke.truth["fixef[(Intercept)]"], smoke.means["fixef[(Intercept)]"]
    assert stats.pearsonr(truth, means).statistic > 0.9
    spread = smoke.truth.std()
    assert (np.abs(means - truth) < 2 * spread["fixef[(Intercept)]"]).all()


def test_sbc_tables_figure_and_pooled_report(smoke, tmp_path):
    test = sbc.uniformity(smoke.ranks, smoke.L, bins=5)
    assert list(test.index) == NAMES
    assert test[["chi2_p", "ks_p"]].apply(lambda p: p.between(0, 1)).all().all()
    cov = sbc.coverage(smoke.covered)
    np.testing.assert_allclose(cov["coverage"], smoke.covered.mean())
    path = sbc.plot_ranks(smoke.ranks, smoke.L, tmp_path / "ranks.png", bins=5)
    assert path.stat().st_size > 10_000
    # two saved runs pool into one report of 12 replications
    for run in ("a", "b"):
        sbc.save(smoke, tmp_path / run)
    text = sbc.report([tmp_path / "a", tmp_path / "b"], tmp_path / "pooled.png")
    assert "seed 11: 6 reps" in text and "of 12 fits" in text
    pooled = sbc.coverage(pd.concat([smoke.covered, smoke.covered]))
    for name in NAMES:
        assert f"| `{name}` | {pooled.loc[name, 'coverage']:.3f} |" in text
    assert (tmp_path / "pooled.png").stat().st_size > 10_000


# --------------------------------------------------------------------------------------
# Reproducibility across processes
# --------------------------------------------------------------------------------------


_SAMPLE_SCRIPT = """
import hashlib, warnings
import numpy as np
from validation.sbc import reference_model
warnings.simplefilter("ignore")
post = reference_model().sample(draws=30, tune=30, chains=2, cores=1, seed=99)
draws = np.concatenate([post.draws[v].values.ravel() for v in sorted(post.draws.data_vars)])
print(hashlib.sha256(draws.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_seeded_sampling_is_identical_across_processes():
    """Same seed, fresh interpreters with different hash seeds: bit-identical draws."""
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _SAMPLE_SCRIPT],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
        )
        digests.append(done.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1] and len(digests[0]) == 64

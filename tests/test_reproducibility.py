"""A seed fixes every draw (parameters, ranef, fixef, posterior predictive) whatever
``cores`` is: chains, blocks of exact effect draws and replicates each take their own child
of ``SeedSequence(seed)``, never one per thread."""

from __future__ import annotations

import numpy as np
import pytest

import bayeslmm as blm
from bayeslmm.bayes.settings import SamplerSettings
from bayeslmm.errors import SamplingError
from bayeslmm.rng import check_seed, rng_from, seed_stream

SETTINGS = dict(draws=150, tune=60, chains=4, progressbar=False)  # 600 draws: 3 effect blocks


@pytest.fixture(scope="module")
def sleep_model():
    return blm.Model("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def by_cores(sleep_model):
    return {c: sleep_model.sample(seed=3, cores=c, **SETTINGS) for c in (1, 2, 4)}


@pytest.mark.parametrize("cores", [2, 4])
def test_draws_do_not_depend_on_cores(by_cores, cores):
    one, other = by_cores[1].idata["posterior"], by_cores[cores].idata["posterior"]
    for name in ("fixef", "sigma", "sd_Subject", "corr_Subject", "ranef_Subject"):
        np.testing.assert_array_equal(one[name].to_numpy(), other[name].to_numpy(), err_msg=name)
    pp1 = by_cores[1].sample_posterior_predictive()["posterior_predictive"]["y"]
    pp2 = by_cores[cores].sample_posterior_predictive()["posterior_predictive"]["y"]
    np.testing.assert_array_equal(pp1.to_numpy(), pp2.to_numpy())


def test_another_seed_gives_other_draws(sleep_model, by_cores):
    other = sleep_model.sample(seed=4, cores=1, **SETTINGS).idata["posterior"]
    one = by_cores[1].idata["posterior"]
    for name in ("fixef", "ranef_Subject"):
        assert not np.array_equal(one[name].to_numpy(), other[name].to_numpy())


def test_an_unseeded_run_records_its_seed(sleep_model):
    """seed=None draws fresh entropy and records it: the run can be repeated exactly."""
    settings = dict(SETTINGS, chains=1)
    first = sleep_model.sample(**settings)
    seed = int(first.idata.attrs["bayeslmm_seed"])
    again = sleep_model.sample(seed=seed, **settings)
    np.testing.assert_array_equal(
        first.idata["posterior"]["ranef_Subject"].to_numpy(),
        again.idata["posterior"]["ranef_Subject"].to_numpy(),
    )


def test_settings_are_checked_once_and_frozen():
    s = SamplerSettings(draws=10, seed=np.int64(7), target_accept=1 - 1e-3)
    assert s.seed == 7 and isinstance(s.seed, int)
    with pytest.raises(AttributeError):
        s.draws = 20  # type: ignore[misc]
    assert SamplerSettings().seed != SamplerSettings().seed  # fresh entropy, recorded
    for bad, message in (
        ({"seed": -1}, "seed must be a non-negative integer or None"),
        ({"seed": np.random.default_rng(1)}, "seed must be"),
        ({"max_treedepth": 0}, "max_treedepth must be an integer >= 1"),
        ({"target_accept": True}, "target_accept"),
        ({"extra": {"draws": 5}}, "pass draws= instead"),
    ):
        with pytest.raises(SamplingError, match=message):
            SamplerSettings(**bad)


def test_rng_from_follows_one_rule():
    gen = np.random.default_rng(1)
    assert rng_from(gen) is gen
    assert rng_from(5).integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    for bad in (-1, 1.5, "a", True):
        with pytest.raises(blm.BayesLMMError, match="seed must be"):
            rng_from(bad)
    assert check_seed(None) is None
    # the streams of one run are the children of SeedSequence(seed), by purpose
    child = np.random.SeedSequence(9).spawn(3)[2]
    assert (seed_stream(9, "effects").generate_state(4) == child.generate_state(4)).all()

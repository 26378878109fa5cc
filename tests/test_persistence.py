"""Saving and loading: REML fits (JSON) and posteriors (netCDF, zarr), and what a loaded
result still does (compare, shrinkage, simulate, summaries)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm import BayesLMMError, DataError
from bayeslmm.bayes.io import dataset_to_frame, frame_to_dataset


def _assert_same(a, b, where: str) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=where)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, obj=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def saved_posterior(sleep_posterior, tmp_path_factory):
    """The session posterior written to netCDF and read back."""
    path = tmp_path_factory.mktemp("posterior") / "post.nc"
    return blm.load_posterior(sleep_posterior.save(path))


# --------------------------------------------------------------------------------------
# REML fits
# --------------------------------------------------------------------------------------


def test_lmer_fit_round_trip(sleep_fit, sleepstudy, tmp_path):
    path = tmp_path / "fit.json"
    sleep_fit.save(path)
    back = blm.load_fit(path)
    assert back.summary() == sleep_fit.summary()
    np.testing.assert_array_equal(back.u, sleep_fit.u)
    assert back.optinfo == sleep_fit.optinfo and back.reml == sleep_fit.reml
    np.testing.assert_allclose(back.predict(sleepstudy), sleep_fit.fitted)
    assert json.loads(json.dumps(sleep_fit.to_dict())) == sleep_fit.to_dict()


@pytest.mark.parametrize("case", ["penicillin", "ss_slope_ml", "pastes"])
def test_lmer_fit_round_trip_keeps_every_field(reference_fits, tmp_path, case):
    _, fit = reference_fits[case]
    fit.save(tmp_path / "fit.json")
    back = blm.load_fit(tmp_path / "fit.json")
    saved = [k for k in fit.to_dict() if k not in ("formula", "frame")]
    assert {"fixef", "vcov", "theta", "varcorr", "ranef", "conditional_sd", "coef"} <= set(saved)
    for name in saved:
        _assert_same(getattr(fit, name), getattr(back, name), name)
    for attr in ("formula", "fixef_names", "theta_names", "group_factors"):
        assert getattr(back.design, attr) == getattr(fit.design, attr)
    np.testing.assert_array_equal(back.design.X, fit.design.X)
    np.testing.assert_array_equal(back.design.y, fit.design.y)


# --------------------------------------------------------------------------------------
# Posteriors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_posterior_round_trip(sleep_posterior, tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    post = sleep_posterior.with_ci(0.5, "hdi")
    loaded = blm.load_posterior(post.save(tmp_path / f"post{suffix}"))
    for name in post.draws.data_vars:
        np.testing.assert_array_equal(loaded.draws(name).values, post.draws(name).values)
        assert loaded.draws(name).dims == post.draws(name).dims
    assert list(loaded.draws.coords["Subject"].values) == list(post.draws.coords["Subject"].values)
    assert (loaded.ci_prob, loaded.ci_kind) == (0.5, "hdi")
    pd.testing.assert_frame_equal(loaded.fixef, post.fixef)
    pd.testing.assert_frame_equal(loaded.varcorr, post.varcorr)
    pd.testing.assert_frame_equal(loaded.ranef["Subject"], post.ranef["Subject"])
    assert loaded.design.formula == post.design.formula
    pd.testing.assert_frame_equal(loaded.design.frame, post.design.frame)
    assert loaded.parameterization == post.parameterization
    assert {k: str(p) for k, p in loaded.priors.items()} == {
        k: str(p) for k, p in post.priors.items()
    }


def test_loaded_posterior_compares_with_the_reml_fit_again(
    sleep_fit, sleep_posterior, saved_posterior, tmp_path
):
    loaded = saved_posterior
    pd.testing.assert_frame_equal(
        blm.compare(sleep_fit, loaded), blm.compare(sleep_fit, sleep_posterior)
    )
    pd.testing.assert_frame_equal(
        blm.shrinkage(sleep_fit, loaded), blm.shrinkage(sleep_fit, sleep_posterior)
    )
    assert loaded.diagnostics == sleep_posterior.diagnostics
    assert loaded.summary() == sleep_posterior.summary()
    # and a saved-and-loaded REML fit with the loaded posterior
    sleep_fit.save(tmp_path / "fit.json")
    again = blm.compare(blm.load_fit(tmp_path / "fit.json"), loaded)
    pd.testing.assert_frame_equal(again, blm.compare(sleep_fit, sleep_posterior))


def test_loaded_posterior_simulates_like_the_original(
    sleep_model, sleep_posterior, saved_posterior
):
    a = sleep_model.simulate(sleep_posterior, seed=4, nsim=5, group_effects="observed")
    b = sleep_model.simulate(saved_posterior, seed=4, nsim=5, group_effects="observed")
    pd.testing.assert_frame_equal(a, b)


def test_categorical_levels_survive_the_round_trip():
    """A factor with a user-set level order is rebuilt with that order."""
    rng = np.random.default_rng(2)
    g = pd.Categorical(np.repeat(["c", "a", "b"], 8), categories=["c", "a", "b"])
    frame = pd.DataFrame({"y": rng.normal(size=24), "g": g, "flag": np.arange(24) % 2 == 0})
    back = dataset_to_frame(frame_to_dataset(frame))
    assert list(back["g"].cat.categories) == ["c", "a", "b"]
    pd.testing.assert_frame_equal(back, frame)


# --------------------------------------------------------------------------------------
# Files that are not a saved result
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "loader", "error", "message"),
    [
        ("none.json", None, blm.load_fit, DataError, "cannot read a saved fit"),
        ("garbage.json", "{not json", blm.load_fit, DataError, "cannot read a saved fit"),
        ("other.json", '{"formula": 1}', blm.load_fit, DataError, "cannot read a saved fit"),
        ("none.nc", None, blm.load_posterior, BayesLMMError, "no saved posterior"),
        ("garbage.nc", "not netcdf", blm.load_posterior, BayesLMMError, "cannot read a saved"),
    ],
)
def test_loading_a_missing_or_foreign_file(tmp_path, name, content, loader, error, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message):
        loader(path)


def test_loading_a_netcdf_file_that_is_no_posterior(sleep_posterior, tmp_path):
    path = tmp_path / "plain.nc"
    sleep_posterior.idata["posterior"].to_dataset().to_netcdf(path, engine="h5netcdf")
    with pytest.raises(BayesLMMError, match="is not a bayeslmm posterior"):
        blm.load_posterior(path)

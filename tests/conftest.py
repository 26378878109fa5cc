"""Shared fixtures: the lme4 1.1-31 reference results and the fits every capability uses.

Fitted once per session: the REML fits of every reference case, and sleepstudy's
``Reaction ~ Days + (Days | Subject)`` by REML and by a short NUTS run (2 chains x 400).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

import bayeslmm as blm

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_CASES = sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))
SLEEP = "Reaction ~ Days + (Days | Subject)"


def load_reference(case: str) -> dict:
    """One lme4 reference case (formula, dataset, estimates, ...)."""
    with open(REFERENCE_DIR / f"{case}.json") as fh:
        return json.load(fh)


def prior_posterior(model: blm.Model, draws: int, seed: int) -> blm.Posterior:
    """A Posterior holding prior draws of the model's own (latent, non-centred) PyMC model,
    group effects included (no NUTS needed)."""
    import xarray as xr

    from bayeslmm.bayes.priors import resolve_priors

    prior = model.sample_prior_predictive(draws=draws, seed=seed, parameterization="noncentered")
    return blm.Posterior(
        xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()}),
        model.design,
        priors=resolve_priors(model.design),
        parameterization={t.group: "noncentered" for t in model.design.terms},
    )


@pytest.fixture(params=REFERENCE_CASES)
def reference(request) -> dict:
    return load_reference(request.param)


@pytest.fixture(scope="session")
def reference_fits() -> dict[str, tuple[dict, blm.LmerFit]]:
    """Every reference case with bayeslmm's fit of it (REML or ML as the case says)."""
    out = {}
    for case in REFERENCE_CASES:
        ref = load_reference(case)
        model = blm.Model(ref["formula"], blm.load_dataset(ref["dataset"]))
        out[case] = (ref, model.fit_reml(reml=ref["REML"]))
    return out


@pytest.fixture(params=REFERENCE_CASES)
def reference_fit(request, reference_fits) -> tuple[dict, blm.LmerFit]:
    return reference_fits[request.param]


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    return blm.load_dataset("sleepstudy")


@pytest.fixture(scope="session")
def sleep_model(sleepstudy) -> blm.Model:
    return blm.Model(SLEEP, sleepstudy)


@pytest.fixture(scope="session")
def sleep_fit(sleep_model) -> blm.LmerFit:
    return sleep_model.fit_reml()


@pytest.fixture(scope="session")
def sleep_posterior(sleep_model) -> blm.Posterior:
    with warnings.catch_warnings():  # a short run: convergence warnings are expected
        warnings.simplefilter("ignore", blm.ConvergenceWarning)
        return sleep_model.sample(draws=400, tune=400, chains=2, seed=11, cores=1)

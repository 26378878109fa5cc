"""Drawing from the model: NUTS (the posterior), and the prior and prior predictive."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr
from threadpoolctl import threadpool_limits

from .. import names
from ..design import Design
from ..errors import SamplingError
from .io import annotate
from .model import build_pymc_model
from .parameterization import choose_parameterization
from .posterior import Posterior
from .priors import Prior

NUTS_SAMPLERS = ("pymc", "nutpie", "numpyro", "blackjax")
_RESERVED = {
    "random_seed": "seed=",
    "model": "the bayeslmm Model",
    "nuts_sampler_kwargs": "nuts={...}",
    "step": "target_accept= / nuts={...}",
}
_SAMPLER_MODULES = {"nutpie": "nutpie", "numpyro": "numpyro", "blackjax": "blackjax"}


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or :class:`SamplingError` unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SamplingError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_sampler_settings(
    draws: Any,
    tune: Any,
    chains: Any,
    cores: Any,
    target_accept: Any,
    nuts_sampler: Any,
    seed: Any = None,
) -> None:
    """Raise :class:`SamplingError` for settings NUTS cannot run with."""
    if seed is not None:
        check_int("seed", seed, 0)
    check_int("draws", draws, 1)
    check_int("tune", tune, 0)
    check_int("chains", chains, 1)
    if cores is not None:
        check_int("cores", cores, 1)
    if not isinstance(target_accept, float | int) or not 0 < float(target_accept) < 1:
        raise SamplingError(f"target_accept must be in (0, 1), got {target_accept!r}")
    if nuts_sampler not in NUTS_SAMPLERS:
        raise SamplingError(
            f"nuts_sampler must be one of {', '.join(NUTS_SAMPLERS)}, got {nuts_sampler!r}"
        )
    module = _SAMPLER_MODULES.get(nuts_sampler)
    if module is not None and importlib.util.find_spec(module) is None:
        raise SamplingError(
            f"nuts_sampler={nuts_sampler!r} needs the {module!r} package: "
            f"pip install {module} (or use nuts_sampler='pymc')"
        )


def run_nuts(
    pymc_model: pm.Model,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int | None,
    target_accept: float,
    nuts_sampler: str,
    cores: int | None,
    progressbar: bool,
    **kwargs: Any,
) -> xr.DataTree:
    """``pm.sample`` with BLAS limited to one thread (chains run in parallel processes)."""
    check_sampler_settings(draws, tune, chains, cores, target_accept, nuts_sampler, seed)
    for reserved, ours in _RESERVED.items():
        if reserved in kwargs:
            raise SamplingError(f"pass {ours} instead of {reserved!r}")
    nuts = {**kwargs.pop("nuts", {}), "target_accept": float(target_accept)}
    kwargs.setdefault("compute_convergence_checks", False)
    if cores is None:
        # PyMC guesses cpu_count() // 2 (assuming hyper-threads): 1 on a 2-core machine.
        # Use the cores this process may run on; PyMC limits each worker's BLAS to 1 thread.
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        cores = max(1, min(chains, len(usable) if usable else os.cpu_count() or 1, 4))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # our own ConvergenceWarning follows; PyMC's "fewer than 4 chains" note is noise
        warnings.filterwarnings("ignore", message=".*chains.*", category=UserWarning)
        # pip's PyTensor cannot link numpy's bundled BLAS; our models use no dense matmul
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        tree: xr.DataTree = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler=nuts_sampler,
            nuts=nuts,
            progressbar=progressbar,
            model=pymc_model,
            **kwargs,
        )
    return tree


def sample_posterior(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
    **options: Any,
) -> Posterior:
    """Run NUTS on the model of ``design`` (settings checked first), keep what rebuilds it
    with the draws, and check the run (:meth:`Posterior.check_convergence`)."""
    check_sampler_settings(
        options["draws"],
        options["tune"],
        options["chains"],
        options["cores"],
        options["target_accept"],
        options["nuts_sampler"],
        options["seed"],
    )
    idata = run_nuts(build_pymc_model(design, priors, parameterization), **options)
    annotate(idata, design, priors, parameterization, nuts_sampler=options["nuts_sampler"])
    posterior = Posterior(idata, design, priors=priors, parameterization=parameterization)
    posterior.check_convergence(stacklevel=4)
    return posterior


def sample_prior_predictive(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
    draws: int,
    seed: int | None,
) -> xr.DataTree:
    """Draws of every parameter and of ``y`` from the prior (groups prior, prior_predictive)."""
    check_int("draws", draws, 1)
    tree: xr.DataTree = pm.sample_prior_predictive(
        draws=draws, model=build_pymc_model(design, priors, parameterization), random_seed=seed
    )
    return tree


def prior_parameter_draws(
    design: Design, priors: Mapping[str, Prior], n: int, seed: int
) -> dict[str, np.ndarray]:
    """``n`` draws of the parameters from the prior, by PyMC name: ``fixef`` (n, p),
    ``sigma`` (n,), ``sd_g`` (n, k) and ``corr_g`` (n, k, k) (terms with k >= 2).

    The model is the one ``parameterization="auto"`` samples; the parameterisation does
    not change the prior of these variables.
    """
    pymc_model = build_pymc_model(design, priors, choose_parameterization(design))
    variables = [names.FIXEF, names.SIGMA] + [names.sd(t.group) for t in design.terms]
    variables += [names.corr(t.group) for t in design.terms if t.nc > 1]
    shapes: dict[str, tuple[int, ...]] = {names.FIXEF: (design.p,), names.SIGMA: ()}
    for t in design.terms:
        shapes[names.sd(t.group)], shapes[names.corr(t.group)] = (t.nc,), (t.nc, t.nc)
    drawn = pm.draw([pymc_model[v] for v in variables], draws=n, random_seed=seed)
    return {v: np.asarray(a).reshape(n, *shapes[v]) for v, a in zip(variables, drawn, strict=True)}

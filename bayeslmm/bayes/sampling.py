"""Drawing from the model: NUTS (the posterior), and the prior and prior predictive.

The marginal form (the default) is sampled by the package's own compiled NUTS
(:mod:`.marginal`, ``nuts_sampler="bayeslmm"``): no PyMC, no PyTensor compile.  The
latent forms, and the marginal one on request, go through ``pm.sample`` ("pymc",
"nutpie", "numpyro", "blackjax"); a marginal model sampled that way gets its b drawn
exactly afterwards, as the compiled path does.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from .. import names
from ..design import Design
from ..errors import SamplingError
from ..rng import check_seed
from . import io
from .io import annotate
from .parameterization import choose_parameterization, is_compiled_form, latent_terms
from .posterior import Posterior
from .priors import Prior
from .settings import SamplerSettings, check_int

if TYPE_CHECKING:
    import pymc as pm


def run_nuts(pymc_model: pm.Model, settings: SamplerSettings, nuts_sampler: str) -> xr.DataTree:
    """``pm.sample`` with BLAS limited to one thread (chains run in parallel processes)."""
    import pymc as pm

    cores = settings.cores
    if cores is None:
        # PyMC guesses cpu_count() // 2 (assuming hyper-threads): 1 on a 2-core machine.
        # Use the cores this process may run on; PyMC limits each worker's BLAS to 1 thread.
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        cores = max(1, min(settings.chains, len(usable) if usable else os.cpu_count() or 1, 4))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # our own ConvergenceWarning follows; PyMC's "fewer than 4 chains" note is noise
        warnings.filterwarnings("ignore", message=".*chains.*", category=UserWarning)
        # pip's PyTensor cannot link numpy's bundled BLAS; our models use no dense matmul
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        tree: xr.DataTree = pm.sample(
            model=pymc_model,
            nuts_sampler=nuts_sampler,
            cores=cores,
            **settings.pymc_kwargs(nuts_sampler),
        )
    return tree


def resolve_sampler(
    nuts_sampler: str | None, parameterization: Mapping[str, str], priors: Mapping[str, Prior]
) -> str:
    """The sampler to run: ``nuts_sampler``, or by default the compiled one for the marginal
    form with priors it evaluates, else PyMC's."""
    from .marginal import unsupported_prior

    marginal = is_compiled_form(parameterization)
    partial = marginal and set(parameterization.values()) != {"marginal"}
    unsupported = unsupported_prior(priors) if marginal else None
    if partial and nuts_sampler not in (None, "bayeslmm"):
        raise SamplingError(
            "the partially marginal form (some terms integrated out, others sampled) runs on "
            "nuts_sampler='bayeslmm' only: choose parameterization='marginal', 'centered' or "
            "'noncentered' for another sampler"
        )
    if partial and unsupported is not None:
        raise SamplingError(
            f"the partially marginal form's sampler does not evaluate {unsupported}: choose "
            "parameterization='marginal', 'centered' or 'noncentered'"
        )
    if nuts_sampler is None:
        return "bayeslmm" if marginal and unsupported is None else "pymc"
    if nuts_sampler == "bayeslmm":
        if not marginal:
            raise SamplingError(
                "nuts_sampler='bayeslmm' samples the marginal model (b integrated out): use "
                "parameterization='marginal' or 'auto', or another nuts_sampler"
            )
        if unsupported is not None:
            raise SamplingError(
                f"nuts_sampler='bayeslmm' does not evaluate {unsupported}: use "
                "nuts_sampler='pymc' for this prior"
            )
    return nuts_sampler


def sample_posterior(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
    settings: SamplerSettings,
) -> Posterior:
    """Run NUTS on the model of ``design``, keep what rebuilds it with the draws, and
    check the run (:meth:`Posterior.check_convergence`)."""
    sampler = resolve_sampler(settings.nuts_sampler, parameterization, priors)
    if sampler == "bayeslmm":
        from . import marginal

        if settings.extra:
            raise SamplingError(
                "nuts_sampler='bayeslmm' takes no option "
                f"{', '.join(map(repr, sorted(settings.extra)))}; other samplers "
                "(nuts_sampler='pymc') pass options to pm.sample"
            )
        with threadpool_limits(limits=1):
            idata = marginal.sample(
                design, priors, design.coords(), settings,
                latent=latent_terms(design, parameterization),
            )  # fmt: skip
    else:
        from .model import build_pymc_model

        idata = run_nuts(build_pymc_model(design, priors, parameterization), settings, sampler)
        if set(parameterization.values()) == {"marginal"}:
            _add_ranef(idata, design, settings)
    annotate(idata, design, priors, parameterization, nuts_sampler=sampler)
    idata.attrs[io.SEED] = str(settings.seed)
    idata["sample_stats"].attrs.update(
        max_treedepth=settings.max_treedepth, target_accept=settings.target_accept
    )
    posterior = Posterior(idata, design, priors=priors, parameterization=parameterization)
    if settings.log_likelihood and "log_likelihood" not in idata:
        idata["log_likelihood"] = xr.DataTree(dataset=posterior.log_likelihood())
    posterior.check_convergence(stacklevel=4)
    return posterior


def _add_ranef(idata: xr.DataTree, design: Design, settings: SamplerSettings) -> None:
    """Draw b exactly for every draw of a marginal model sampled by PyMC (in place)."""
    from . import marginal

    mm = marginal.build(design, None)
    post = idata["posterior"].to_dataset()
    chains, ndraw = post.sizes["chain"], post.sizes["draw"]
    theta = np.empty((chains, ndraw, mm.dim))
    for c in range(chains):
        for i in range(ndraw):
            point = post.isel(chain=c, draw=i)
            theta[c, i] = marginal.unconstrained(
                mm,
                point[names.FIXEF].to_numpy(),
                [point[names.sd(t.group)].to_numpy() for t in design.terms],
                [
                    point[names.corr(t.group)].to_numpy() if t.nc > 1 else np.eye(1)
                    for t in design.terms
                ],
                float(point[names.SIGMA]),
            )
    cores = marginal.default_cores(chains) if settings.cores is None else settings.cores
    effects = settings.stream("effects")
    ranef = marginal.draw_effects(mm, theta, effects, cores).ranef
    all_coords = design.coords()
    for t, b in zip(design.terms, ranef, strict=True):
        tdim = names.term_dim(t.group)
        post[names.ranef(t.group)] = xr.DataArray(
            b,
            dims=(*names.SAMPLE_DIMS, t.factor, tdim),
            coords={t.factor: all_coords[t.factor], tdim: all_coords[tdim]},
        )
    idata["posterior"] = xr.DataTree(dataset=post)


def sample_prior_predictive(
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
    draws: int,
    seed: int | None,
) -> xr.DataTree:
    """Draws of every parameter and of ``y`` from the prior (groups prior, prior_predictive)."""
    import pymc as pm

    from .model import build_pymc_model

    check_int("draws", draws, 1)
    checked = check_seed(seed, SamplingError, generator=False)
    tree: xr.DataTree = pm.sample_prior_predictive(
        draws=draws, model=build_pymc_model(design, priors, parameterization), random_seed=checked
    )
    return tree


def prior_parameter_draws(
    design: Design, priors: Mapping[str, Prior], n: int, seed: int
) -> dict[str, np.ndarray]:
    """``n`` draws of the parameters from the prior, by PyMC name: ``fixef`` (n, p),
    ``sigma`` (n,), ``sd_g`` (n, k) and ``corr_g`` (n, k, k) (terms with k >= 2).

    The parameterisation does not change the prior of these variables: the marginal model
    is used.
    """
    import pymc as pm

    from .model import build_pymc_model

    pymc_model = build_pymc_model(design, priors, choose_parameterization(design, "marginal"))
    variables = [names.FIXEF, names.SIGMA] + [names.sd(t.group) for t in design.terms]
    variables += [names.corr(t.group) for t in design.terms if t.nc > 1]
    shapes: dict[str, tuple[int, ...]] = {names.FIXEF: (design.p,), names.SIGMA: ()}
    for t in design.terms:
        shapes[names.sd(t.group)], shapes[names.corr(t.group)] = (t.nc,), (t.nc, t.nc)
    drawn = pm.draw([pymc_model[v] for v in variables], draws=n, random_seed=seed)
    return {v: np.asarray(a).reshape(n, *shapes[v]) for v, a in zip(variables, drawn, strict=True)}

"""Posteriors without a sampler: random parameter values around a REML fit, held in the
public vocabulary only (fixef, sigma, sd_g, corr_g, ranef_g), as every sampler's Posterior
holds them.  Exact checks of the exploration functions need draws, not a good posterior."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

import bayeslmm as blm
from bayeslmm import names
from bayeslmm.bayes.priors import resolve_priors


def synthetic_posterior(
    model: blm.Model, chains: int = 2, draws: int = 25, seed: int = 0
) -> blm.Posterior:
    """A Posterior of ``chains`` x ``draws`` random parameter sets near the REML fit, the
    group effects drawn from N(0, Σ) of each set; no sampler variables, no sample_stats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit_reml()
    design = model.design
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    se = fit.fixef_se.to_numpy()
    fixef = fit.fixef.to_numpy() + se * rng.standard_normal((*shape, design.p))
    data = {
        names.FIXEF: (("chain", "draw", names.FIXEF_DIM), fixef),
        names.SIGMA: (("chain", "draw"), fit.sigma * np.exp(0.1 * rng.standard_normal(shape))),
    }
    coords: dict[str, list[str]] = {names.FIXEF_DIM: list(design.fixef_names)}
    vc = fit.varcorr
    for t in design.terms:
        sd0 = vc[(vc.grp == t.group) & vc.var2.isna()].sdcor.to_numpy()
        scale = np.maximum(sd0, 0.1 * fit.sigma)
        sd = scale * np.exp(0.3 * rng.standard_normal((*shape, t.nc)))
        omega = np.broadcast_to(np.eye(t.nc), (*shape, t.nc, t.nc)).copy()
        for j in range(t.nc):
            for i in range(j + 1, t.nc):
                omega[..., i, j] = omega[..., j, i] = rng.uniform(-0.6, 0.6, shape)
        L = sd[..., :, None] * np.linalg.cholesky(omega)
        b = np.einsum("cdkl,cdjl->cdjk", L, rng.standard_normal((*shape, t.nl, t.nc)))
        dim = names.term_dim(t.group)
        coords[dim] = list(t.cnames)
        coords[t.factor] = list(t.levels)
        data[names.sd(t.group)] = (("chain", "draw", dim), sd)
        if t.nc > 1:
            bis = names.term_dim_bis(t.group)
            coords[bis] = list(t.cnames)
            data[names.corr(t.group)] = (("chain", "draw", dim, bis), omega)
        data[names.ranef(t.group)] = (("chain", "draw", t.factor, dim), b)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)})
    return blm.Posterior(
        tree,
        design,
        priors=resolve_priors(design),
        parameterization=dict.fromkeys([t.group for t in design.terms], "synthetic"),
    )


def public_only(post: blm.Posterior) -> blm.Posterior:
    """The same draws with only the public variables (a marginalised sampler's vocabulary:
    no z_g, coef_g, chol_g, Intercept, beta)."""
    keep = [names.FIXEF, names.SIGMA]
    for t in post.design.terms:
        keep += [names.sd(t.group), names.ranef(t.group)]
        if t.nc > 1:
            keep.append(names.corr(t.group))
    ds = post.idata["posterior"].to_dataset()[keep]
    groups = {"posterior": ds}
    if "sample_stats" in post.idata.children:
        groups["sample_stats"] = post.idata["sample_stats"].to_dataset()
    return blm.Posterior(
        xr.DataTree.from_dict(groups),
        post.design,
        priors=post.priors,
        parameterization=post.parameterization,
        ci_prob=post.ci_prob,
        ci_kind=post.ci_kind,
    )

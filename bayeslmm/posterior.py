"""``Posterior``: NUTS draws of a bayeslmm model, summarised in lme4's vocabulary.

Every summary reports, per parameter, the posterior ``mean``, ``sd``, a credible interval
(ArviZ 1.x default: equal-tailed, probability 0.89, columns ``eti89_lb``/``eti89_ub``;
change with :meth:`Posterior.with_ci`), ``r_hat``, ``ess_bulk`` and ``ess_tail``.
``coef`` is computed per draw (``fixef + ranef``) before summarising, as brms does.

A saved posterior (:meth:`Posterior.save`, netCDF or zarr) holds the DataTree plus what
rebuilds the model: the formula, the priors and the parameterisation in the root attrs,
and the model frame in the ``model_frame`` group; :func:`load_posterior` reads it back.
"""

from __future__ import annotations

import json
import warnings
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from . import names
from .bayes import Prior, build_pymc_model
from .errors import BayesLMMError, ConvergenceWarning

if TYPE_CHECKING:
    from .design import Design
    from .model import Model

CIKind = names.CIKind

#: thresholds of the post-sampling checks
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


class _Draws(xr.Dataset):
    """The posterior Dataset, also callable: ``draws("fixef")`` is ``draws["fixef"]``."""

    __slots__ = ()

    def __call__(self, name: str) -> xr.DataArray:
        if name not in self.data_vars:
            raise KeyError(f"no posterior variable {name!r}; have {', '.join(self.data_vars)}")
        return self[name]


class Posterior:
    """Posterior draws of a :class:`~bayeslmm.model.Model` and their summaries.

    Attributes: ``idata`` (the ArviZ DataTree), ``model`` (the bayeslmm Model), ``priors``
    (the priors used), ``parameterization`` (per term group), ``ci_prob``, ``ci_kind``.
    """

    def __init__(
        self,
        idata: xr.DataTree,
        model: Model,
        *,
        priors: dict[str, Prior],
        parameterization: dict[str, str],
        ci_prob: float = names.DEFAULT_CI_PROB,
        ci_kind: CIKind = names.DEFAULT_CI_KIND,
    ):
        if ci_kind not in ("eti", "hdi"):
            raise BayesLMMError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
        if not 0 < ci_prob < 1:
            raise BayesLMMError(f"ci_prob must be in (0, 1), got {ci_prob}")
        self.idata = idata
        self.model = model
        self.priors = dict(priors)
        self.parameterization = dict(parameterization)
        self.ci_prob = float(ci_prob)
        self.ci_kind = ci_kind
        post = idata["posterior"].to_dataset()
        self._draws = _Draws(dict(post.data_vars), coords=post.coords, attrs=post.attrs)

    # -- plumbing ---------------------------------------------------------------------
    @property
    def design(self) -> Design:
        return self.model.design

    @property
    def draws(self) -> _Draws:
        """Raw draws with named dims: ``draws("fixef")`` or ``draws["sd_Subject"]``."""
        return self._draws

    def with_ci(self, prob: float | None = None, kind: CIKind | None = None) -> Posterior:
        """The same draws, summarised with another interval probability or kind."""
        return Posterior(
            self.idata,
            self.model,
            priors=self.priors,
            parameterization=self.parameterization,
            ci_prob=self.ci_prob if prob is None else prob,
            ci_kind=self.ci_kind if kind is None else kind,
        )

    def __repr__(self) -> str:
        d = self.diagnostics
        return (
            f"Posterior({self.design.formula!r}; {d['chains']} chains x {d['draws']} draws, "
            f"divergences={d['divergences']}, max r_hat={d['max_r_hat']:.3f})"
        )

    @property
    def _ci_columns(self) -> tuple[str, str]:
        return names.ci_columns(self.ci_kind, self.ci_prob)

    def _summarise(self, da: xr.DataArray, index: pd.Index) -> pd.DataFrame:
        """Summary rows of draws with dims (chain, draw, param)."""
        da = da.transpose("chain", "draw", ...)
        if da.ndim == 2:
            da = da.expand_dims("param", axis=2)
        values = da.to_numpy()
        flat = values.reshape(-1, values.shape[2])
        lb, ub = self._ci_columns
        plain = xr.DataArray(values, dims=("chain", "draw", "param"))
        interval = (az.eti if self.ci_kind == "eti" else az.hdi)(plain, prob=self.ci_prob)
        return pd.DataFrame(
            {
                "mean": flat.mean(axis=0),
                "sd": flat.std(axis=0, ddof=1),
                lb: interval.sel(ci_bound="lower").to_numpy(),
                ub: interval.sel(ci_bound="upper").to_numpy(),
                "r_hat": az.rhat(plain).to_numpy(),
                "ess_bulk": az.ess(plain, method="bulk").to_numpy(),
                "ess_tail": az.ess(plain, method="tail").to_numpy(),
            },
            index=index,
        )

    # -- lme4 vocabulary --------------------------------------------------------------
    @property
    def fixef(self) -> pd.DataFrame:
        """Fixed effects on the original scale, indexed by the fixef names."""
        return self._summarise(self._draws["fixef"], pd.Index(self.design.fixef_names, name="term"))

    @property
    def sigma(self) -> pd.Series:
        """Residual SD: one summary row."""
        return self._summarise(self._draws["sigma"], pd.Index(["sigma"])).iloc[0]

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Per factor: summaries of the deviations b, indexed by (level, term)."""
        out = {}
        for factor in self.design.group_factors:
            parts = [
                self._draws[f"ranef_{t.group}"].rename({f"{t.group}__term": "term"})
                for t in self.design.factor_terms(factor)
            ]
            da = xr.concat(parts, dim="term").stack(param=(factor, "term"))
            index = pd.MultiIndex.from_tuples(list(da.indexes["param"]), names=[factor, "term"])
            out[factor] = self._summarise(da.drop_vars(["param", factor, "term"]), index)
        return out

    def coef_draws(self, factor: str) -> xr.DataArray:
        """Per-draw coefficients β + b of each level: dims (chain, draw, factor, term).

        Columns: every fixed effect (b = 0 where the factor has no such random column),
        then random-only columns (β = 0), as lme4's ``coef``.
        """
        terms = self.design.factor_terms(factor)
        if not terms:
            raise BayesLMMError(
                f"unknown grouping factor {factor!r}; have {', '.join(self.design.group_factors)}"
            )
        names = list(self.design.fixef_names)
        names += [c for t in terms for c in t.cnames if c not in names]
        fixef = self._draws["fixef"]
        zero = xr.zeros_like(
            self._draws[f"ranef_{terms[0].group}"].isel({f"{terms[0].group}__term": 0}, drop=True)
        )
        parts = []
        for name in names:
            total = zero
            if name in self.design.fixef_names:
                total = total + fixef.sel(fixef__term=name, drop=True)
            for t in terms:
                if name in t.cnames:
                    total = total + self._draws[f"ranef_{t.group}"].sel(
                        {f"{t.group}__term": name}, drop=True
                    )
            parts.append(total)
        coef = xr.concat(parts, dim=pd.Index(names, name="term"))
        return coef.transpose("chain", "draw", factor, "term")

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per factor: summaries of β + b computed per draw, indexed by (level, term)."""
        out = {}
        for factor in self.design.group_factors:
            da = self.coef_draws(factor).stack(param=(factor, "term"))
            index = pd.MultiIndex.from_tuples(list(da.indexes["param"]), names=[factor, "term"])
            out[factor] = self._summarise(da.drop_vars(["param", factor, "term"]), index)
        return out

    @property
    def varcorr(self) -> pd.DataFrame:
        """SDs and correlations keyed ``grp``, ``var1``, ``var2`` as the REML varcorr.

        Per term group: one row per SD, then one per correlation (lower triangle,
        column-wise: ``var1`` = column name, ``var2`` = row name), then ``Residual``.
        """
        keys, series = [], []
        for t in self.design.terms:
            g, c = t.group, t.cnames
            sd = self._draws[f"sd_{g}"]
            for name in c:
                keys.append((g, name, None))
                series.append(sd.sel({f"{g}__term": name}, drop=True))
            for j in range(len(c)):
                for i in range(j + 1, len(c)):
                    keys.append((g, c[j], c[i]))
                    series.append(
                        self._draws[f"corr_{g}"].sel(
                            {f"{g}__term": c[i], f"{g}__term_bis": c[j]}, drop=True
                        )
                    )
        keys.append(("Residual", None, None))
        series.append(self._draws["sigma"])
        da = xr.concat(series, dim="param").transpose("chain", "draw", "param")
        stats = self._summarise(da, pd.RangeIndex(len(keys)))
        for i, col in enumerate(["grp", "var1", "var2"]):
            stats.insert(i, col, pd.Series([k[i] for k in keys], dtype=object))
        return stats

    # -- diagnostics ------------------------------------------------------------------
    def _parameter_draws(self) -> xr.Dataset:
        """The model's parameters (fixef, sigma, SDs, correlations; not ranef/z/chol)."""
        names = ["fixef", "sigma"] + [f"sd_{t.group}" for t in self.design.terms]
        names += [f"corr_{t.group}" for t in self.design.terms if t.nc > 1]
        ds = self._draws[names]
        # a correlation matrix's diagonal is constant 1: its r_hat/ess are undefined
        for t in self.design.terms:
            if t.nc > 1:
                corr = ds[f"corr_{t.group}"]
                lower = np.tril(np.ones((t.nc, t.nc), bool), -1)
                mask = xr.DataArray(lower, dims=corr.dims[-2:])
                ds[f"corr_{t.group}"] = corr.where(mask)
        return ds

    @cached_property
    def diagnostics(self) -> dict[str, Any]:
        """Divergences, max r_hat and min bulk/tail ESS over every parameter and ranef."""
        stats = self.idata["sample_stats"].to_dataset()
        ds = self._parameter_draws()
        ranef = self._draws[[f"ranef_{t.group}" for t in self.design.terms]]
        both = xr.merge([ds, ranef], compat="override", join="outer")
        rhat = az.rhat(both)
        ess_bulk = az.ess(both, method="bulk")
        ess_tail = az.ess(both, method="tail")

        def extreme(d: xr.Dataset, fn) -> float:
            vals = np.concatenate([np.ravel(v) for v in d.data_vars.values()])
            vals = vals[np.isfinite(vals)]
            return float(fn(vals)) if len(vals) else float("nan")

        return {
            "divergences": int(stats["diverging"].sum()),
            "max_r_hat": extreme(rhat, np.max),
            "min_ess_bulk": extreme(ess_bulk, np.min),
            "min_ess_tail": extreme(ess_tail, np.min),
            "chains": int(self._draws.sizes["chain"]),
            "draws": int(self._draws.sizes["draw"]),
            "sampling_time": float(stats.attrs.get("sampling_time", np.nan)),
        }

    def check_convergence(self, *, stacklevel: int = 2) -> list[str]:
        """Problems found by the diagnostics, also issued as one :class:`ConvergenceWarning`."""
        d = self.diagnostics
        problems = []
        if d["divergences"]:
            problems.append(
                f"{d['divergences']} divergent transitions: raise target_accept (e.g. 0.95), "
                "or try parameterization='noncentered' (few observations per group) / "
                "'centered' (many)"
            )
        if d["max_r_hat"] > RHAT_MAX:
            problems.append(
                f"max r_hat = {d['max_r_hat']:.3f} > {RHAT_MAX}: chains disagree; run more tune "
                "and draws, or switch parameterization"
            )
        ess_min = ESS_PER_CHAIN_MIN * d["chains"]
        if min(d["min_ess_bulk"], d["min_ess_tail"]) < ess_min:
            problems.append(
                f"min ESS (bulk {d['min_ess_bulk']:.0f}, tail {d['min_ess_tail']:.0f}) < "
                f"{ess_min} ({ESS_PER_CHAIN_MIN} per chain): draw more, raise tune"
            )
        if problems:
            problems.append(
                "check the REML fit (model.fit_reml()) for a singular variance component: a "
                "variance near 0 makes the posterior hard to explore"
            )
            warnings.warn(
                "NUTS did not converge cleanly:\n  - " + "\n  - ".join(problems),
                ConvergenceWarning,
                stacklevel=stacklevel,
            )
        return problems

    # -- text -------------------------------------------------------------------------
    def summary(self) -> str:
        """An lme4-like summary: random effects, fixed effects and diagnostics."""
        d = self.design
        lb, ub = self._ci_columns
        ngr = ", ".join(f"{k}, {v}" for k, v in d.ngroups.items())
        sampler = self.idata.attrs.get("nuts_sampler", "pymc")
        lines = [
            f"Bayesian linear mixed model fit by NUTS ({sampler})",
            f"Formula: {d.formula}",
            f"Number of obs: {d.nobs}, groups:  {ngr}",
            *d.missing_note,
            f"Draws: {self.diagnostics['chains']} chains x {self.diagnostics['draws']}; "
            f"intervals: {self.ci_kind.upper()} {self.ci_prob:g}",
            "",
            "Random effects (posterior of SDs and correlations):",
        ]
        vc = self.varcorr
        cols = ["mean", "sd", lb, ub, "r_hat", "ess_bulk"]
        vc_show = vc.assign(
            Groups=vc.grp,
            Name=[a if pd.isna(b) else f"corr({a}, {b})" for a, b in zip(vc.var1, vc.var2)],
        )
        vc_show.loc[vc_show.grp == "Residual", "Name"] = "sigma"
        lines.append(_fmt(vc_show.set_index(["Groups", "Name"])[cols]))
        lines += ["", "Fixed effects:", _fmt(self.fixef[cols]), ""]
        diag = self.diagnostics
        lines.append(
            f"Diagnostics: divergences={diag['divergences']}, max r_hat={diag['max_r_hat']:.3f}, "
            f"min ess_bulk={diag['min_ess_bulk']:.0f}, min ess_tail={diag['min_ess_tail']:.0f}"
        )
        lines.append(
            "Parameterisation: " + ", ".join(f"{g}: {p}" for g, p in self.parameterization.items())
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # -- prediction and persistence ---------------------------------------------------
    def sample_posterior_predictive(self, seed: int | None = None) -> xr.DataTree:
        """Replicated ``y`` for every posterior draw (group ``posterior_predictive``)."""
        import pymc as pm

        pymc_model = build_pymc_model(self.design, self.priors, self.parameterization)
        return pm.sample_posterior_predictive(
            self.idata, model=pymc_model, random_seed=seed, progressbar=False
        )

    def save(self, path: str | Path) -> Path:
        """Write the DataTree (netCDF; zarr when ``path`` ends in ``.zarr``)."""
        path = Path(path)
        tree = self.idata.copy()
        tree.attrs = {k: v for k, v in tree.attrs.items() if _attr_ok(v)}
        tree.attrs.update({"bayeslmm_ci_prob": self.ci_prob, "bayeslmm_ci_kind": self.ci_kind})
        for node in tree.subtree:
            ds = node.to_dataset()
            objects = [v for v in ds.data_vars if ds[v].dtype == object]
            if objects:  # e.g. nutpie's divergence messages (None or text)
                node.dataset = ds.assign({v: ds[v].astype(str) for v in objects})
        if path.suffix == ".zarr":
            tree.to_zarr(path, mode="w")
        else:
            tree.to_netcdf(path, engine="h5netcdf")
        return path


def _attr_ok(value: Any) -> bool:
    return isinstance(value, str | int | float | np.number | np.ndarray | list | tuple)


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(float_format=lambda x: f"{x:.4g}")


# --------------------------------------------------------------------------------------
# model frame <-> DataTree group
# --------------------------------------------------------------------------------------


def frame_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """The model frame as a Dataset (dim ``row``); categorical levels kept in attrs."""
    data_vars = {}
    for i, col in enumerate(frame.columns):
        s = frame[col]
        attrs = {"name": str(col)}
        if isinstance(s.dtype, pd.CategoricalDtype):
            attrs["categories"] = json.dumps([str(c) for c in s.cat.categories])
            values = s.astype(str).to_numpy(dtype=str)
        elif pd.api.types.is_bool_dtype(s):
            attrs["kind"] = "bool"
            values = s.to_numpy(dtype=np.int8)
        elif pd.api.types.is_numeric_dtype(s):
            values = s.to_numpy()
        else:
            values = s.astype(str).to_numpy(dtype=str)
        data_vars[f"col{i}"] = xr.DataArray(values, dims="row", attrs=attrs)
    return xr.Dataset(data_vars)


def dataset_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Inverse of :func:`frame_to_dataset`."""
    cols = {}
    for i in range(len(ds.data_vars)):
        da = ds[f"col{i}"]
        values = da.to_numpy()
        if "categories" in da.attrs:
            col = pd.Categorical(values.astype(str), categories=json.loads(da.attrs["categories"]))
        elif da.attrs.get("kind") == "bool":
            col = values.astype(bool)
        elif values.dtype.kind in "OSU":
            col = values.astype(str).astype(object)
        else:
            col = values
        cols[da.attrs["name"]] = col
    return pd.DataFrame(cols)


def load_posterior(path: str | Path) -> Posterior:
    """Read a posterior written by :meth:`Posterior.save`, rebuilding its Model."""
    from .model import Model

    path = Path(path)
    if not path.exists():
        raise BayesLMMError(f"no saved posterior at {path}")
    engine = "zarr" if path.suffix == ".zarr" or path.is_dir() else "h5netcdf"
    try:
        tree = xr.open_datatree(path, engine=engine).load()
    except (OSError, ValueError, ImportError) as exc:
        raise BayesLMMError(f"cannot read a saved posterior from {path}: {exc}") from None
    attrs = tree.attrs
    if "bayeslmm_formula" not in attrs or "model_frame" not in tree.children:
        raise BayesLMMError(f"{path} is not a bayeslmm posterior (no formula / model frame)")
    frame = dataset_to_frame(tree["model_frame"].to_dataset())
    priors_raw = json.loads(attrs["bayeslmm_priors"])
    priors = {k: Prior(d, a, r) for k, (d, a, r) in priors_raw.items()}
    model = Model(attrs["bayeslmm_formula"], frame)
    return Posterior(
        tree,
        model,
        priors=priors,
        parameterization=json.loads(attrs["bayeslmm_parameterization"]),
        ci_prob=float(attrs.get("bayeslmm_ci_prob", 0.89)),
        ci_kind=attrs.get("bayeslmm_ci_kind", "eti"),
    )

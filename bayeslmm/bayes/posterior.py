"""``Posterior``: NUTS draws of a model, answered in LmerFit's vocabulary.

Every summary reports, per parameter, the posterior ``mean``, ``sd``, a credible interval
(ArviZ 1.x default: equal-tailed, probability 0.89, columns ``eti89_lb``/``eti89_ub``;
change with :meth:`Posterior.with_ci`), ``r_hat``, ``ess_bulk`` and ``ess_tail``
(:func:`~bayeslmm.bayes.summary.summarize`).  ``coef`` is computed per draw
(``fixef + ranef``) before summarising, as brms does.  :meth:`Posterior.point_estimate`
gives the posterior means (or medians) in the REML fit's shapes; docs/vocabulary.md lines
the two results up name by name.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from .. import names
from ..design import Design, lower_triangle
from ..errors import BayesLMMError, ConvergenceWarning
from ..rng import rng_from, seed_stream
from . import io
from .health import SamplerHealth, sampler_health
from .priors import Prior
from .summary import diagnose, summarize

#: thresholds of the post-sampling checks
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
#: the statistics of the Posterior's own tables
_TABLE_STATS = ("mean", "sd", "ci", "r_hat", "ess_bulk", "ess_tail")
#: ``varcorr``'s key columns
_KEYS = ("grp", "var1", "var2")


class _Draws(xr.Dataset):
    """The posterior Dataset, also callable: ``draws("fixef")`` is ``draws["fixef"]``."""

    __slots__ = ()

    def __call__(self, name: str) -> xr.DataArray:
        if name not in self.data_vars:
            have = ", ".join(str(v) for v in self.data_vars)
            raise KeyError(f"no posterior variable {name!r}; have {have}")
        return self[name]


@dataclass(frozen=True)
class Diagnostics:
    """The sampler's health over every parameter and group effect.

    divergences: divergent transitions; max_r_hat, min_ess_bulk, min_ess_tail: the worst
    r_hat and ESS (correlation diagonals left out); chains, draws: per chain;
    sampling_time: seconds (NaN when the sampler did not record it); sampler: tree-depth
    saturation, E-BFMI per chain, acceptance, step size and the warm-up's alarms
    (:class:`~bayeslmm.bayes.health.SamplerHealth`).
    """

    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    chains: int
    draws: int
    sampling_time: float
    sampler: SamplerHealth | None = None


@dataclass(frozen=True)
class PointEstimate:
    """Posterior means (or medians) in :class:`~bayeslmm.reml.fit.LmerFit`'s shapes.

    ``fixef`` Series by fixef name; ``sigma`` float; ``varcorr`` R's
    ``as.data.frame(VarCorr())`` layout (grp, var1, var2, vcov, sdcor: ``sdcor`` the
    statistic of each SD and correlation, ``vcov`` derived from them); ``ranef`` and
    ``coef``: factor -> levels x columns.  Each quantity is its own statistic (``coef``
    per draw, so a median ``coef`` need not be ``fixef + ranef``).
    """

    stat: str
    fixef: pd.Series
    sigma: float
    varcorr: pd.DataFrame
    ranef: dict[str, pd.DataFrame]
    coef: dict[str, pd.DataFrame]


class Posterior:
    """Posterior draws of the model of a :class:`~bayeslmm.design.Design` and their summaries.

    Attributes: ``idata`` (the ArviZ DataTree), ``design``, ``priors`` (the priors used),
    ``parameterization`` (per term group), ``ci_prob``, ``ci_kind``.
    """

    def __init__(
        self,
        idata: xr.DataTree,
        design: Design,
        *,
        priors: Mapping[str, Prior],
        parameterization: Mapping[str, str],
        ci_prob: float = names.DEFAULT_CI_PROB,
        ci_kind: str = names.DEFAULT_CI_KIND,
    ):
        if ci_kind not in names.CI_KINDS:
            raise BayesLMMError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
        if not 0 < ci_prob < 1:
            raise BayesLMMError(f"ci_prob must be in (0, 1), got {ci_prob}")
        self.idata = idata
        self.design = design
        self.priors = dict(priors)
        self.parameterization = dict(parameterization)
        self.ci_prob = float(ci_prob)
        self.ci_kind = ci_kind
        post = idata["posterior"].to_dataset()
        self._draws = _Draws(dict(post.data_vars), coords=post.coords, attrs=post.attrs)

    # -- plumbing ---------------------------------------------------------------------
    @property
    def draws(self) -> _Draws:
        """Raw draws by PyMC name (:mod:`bayeslmm.names`): ``draws("fixef")``."""
        return self._draws

    def with_ci(self, prob: float | None = None, kind: str | None = None) -> Posterior:
        """The same draws, summarised with another interval probability or kind."""
        return Posterior(
            self.idata,
            self.design,
            priors=self.priors,
            parameterization=self.parameterization,
            ci_prob=self.ci_prob if prob is None else prob,
            ci_kind=self.ci_kind if kind is None else kind,
        )

    def __repr__(self) -> str:
        d = self.diagnostics
        return (
            f"Posterior({self.design.formula!r}; {d.chains} chains x {d.draws} draws, "
            f"divergences={d.divergences}, max r_hat={d.max_r_hat:.3f})"
        )

    @property
    def ci_columns(self) -> tuple[str, str]:
        """The interval's column names, e.g. ``("eti89_lb", "eti89_ub")``."""
        return names.ci_columns(self.ci_kind, self.ci_prob)

    def _summarize(self, draws: xr.DataArray, index: pd.Index) -> pd.DataFrame:
        return summarize(draws, index, kind=self.ci_kind, prob=self.ci_prob, stats=_TABLE_STATS)

    # -- draws in the shared vocabulary -------------------------------------------------
    @cached_property
    def _parameter_draws(self) -> xr.DataArray:
        ds = self._draws
        parts = []
        for p in self.design.parameters:
            if p.kind == "fixef":
                da = ds[names.FIXEF].sel({names.FIXEF_DIM: p.var1})
            elif p.kind == "sd":
                assert p.grp is not None
                da = ds[names.sd(p.grp)].sel({names.term_dim(p.grp): p.var1})
            elif p.kind == "corr":
                assert p.grp is not None
                dims = {names.term_dim(p.grp): p.var2, names.term_dim_bis(p.grp): p.var1}
                da = ds[names.corr(p.grp)].sel(dims)
            else:
                da = ds[names.SIGMA]
            parts.append(da.drop_vars(list(da.coords), errors="ignore"))
        labels = pd.Index([p.label for p in self.design.parameters], name="parameter")
        return xr.concat(parts, dim=labels).transpose(*names.SAMPLE_DIMS, "parameter")

    def parameter_draws(self) -> xr.DataArray:
        """Draws of every scalar parameter: dims (chain, draw, parameter), labelled as
        :func:`~bayeslmm.compare` labels them (``fixef[Days]``, ``sd_Subject[Days]``,
        ``corr_Subject[(Intercept), Days]``, ``sigma``)."""
        return self._parameter_draws

    def _check_factor(self, factor: str) -> None:
        if factor not in self.design.group_factors:
            raise BayesLMMError(
                f"unknown grouping factor {factor!r}; have {', '.join(self.design.group_factors)}"
            )

    def ranef_draws(self, factor: str) -> xr.DataArray:
        """Per-draw group effects b: dims (chain, draw, factor, term), the factor's
        columns side by side as ``LmerFit.ranef`` has them."""
        self._check_factor(factor)
        parts = [
            self._draws[names.ranef(t.group)].rename({names.term_dim(t.group): "term"})
            for t in self.design.factor_terms(factor)
        ]
        return xr.concat(parts, dim="term").transpose(*names.SAMPLE_DIMS, factor, "term")

    def coef_draws(self, factor: str) -> xr.DataArray:
        """Per-draw coefficients β + b of each level: dims (chain, draw, factor, term).

        Columns: every fixed effect (b = 0 where the factor has no such random column),
        then random-only columns (β = 0), as lme4's ``coef``.
        """
        b = self.ranef_draws(factor)
        fixef = self._draws[names.FIXEF]
        columns = list(self.design.fixef_names)
        columns += [c for c in self.design.factor_columns(factor) if c not in columns]
        parts = []
        for name in columns:
            total = xr.zeros_like(b.isel(term=0, drop=True))
            if name in self.design.fixef_names:
                total = total + fixef.sel({names.FIXEF_DIM: name}, drop=True)
            in_b = [i for i, c in enumerate(b.coords["term"].values) if c == name]
            for i in in_b:
                total = total + b.isel(term=i, drop=True)
            parts.append(total)
        coef = xr.concat(parts, dim=pd.Index(columns, name="term"))
        return coef.transpose(*names.SAMPLE_DIMS, factor, "term")

    # -- LmerFit's vocabulary ---------------------------------------------------------------
    def _parameters(self, kinds: tuple[str, ...]) -> tuple[list[names.Parameter], xr.DataArray]:
        params = [p for p in self.design.parameters if p.kind in kinds]
        return params, self._parameter_draws.sel(parameter=[p.label for p in params])

    @property
    def fixef(self) -> pd.DataFrame:
        """Fixed effects on the original scale, indexed by the fixef names."""
        _, draws = self._parameters(("fixef",))
        return self._summarize(draws, pd.Index(self.design.fixef_names, name="term"))

    @property
    def sigma(self) -> pd.Series:
        """Residual SD: one summary row."""
        _, draws = self._parameters(("sigma",))
        return self._summarize(draws, pd.Index([names.SIGMA])).iloc[0]

    @property
    def varcorr(self) -> pd.DataFrame:
        """SDs and correlations keyed ``grp``, ``var1``, ``var2`` as ``LmerFit.varcorr``,
        with ``sdcor`` the posterior mean, then the summary columns.

        Per term group: one row per SD, then one per correlation (lower triangle,
        column-wise: ``var1`` = column name, ``var2`` = row name), then ``Residual``.
        """
        params, draws = self._parameters(("sd", "corr", "sigma"))
        stats = self._summarize(draws, pd.RangeIndex(len(params)))
        stats.insert(0, "sdcor", stats["mean"])
        for i, key in enumerate(_KEYS):
            stats.insert(i, key, pd.Series([getattr(p, key) for p in params], dtype=object))
        return stats

    @property
    def theta(self) -> pd.DataFrame:
        """θ = vech(T_g) with σ²T_gT_gᵀ = Σ_g (lme4's relative covariance factor, T_g the
        Cholesky factor), per draw: indexed by lme4's θ names."""
        design = self.design
        sigma = self._draws[names.SIGMA].transpose(*names.SAMPLE_DIMS).to_numpy()
        parts = []
        for t in design.terms:
            sd = self._draws[names.sd(t.group)].transpose(*names.SAMPLE_DIMS, ...).to_numpy()
            if t.nc == 1:
                parts.append(sd / sigma[..., None])
                continue
            corr = self._draws[names.corr(t.group)].transpose(*names.SAMPLE_DIMS, ...)
            cov = sd[..., :, None] * corr.to_numpy() * sd[..., None, :]
            T = np.linalg.cholesky(cov) / sigma[..., None, None]
            rows, cols = lower_triangle(t.nc)
            parts.append(T[..., rows, cols])
        theta = xr.DataArray(np.concatenate(parts, axis=-1), dims=(*names.SAMPLE_DIMS, "theta"))
        return self._summarize(theta, pd.Index(design.theta_names, name="theta"))

    def _by_level(self, factor: str, draws: xr.DataArray) -> pd.DataFrame:
        index = pd.MultiIndex.from_product(
            [list(draws.coords[factor].values), list(draws.coords["term"].values)],
            names=[factor, "term"],
        )
        return self._summarize(draws, index)

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Per factor: summaries of the deviations b, indexed by (level, term)."""
        return {f: self._by_level(f, self.ranef_draws(f)) for f in self.design.group_factors}

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per factor: summaries of β + b computed per draw, indexed by (level, term)."""
        return {f: self._by_level(f, self.coef_draws(f)) for f in self.design.group_factors}

    @property
    def conditional_sd(self) -> dict[str, pd.DataFrame]:
        """Posterior SDs of b, factor -> levels x columns: the layout of ``LmerFit``'s."""
        return {
            f: _table(self.ranef_draws(f).std(names.SAMPLE_DIMS, ddof=1))
            for f in self.design.group_factors
        }

    def point_estimate(self, stat: Literal["mean", "median"] = "mean") -> PointEstimate:
        """The posterior mean (or median) of every quantity, in the REML fit's shapes."""
        if stat not in ("mean", "median"):
            raise BayesLMMError(f"stat must be 'mean' or 'median', got {stat!r}")

        def reduce(da: xr.DataArray) -> xr.DataArray:
            return getattr(da, stat)(names.SAMPLE_DIMS)

        values = reduce(self._parameter_draws).to_series()
        design = self.design
        fixef = pd.Series(
            [values[names.fixef_label(c)] for c in design.fixef_names],
            index=list(design.fixef_names),
            name="fixef",
        )
        params = [p for p in design.parameters if p.kind != "fixef"]
        sdcor = np.array([values[p.label] for p in params], dtype=float)
        sd = {(p.grp, p.var1): values[p.label] for p in params if p.kind != "corr"}
        vcov = [  # SDs and sigma square; a correlation times the two SDs is a covariance
            r * sd[(p.grp, p.var1)] * sd[(p.grp, p.var2)] if p.kind == "corr" else r**2
            for p, r in zip(params, sdcor, strict=True)
        ]
        varcorr = pd.DataFrame(
            {
                **{k: pd.Series([getattr(p, k) for p in params], dtype=object) for k in _KEYS},
                "vcov": np.asarray(vcov, dtype=float),
                "sdcor": sdcor,
            }
        )
        return PointEstimate(
            stat=stat,
            fixef=fixef,
            sigma=float(values[names.SIGMA]),
            varcorr=varcorr,
            ranef={f: _table(reduce(self.ranef_draws(f))) for f in design.group_factors},
            coef={f: _table(reduce(self.coef_draws(f))) for f in design.group_factors},
        )

    @property
    def integrated_fixef(self) -> bool:
        """Whether the sampler integrated the fixed effects out with the random effects
        (Normal priors, the compiled marginal sampler) and drew them afterwards."""
        stats = self.idata.children.get("sample_stats")
        return stats is not None and bool(stats.attrs.get("integrated_fixef", 0))

    # -- diagnostics ------------------------------------------------------------------
    @cached_property
    def diagnostics(self) -> Diagnostics:
        """Divergences, max r_hat and min bulk/tail ESS over every parameter and ranef."""
        stats = self.idata["sample_stats"].to_dataset()
        draws = [self._parameter_draws] + [self.ranef_draws(f) for f in self.design.group_factors]
        chains, length = self._parameter_draws.shape[:2]
        values = np.concatenate([d.to_numpy().reshape(chains, length, -1) for d in draws], axis=2)
        rhat, ess_bulk, ess_tail = diagnose(values)

        def extreme(values: np.ndarray, fn: Literal["max", "min"]) -> float:
            values = values[np.isfinite(values)]
            return float(getattr(np, fn)(values)) if len(values) else float("nan")

        return Diagnostics(
            divergences=int(stats["diverging"].sum()),
            max_r_hat=extreme(rhat, "max"),
            min_ess_bulk=extreme(ess_bulk, "min"),
            min_ess_tail=extreme(ess_tail, "min"),
            chains=int(self._draws.sizes["chain"]),
            draws=int(self._draws.sizes["draw"]),
            sampling_time=float(stats.attrs.get("sampling_time", np.nan)),
            sampler=sampler_health(stats),
        )

    def check_convergence(self, *, stacklevel: int = 2) -> list[str]:
        """Problems found by the diagnostics, also issued as one :class:`ConvergenceWarning`."""
        d = self.diagnostics
        problems = []
        marginal = set(self.parameterization.values()) == {"marginal"}
        if d.divergences:
            problems.append(
                f"{d.divergences} divergent transitions: raise target_accept (e.g. 0.99)"
                + (
                    ""
                    if marginal
                    else ", or try parameterization='marginal' (b integrated out), or "
                    "'noncentered' (few observations per group) / 'centered' (many)"
                )
            )
        if d.max_r_hat > RHAT_MAX:
            problems.append(
                f"max r_hat = {d.max_r_hat:.3f} > {RHAT_MAX}: chains disagree; run more tune "
                "and draws" + ("" if marginal else ", or try parameterization='marginal'")
            )
        if d.sampler is not None:
            problems += d.sampler.problems()
        ess_min = ESS_PER_CHAIN_MIN * d.chains
        if min(d.min_ess_bulk, d.min_ess_tail) < ess_min:
            problems.append(
                f"min ESS (bulk {d.min_ess_bulk:.0f}, tail {d.min_ess_tail:.0f}) < "
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
        lb, ub = self.ci_columns
        ngr = ", ".join(f"{k}, {v}" for k, v in d.ngroups.items())
        sampler = self.idata.attrs.get(io.SAMPLER, "pymc")
        diag = self.diagnostics
        lines = [
            f"Bayesian linear mixed model fit by NUTS ({sampler})",
            f"Formula: {d.formula}",
            f"Number of obs: {d.nobs}, groups:  {ngr}",
            *d.missing_note,
            *d.weight_offset_note,
            f"Draws: {diag.chains} chains x {diag.draws}; "
            f"intervals: {self.ci_kind.upper()} {self.ci_prob:g}",
            "",
            "Random effects (posterior of SDs and correlations):",
        ]
        vc = self.varcorr
        cols = ["mean", "sd", lb, ub, "r_hat", "ess_bulk"]
        label = [
            a if pd.isna(b) else f"corr({a}, {b})" for a, b in zip(vc.var1, vc.var2, strict=True)
        ]
        vc_show = vc.assign(Groups=vc.grp, Name=label)
        vc_show.loc[vc_show.grp == names.RESIDUAL, "Name"] = names.SIGMA
        lines.append(_fmt(vc_show.set_index(["Groups", "Name"])[cols]))
        lines += ["", "Fixed effects:", _fmt(self.fixef[cols]), ""]
        lines.append(
            f"Diagnostics: divergences={diag.divergences}, max r_hat={diag.max_r_hat:.3f}, "
            f"min ess_bulk={diag.min_ess_bulk:.0f}, min ess_tail={diag.min_ess_tail:.0f}"
        )
        if diag.sampler is not None:
            lines.append(diag.sampler.describe())
        lines.append(
            "Parameterisation: " + ", ".join(f"{g}: {p}" for g, p in self.parameterization.items())
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # -- prediction and persistence ---------------------------------------------------
    def _conditional_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Xβ + offset + Σ_t Z_t b_t per draw (chain, draw, obs), and each row's residual
        SD (chain, draw, obs): σ, or σ/sqrt(w_i) with weights."""
        design = self.design
        fixef = self._draws[names.FIXEF].transpose(*names.SAMPLE_DIMS, ...).to_numpy()
        mu = fixef @ design.X.T
        if design.offset is not None:
            mu += design.offset
        for t in design.terms:
            b = self._draws[names.ranef(t.group)].transpose(*names.SAMPLE_DIMS, ...).to_numpy()
            mu += np.einsum("cdik,ik->cdi", b[:, :, t.codes, :], t.X)
        sigma = self._draws[names.SIGMA].transpose(*names.SAMPLE_DIMS).to_numpy()[..., None]
        scale = design.residual_scale()  # weights: σ_i = σ/sqrt(w_i)
        return mu, sigma if scale is None else sigma * scale

    def log_likelihood(self) -> xr.Dataset:
        """log p(y_i | β, b, σ) per draw and observation (dims chain, draw, obs): the
        ``log_likelihood`` group that ``az.loo`` / ``az.compare`` read, conditional on the
        draw's group effects as PyMC's and brms's are (``sample(log_likelihood=True)``
        stores it)."""
        mu, sigma = self._conditional_mean()
        z = (self.design.y - mu) / sigma
        ll = -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2.0 * np.pi)
        sample = {d: self._draws.coords[d].to_numpy() for d in names.SAMPLE_DIMS}
        obs = {names.OBS: np.arange(self.design.nobs)}
        return xr.Dataset({names.Y: ((*names.SAMPLE_DIMS, names.OBS), ll)}, coords=sample | obs)

    def sample_posterior_predictive(
        self, seed: int | np.random.Generator | None = None
    ) -> xr.DataTree:
        """Replicated ``y`` for every posterior draw with that draw's own group effects,
        ``y_rep = Xβ + Σ_t Z_t b_t + σε`` (group ``posterior_predictive``, dims chain, draw,
        obs; ``observed_data`` beside it); the same ``seed`` gives the same draws.  Without
        a ``seed``, the sampling run's own (its "predictive" stream): a seeded run's
        replicates are reproducible too."""
        if seed is None and io.SEED in self.idata.attrs:
            seed = np.random.default_rng(seed_stream(int(self.idata.attrs[io.SEED]), "predictive"))
        rng = rng_from(seed, BayesLMMError)
        design = self.design
        mu, sigma = self._conditional_mean()
        y = mu + sigma * rng.standard_normal(mu.shape)
        obs = {names.OBS: np.arange(design.nobs)}
        sample = {d: self._draws.coords[d].to_numpy() for d in names.SAMPLE_DIMS}
        dims = (*names.SAMPLE_DIMS, names.OBS)
        return xr.DataTree.from_dict(
            {
                "posterior_predictive": xr.Dataset({names.Y: (dims, y)}, coords={**sample, **obs}),
                "observed_data": xr.Dataset({names.Y: ((names.OBS,), design.y)}, coords=obs),
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the DataTree (netCDF; zarr when ``path`` ends in ``.zarr``)."""
        ci = {io.CI_PROB: self.ci_prob, io.CI_KIND: self.ci_kind}
        return io.write(self.idata, Path(path), ci)

    # -- exploration (bayeslmm.bayes.explore) -------------------------------------------
    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        group_effects: str | dict[str, str] = "observed",
        kind: str = "mean",
        seed: int | None = None,
        summary: bool = True,
    ) -> pd.DataFrame | xr.DataArray:
        """Predictions per draw, η_s = x β_s + z b_s, on ``newdata``'s rows (the data's when
        None), checked as data: ``group_effects`` "observed" (each level's own b_s; a new
        level: b = 0), "new" (b ~ N(0, Σ_s) per level and draw: brms's
        ``sample_new_levels = "gaussian"``) or "none" (b = 0), or a dict by factor;
        ``kind="response"`` adds ε ~ N(0, σ_s²).  ``summary``: ``mean``, ``sd`` and the
        interval per row; else the draws (chain, draw, obs).  See
        :func:`bayeslmm.bayes.explore.predict`."""
        from .explore import predict

        return predict(self, newdata, group_effects, kind, seed, summary)

    def loo(self, by: str = "observation", factor: str | None = None) -> Any:
        """PSIS-LOO (ArviZ's ELPDData): ``by="observation"`` (log N(y_i | η_i,s, σ_s²),
        conditional on b) or ``by="group"`` (leave one level of ``factor`` out: its
        marginal likelihood, its effects integrated out exactly); warns
        (:class:`~bayeslmm.LOOWarning`) where Pareto k > 0.7.  See
        :func:`bayeslmm.bayes.explore.loo`."""
        from .explore import loo

        return loo(self, by, factor)

    def hypothesis(
        self, hypotheses: str | list[str], *, prior_draws: int = 4000, seed: int | None = None
    ) -> pd.DataFrame:
        """brms's ``hypothesis()``: ``"fixef[Days] > 5"`` (posterior probability and
        evidence ratio p/(1−p)), ``"fixef[Days] - 10 = 0"`` (the interval of lhs − rhs and
        the Savage–Dickey ratio against the prior); labels as ``compare()``'s.  See
        :func:`bayeslmm.bayes.explore.hypothesis`."""
        from .explore import hypothesis

        return hypothesis(self, hypotheses, prior_draws=prior_draws, seed=seed)

    def emmeans(
        self,
        specs: str | Sequence[str],
        by: str | Sequence[str] | None = None,
        at: dict[str, Any] | None = None,
    ) -> Any:
        """Estimated marginal means over the draws (:mod:`bayeslmm.bayes.emmeans`): the
        REML fit's reference grid, ``emmean`` the posterior median, the interval at
        ``ci_prob``; ``.pairs()`` and ``.contrast()`` as a REML fit's."""
        from .emmeans import posterior_emmeans

        return posterior_emmeans(self, specs, by, at)

    def r2(self, summary: bool = True) -> pd.DataFrame | xr.DataArray:
        """Bayesian R² (Gelman et al. 2019) per draw, V(ŷ)/(V(ŷ) + V(y − ŷ)):
        ``marginal`` (ŷ = Xβ) and ``conditional`` (ŷ = Xβ + Zb).  See
        :func:`bayeslmm.bayes.explore.bayes_r2`."""
        from .explore import bayes_r2

        return bayes_r2(self, summary)


def _table(da: xr.DataArray) -> pd.DataFrame:
    """A (levels, term) DataArray as ``LmerFit.ranef``'s DataFrame: levels x columns."""
    level, term = da.dims
    index = pd.Index(da.coords[level].values, name=str(level))
    return pd.DataFrame(da.to_numpy(), index=index, columns=list(da.coords[term].values))


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(float_format=lambda x: f"{x:.4g}")


def load_posterior(path: str | Path) -> Posterior:
    """Read a posterior written by :meth:`Posterior.save`, rebuilding its design."""
    saved = io.read(Path(path))
    return Posterior(
        saved.tree,
        saved.design,
        priors=saved.priors,
        parameterization=saved.parameterization,
        ci_prob=names.DEFAULT_CI_PROB if saved.ci_prob is None else saved.ci_prob,
        ci_kind=names.DEFAULT_CI_KIND if saved.ci_kind is None else saved.ci_kind,
    )

"""REML and posterior side by side: the parameter table and the shrinkage table.

``compare(fit, posterior)`` lines up every parameter both paths estimate (fixed effects,
random-effect SDs and correlations keyed like ``varcorr``, the residual SD).
``shrinkage(fit, posterior)`` lines up, per group level and random-effect column, the
three classic estimates of a group's coefficient: no pooling (the group's own least
squares fit, as lme4's ``lmList``), complete pooling (least squares ignoring the groups)
and partial pooling (REML ``coef`` and the posterior of ``fixef + ranef``).

Both read the two results through their shared vocabulary (docs/vocabulary.md):
``LmerFit.fixef``/``varcorr``/``coef`` and ``Posterior.parameter_draws``/``coef_draws``,
summarised by :func:`~bayeslmm.bayes.summary.summarize`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import names
from .bayes import is_posterior
from .design import Design, independent_columns
from .errors import BayesLMMError
from .reml.fit import LmerFit
from .reml.inference import DENSE_LIMIT

if TYPE_CHECKING:
    from .bayes.posterior import Posterior

#: the posterior statistics of a compare table
_COMPARE_STATS = ("mean", "median", "sd", "ci", "r_hat", "ess_bulk")


class ComparisonError(BayesLMMError, ValueError):
    """The REML fit and the posterior cannot be compared (wrong types, different models)."""


class ComparisonTable(pd.DataFrame):
    """A DataFrame that prints compactly: 4 significant digits, blanks for missing values.

    The printed (text and HTML) form leaves out the key columns ``grp``, ``var1``,
    ``var2``, which the row labels already spell out; the data keep them.
    """

    @property
    def _constructor(self):
        return ComparisonTable

    def _formatted(self) -> pd.DataFrame:
        out = pd.DataFrame(index=self.index)
        for col in self.columns.drop(["grp", "var1", "var2"], errors="ignore"):
            s = self[col]
            if pd.api.types.is_float_dtype(s):
                out[col] = [_fmt(v) for v in s]
            else:
                out[col] = s.astype(object).where(s.notna(), "")
        return out

    def __repr__(self) -> str:
        return self._formatted().to_string()

    def _repr_html_(self) -> str:
        return self._formatted().to_html()


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


# --------------------------------------------------------------------------------------
# Inputs: what a fit and a posterior must provide
# --------------------------------------------------------------------------------------


def check_inputs(fit: Any, posterior: Any) -> Design:
    """Validate a (fit, posterior) pair, either may be None, and return their design."""
    if fit is not None and not isinstance(fit, LmerFit):
        raise ComparisonError(
            f"fit must be an LmerFit (from Model.fit_reml or lmer) or None, "
            f"got {type(fit).__name__}"
        )
    if posterior is not None and not is_posterior(posterior):
        raise ComparisonError(
            f"posterior must be a Posterior (from Model.sample) or None, "
            f"got {type(posterior).__name__}"
        )
    if fit is None and posterior is None:
        raise ComparisonError("give a REML fit, a posterior, or both; got neither")
    if fit is not None and posterior is not None:
        problems = fit.design.differences(posterior.design)
        if problems:
            raise ComparisonError(
                "the REML fit and the posterior are of different models: " + "; ".join(problems)
            )
    design: Design = (fit if fit is not None else posterior).design
    return design


def ci_settings(
    ci_kind: str | None, ci_prob: float | None, posterior: Posterior | None
) -> tuple[str, float]:
    """Interval kind and probability: as given, else the posterior's, else ArviZ's default."""
    if ci_kind is None:
        ci_kind = names.DEFAULT_CI_KIND if posterior is None else posterior.ci_kind
    if ci_prob is None:
        ci_prob = names.DEFAULT_CI_PROB if posterior is None else posterior.ci_prob
    if ci_kind not in names.CI_KINDS:
        raise ComparisonError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
    if not 0 < ci_prob < 1:
        raise ComparisonError(f"ci_prob must be in (0, 1), got {ci_prob!r}")
    return ci_kind, float(ci_prob)


def resolve_factor(design: Design, factor: str | None) -> str:
    """``factor`` checked against the model's grouping factors; None -> the first one."""
    if factor is None:
        return design.group_factors[0]
    if factor not in design.group_factors:
        raise ComparisonError(
            f"unknown grouping factor {factor!r}; the model has {design.group_factors}"
        )
    return factor


def _summarize(draws: Any, index: pd.Index, kind: str, prob: float, stats: tuple) -> pd.DataFrame:
    from .bayes.summary import summarize

    return summarize(draws, index, kind=kind, prob=prob, stats=stats)


# --------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------


def compare(
    fit: LmerFit | None,
    posterior: Posterior | None,
    *,
    ci_kind: str | None = None,
    ci_prob: float | None = None,
    reml_ci: str | None = "profile",
) -> ComparisonTable:
    """REML (or ML) estimates beside posterior summaries, one row per shared parameter.

    Rows: each fixed effect, then per random-effect term its SDs and correlations (in
    ``varcorr`` order, keyed by ``grp``, ``var1``, ``var2``), then the residual SD.  The
    index labels them (:mod:`bayeslmm.names`: ``fixef[Days]``, ``sd_Subject[Days]``,
    ``corr_Subject[(Intercept), Days]``, ``sigma``).

    Columns: ``reml`` and ``reml_se`` (``ml``, ``ml_se`` for an ML fit; the SE is the Wald
    standard error of a fixed effect, empty for variance parameters), the REML confidence
    interval of probability ``ci_prob`` (``reml_ci``: ``"profile"``, the likelihood-ratio
    interval of every row, or ``"wald"``, β̂ ± z·SE for the fixed effects only; None for
    none; see ``LmerFit.confint``), named by the interval rule (``profile89_lb``,
    ``profile89_ub``), the posterior ``mean``, ``median``, ``sd``, the credible interval
    (``ci_kind``/``ci_prob``, else the posterior's own setting, by default ArviZ's ETI
    0.89; named as ``az.summary`` names them: ``eti89_lb``, ``eti89_ub``), ``r_hat``,
    ``ess_bulk``, and ``std_diff`` = (posterior mean − REML) / posterior SD.  With only
    one side given, the table has only that side's columns.  A model too large for the
    profile's dense algebra gets Wald intervals, with a warning.
    """
    design = check_inputs(fit, posterior)
    kind, prob = ci_settings(ci_kind, ci_prob, posterior)
    if reml_ci not in REML_CI_METHODS:
        raise ComparisonError(f"reml_ci must be 'profile', 'wald' or None, got {reml_ci!r}")
    params = design.parameters
    keys = pd.DataFrame(
        [(p.label, p.grp, p.var1, p.var2) for p in params],
        columns=["parameter", "grp", "var1", "var2"],
        dtype=object,
    ).set_index("parameter")
    parts = [keys]
    if fit is not None:
        parts.append(_reml_columns(fit, params, keys.index))
        if reml_ci is not None:
            parts.append(reml_intervals(fit, reml_ci, prob))
    if posterior is not None:
        draws = posterior.parameter_draws()
        parts.append(_summarize(draws, keys.index, kind, prob, _COMPARE_STATS))
    table = pd.concat(parts, axis=1)
    if fit is not None and fit.sigma_by_group is not None:
        table = pd.concat([table, _group_sigma_rows(fit)])
    if fit is not None and posterior is not None:
        est = "reml" if fit.reml else "ml"
        table["std_diff"] = (table["mean"] - table[est]) / table["sd"]
    return ComparisonTable(table)


def compare_emmeans(
    fit: LmerFit,
    posterior: Posterior,
    specs: str | list[str],
    by: str | list[str] | None = None,
    at: dict[str, Any] | None = None,
    *,
    contrast: Any = None,
    ddf: str = "kenward-roger",
) -> ComparisonTable:
    """Estimated marginal means (or, with ``contrast`` "pairwise", "trt.vs.ctrl", ... or
    a dict, their contrasts) of the REML fit beside the posterior's, one row per level:
    the REML columns as emmeans names them (``emmean``/``estimate``, ``SE``, ``df``,
    ``lower.CL``, ``upper.CL`` at the posterior's ``ci_prob``) prefixed ``reml_``, the
    posterior's (median, sd, credible interval) prefixed ``post_``, and ``std_diff``
    = (posterior median − REML) / posterior sd."""
    check_inputs(fit, posterior)
    if fit is None or posterior is None:
        raise ComparisonError("compare_emmeans needs a REML fit and a posterior")
    reml = fit.emmeans(specs, by, at, ddf=ddf, level=posterior.ci_prob)
    post = posterior.emmeans(specs, by, at)
    if contrast is not None:
        reml, post = reml.contrast(contrast), post.contrast(contrast)
    est = "emmean" if contrast is None else "estimate"
    keep = [c for c in (est, "SE", "df", "lower.CL", "upper.CL") if c in reml.columns]
    table = pd.concat(
        [pd.DataFrame(reml)[keep].add_prefix("reml_"), pd.DataFrame(post).add_prefix("post_")],
        axis=1,
    )
    table["std_diff"] = (table[f"post_{est}"] - table[f"reml_{est}"]) / table["post_sd"]
    return ComparisonTable(table)


def _reml_columns(fit: LmerFit, params: list[names.Parameter], index: pd.Index) -> pd.DataFrame:
    """The fit's own estimates (and fixed-effect SEs) of ``params``."""
    est = "reml" if fit.reml else "ml"
    lookup = sdcor_by_key(fit.varcorr)
    fixef, fixef_se = fit.fixef.to_dict(), fit.fixef_se.to_dict()
    values, se = [], []
    for p in params:
        if p.kind == "fixef":
            values.append(float(fixef[p.var1]))
            se.append(float(fixef_se[p.var1]))
        else:
            values.append(float(lookup[(p.grp, p.var1, p.var2)]))
            se.append(np.nan)
    return pd.DataFrame({est: values, f"{est}_se": se}, index=index)


def _group_sigma_rows(fit: LmerFit) -> pd.DataFrame:
    """Rows ``sigma[level]`` for each residual group but the reference (whose σ is the
    ``sigma`` row): the REML fit's σ·ratio (the posterior path has one σ)."""
    groups = fit.sigma_by_group
    assert groups is not None
    est = "reml" if fit.reml else "ml"
    levels = list(groups.index[1:])
    return pd.DataFrame(
        {
            "grp": "Residual",
            "var1": pd.Series(levels, dtype=object, index=[f"sigma[{lv}]" for lv in levels]),
            "var2": None,
            est: groups.to_numpy()[1:],
        }
    )


#: the REML intervals compare() can show (``reml_ci``)
REML_CI_METHODS = ("profile", "wald", None)


def reml_intervals(fit: LmerFit, method: str, prob: float) -> pd.DataFrame:
    """``fit.confint(method, prob)`` with the interval rule's column names
    (``profile89_lb``, ``profile89_ub``); Wald, with a warning, where the model is too
    large for the profile."""
    if method == "profile" and fit.design.q + fit.design.p + 1 > DENSE_LIMIT:
        warnings.warn(
            f"the model has q + p + 1 = {fit.design.q + fit.design.p + 1} > {DENSE_LIMIT} "
            "random and fixed effects, too many for profile intervals: the REML intervals "
            "are Wald intervals (fixed effects only)",
            UserWarning,
            stacklevel=3,
        )
        method = "wald"
    ci = fit.confint(method, level=prob)
    ci.columns = pd.Index(names.ci_columns(method, prob))
    return ci


def sdcor_by_key(varcorr: pd.DataFrame) -> dict[tuple[str | None, ...], float]:
    """A ``varcorr`` table's ``sdcor`` by its key (grp, var1, var2); a missing key cell
    (None or NaN) is None."""

    def key(value: Any) -> str | None:
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    keys = zip(varcorr["grp"], map(key, varcorr["var1"]), map(key, varcorr["var2"]), strict=True)
    return dict(zip(keys, varcorr["sdcor"].to_numpy(float), strict=True))


# --------------------------------------------------------------------------------------
# shrinkage: no pooling, complete pooling, partial pooling
# --------------------------------------------------------------------------------------


def _lm(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares as R's ``lm``: a column in the span of the earlier ones gets NaN
    (:func:`~bayeslmm.design.independent_columns`; with fewer observations than columns
    the trailing columns are therefore NaN)."""
    coef = np.full(X.shape[1], np.nan)
    keep = independent_columns(X)
    if keep:
        coef[keep] = np.linalg.lstsq(X[:, keep], y, rcond=None)[0]
    return coef


@dataclass(frozen=True)
class Pooling:
    """No-pooling and complete-pooling fits for one grouping factor.

    ``columns``: the fixed-effect columns, then the factor's random-effect columns that
    are not fixed effects; ``terms``: the factor's random-effect columns (term order).
    """

    factor: str
    levels: tuple[str, ...]
    codes: np.ndarray
    columns: list[str]
    X: np.ndarray
    terms: list[str]
    n: np.ndarray
    no_pooling: pd.DataFrame
    complete_pooling: pd.Series


def pooling(design: Design, factor: str) -> Pooling:
    """Per-level least squares (lme4's ``lmList``) and one pooled least squares fit."""
    terms = design.factor_terms(factor)
    columns = list(design.fixef_names)
    blocks = [design.X]
    term_columns: list[str] = []
    for t in terms:
        for j, name in enumerate(t.cnames):
            if name not in term_columns:
                term_columns.append(name)
            if name not in columns:
                columns.append(name)
                blocks.append(t.X[:, [j]])
    X = np.column_stack(blocks)
    codes, levels = terms[0].codes, terms[0].levels
    per_level = np.array([_lm(X[codes == i], design.y[codes == i]) for i in range(len(levels))])
    return Pooling(
        factor=factor,
        levels=levels,
        codes=codes,
        columns=columns,
        X=X,
        terms=term_columns,
        n=np.bincount(codes, minlength=len(levels)),
        no_pooling=pd.DataFrame(per_level, index=pd.Index(levels, name=factor), columns=columns),
        complete_pooling=pd.Series(_lm(X, design.y), index=columns),
    )


def shrinkage(
    fit: LmerFit | None,
    posterior: Posterior | None,
    *,
    factor: str | None = None,
    ci_kind: str | None = None,
    ci_prob: float | None = None,
) -> ComparisonTable:
    """No, complete and partial pooling estimates of every group's coefficients.

    One row per grouping factor, level and random-effect column (index ``factor``,
    ``level``, ``term``; only ``factor`` if given).  Columns:

    - ``n``: observations in the group;
    - ``no_pooling``: the group's own least squares fit of the full fixed-effect model
      (plus any random-only columns), as lme4's ``lmList``; NaN where the column is not
      estimable in that group (aliased, or too few observations);
    - ``complete_pooling``: the same least squares fit to all data, ignoring the groups;
    - ``reml``: the REML (or ML) partial-pooling estimate, ``coef(fit)`` = β̂ + b̂;
    - ``posterior_mean`` and the credible interval (``eti89_lb``, ``eti89_ub`` by default)
      of the group's coefficient β + b over the posterior draws;
    - ``shrinkage_reml``, ``shrinkage_posterior``: how far partial pooling moved from no
      pooling toward the population value β (REML β̂, or the posterior mean of β)::

          shrinkage = 1 − (partial − β) / (no_pooling − β)

      0 = not pooled at all, 1 = pulled all the way to β.  Values outside [0, 1] happen
      when the correlation with another coefficient, or another covariate, moves the
      estimate past β or away from it.  NaN when no pooling is NaN or equals β.
    """
    design = check_inputs(fit, posterior)
    kind, prob = ci_settings(ci_kind, ci_prob, posterior)
    factors = [resolve_factor(design, factor)] if factor is not None else design.group_factors
    tables = [_shrinkage_table(design, f, fit, posterior, kind, prob) for f in factors]
    return ComparisonTable(pd.concat(tables))


def _shrinkage_table(
    design: Design,
    factor: str,
    fit: LmerFit | None,
    posterior: Posterior | None,
    kind: str,
    prob: float,
) -> pd.DataFrame:
    pool = pooling(design, factor)
    index = pd.MultiIndex.from_product(
        [[factor], list(pool.levels), pool.terms], names=["factor", "level", "term"]
    )
    table = pd.DataFrame(index=index)
    table["n"] = np.repeat(pool.n, len(pool.terms))
    table["no_pooling"] = pool.no_pooling[pool.terms].to_numpy().ravel()
    table["complete_pooling"] = np.tile(
        pool.complete_pooling[pool.terms].to_numpy(), len(pool.levels)
    )
    population = {}
    if fit is not None:
        table["reml"] = fit.coef[factor][pool.terms].to_numpy().ravel()
        population["reml"] = reml_population(fit, pool.terms)
    if posterior is not None:
        draws = posterior.coef_draws(factor).sel(term=pool.terms)
        stats = _summarize(draws, index, kind, prob, ("mean", "ci"))
        table = table.join(stats.rename(columns={"mean": "posterior_mean"}))
        population["posterior_mean"] = posterior_population(posterior, pool.terms)
    for col, beta in population.items():
        beta = np.tile(beta, len(pool.levels))
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = (table[col].to_numpy() - beta) / (table["no_pooling"].to_numpy() - beta)
        name = "shrinkage_reml" if col == "reml" else "shrinkage_posterior"
        table[name] = np.where(np.isfinite(moved), 1.0 - moved, np.nan)
    return table


def reml_population(fit: LmerFit, terms: list[str]) -> np.ndarray:
    """β̂ for each column (0 for a random-only column, as lme4's ``coef`` fills it)."""
    return np.array([float(fit.fixef[c]) if c in fit.fixef.index else 0.0 for c in terms])


def posterior_population(posterior: Posterior, terms: list[str]) -> np.ndarray:
    """Posterior mean of β for each column (0 for a random-only column)."""
    draws = posterior.parameter_draws()
    fixef = posterior.design.fixef_names
    return np.array(
        [
            float(draws.sel(parameter=names.fixef_label(c)).mean()) if c in fixef else 0.0
            for c in terms
        ]
    )

"""Parameter values of a model, from any source, as one batched :class:`ParameterSet`.

Sources (:func:`parameters_of`): a dict of values, a REML fit (its ``fixef``, ``varcorr``
and ``ranef``), a :class:`~bayeslmm.bayes.posterior.Posterior` (every draw), and the
prior (:meth:`ParameterSet.from_prior`).  A dict uses the shared vocabulary::

    {
        "fixef": {"(Intercept)": 251.4, "Days": 10.47},  # or a Series, or a sequence
                                                         # in fixef_names order
        "sigma": 25.59,                                  # residual SD
        "sd":   {"Subject": {"(Intercept)": 24.74, "Days": 5.922}},
        "corr": {"Subject": 0.066},
        "ranef": {"Subject": DataFrame},                 # the observed groups' effects
    }

``sd`` is keyed by a term group (``ReTerm.group``: "Subject", "Subject.1", "cask:batch")
or by a grouping factor, which covers all of its terms (so ``(Days || Subject)`` takes
the same ``sd`` as ``(Days | Subject)``).  Each value maps column name -> SD, is a
number for a one-column term, or is a sequence in column order.  ``corr`` (optional,
default Ω = I) is keyed the same way and names one correlated term: a number when
k = 2, a k x k matrix, or ``{("(Intercept)", "Days"): 0.066}``.  Instead of ``sd``,
``corr`` (and ``sigma``) a ``"varcorr"`` DataFrame laid out as ``LmerFit.varcorr`` (columns
``grp``, ``var1``, ``var2``, ``sdcor``; the ``Residual`` row gives σ) may be given: a
Posterior's ``varcorr`` or a point estimate's works too.  ``ranef`` maps each grouping
factor to a levels x columns DataFrame (lme4's ``ranef``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from . import names
from .bayes import is_posterior
from .design import Design, ReTerm
from .errors import ParameterError

if TYPE_CHECKING:
    from .bayes.posterior import Posterior
    from .bayes.priors import Prior

#: the keys of a dict of parameter values
PARAMETER_KEYS = ("fixef", "sigma", "sd", "corr", "varcorr", "ranef")

SourceKind = Literal["values", "reml", "posterior"]


@dataclass(frozen=True)
class ParameterSet:
    """Values of every parameter of a design, ``n`` sets at once (a leading axis).

    fixef: (n, p); sigma: (n,); per term (``design.terms`` order) ``sd`` (n, k) and
    ``corr`` (n, k, k) (Ω; ones for k = 1); ``ranef``: per term the group effects b
    (n, ℓ, k), or None when the source gives none (or they were not asked for).
    """

    fixef: np.ndarray
    sigma: np.ndarray
    sd: tuple[np.ndarray, ...]
    corr: tuple[np.ndarray, ...]
    ranef: tuple[np.ndarray, ...] | None = None

    @property
    def n(self) -> int:
        """Number of parameter sets."""
        return len(self.sigma)

    def take(self, index: np.ndarray) -> ParameterSet:
        """The sets at ``index`` (an integer array)."""
        return self._map(lambda a: a[index])

    def repeat(self, n: int) -> ParameterSet:
        """One set (``n == 1``) repeated n times."""
        return self._map(lambda a: np.repeat(a, n, axis=0))

    def mean(self) -> ParameterSet:
        """The mean over the sets, as one set."""
        return self._map(lambda a: a.mean(axis=0, keepdims=True))

    def _map(self, fn: Any) -> ParameterSet:
        return ParameterSet(
            fixef=fn(self.fixef),
            sigma=fn(self.sigma),
            sd=tuple(fn(a) for a in self.sd),
            corr=tuple(fn(a) for a in self.corr),
            ranef=None if self.ranef is None else tuple(fn(a) for a in self.ranef),
        )

    @classmethod
    def from_values(
        cls,
        design: Design,
        values: Mapping[str, Any],
        *,
        ranef: bool = False,
        what: str = "parameters",
    ) -> ParameterSet:
        """One set from a dict of values (module docstring); ``ranef``: the dict must give
        the observed groups' effects.  ``what`` names the values in error messages."""
        return _from_values(design, values, ranef, what)

    @classmethod
    def from_posterior(
        cls, design: Design, posterior: Posterior, *, ranef: bool = False
    ) -> ParameterSet:
        """Every draw of a posterior of a model of this structure (chains stacked);
        ``ranef``: with the draws' group effects (the levels must be this design's)."""
        draws = posterior.parameter_draws()
        chains, length = draws.shape[:2]

        def flat(labels: list[str]) -> np.ndarray:
            return draws.sel(parameter=labels).to_numpy().reshape(chains * length, -1)

        from .bayes.explore import term_draws

        n = chains * length
        fixef = flat([names.fixef_label(c) for c in design.fixef_names])
        sd, corr = term_draws(design, flat, n)
        effects = _posterior_ranef(design, posterior, n) if ranef else None
        return cls(fixef, flat([names.SIGMA])[:, 0], sd, corr, effects)

    @classmethod
    def from_prior(
        cls, design: Design, priors: Mapping[str, Prior], n: int, rng: np.random.Generator
    ) -> ParameterSet:
        """``n`` sets drawn from the priors of the design's PyMC model."""
        from .bayes.sampling import prior_parameter_draws

        drawn = prior_parameter_draws(design, priors, n, seed=int(rng.integers(2**32)))
        return cls(
            fixef=drawn[names.FIXEF],
            sigma=drawn[names.SIGMA],
            sd=tuple(drawn[names.sd(t.group)] for t in design.terms),
            corr=tuple(
                drawn[names.corr(t.group)] if t.nc > 1 else np.ones((n, 1, 1)) for t in design.terms
            ),
        )


def parameters_of(
    design: Design, source: Any, *, ranef: bool = False, role: str = "source"
) -> tuple[ParameterSet, SourceKind]:
    """The parameter sets a source gives, and what kind of source it is.

    A dict (one set), a REML fit of a model of the same structure (one set: its
    estimates and, with ``ranef``, its conditional modes) or a Posterior of one (every
    draw).  ``role`` names the argument in error messages.
    """
    from .reml.fit import LmerFit

    if isinstance(source, Mapping):
        return ParameterSet.from_values(design, source, ranef=ranef), "values"
    kind: SourceKind
    if isinstance(source, LmerFit):
        kind, what = "reml", "the REML fit"
    elif is_posterior(source):
        kind, what = "posterior", "the Posterior"
    else:
        raise ParameterError(
            f"{role} must be a REML fit, a Posterior, a dict of parameter values"
            + (" or None (the prior)" if role == "source" else "")
            + f", got {type(source).__name__}"
        )
    other = source.design
    if design.differences(other, same_data=False):
        raise ParameterError(
            f"{what} is of another model ({other.formula!r}, fixed effects "
            f"{list(other.fixef_names)}, groups {[t.group for t in other.terms]}) "
            f"than this one ({design.formula!r}, {list(design.fixef_names)}, "
            f"{[t.group for t in design.terms]})"
        )
    if kind == "posterior":
        return ParameterSet.from_posterior(design, source, ranef=ranef), kind
    values = {"fixef": source.fixef, "varcorr": source.varcorr, "ranef": source.ranef}
    return ParameterSet.from_values(design, values, ranef=ranef, what=what), kind


def _posterior_ranef(design: Design, posterior: Posterior, n: int) -> tuple[np.ndarray, ...]:
    """Per term (n, ℓ, k) draws of b, in this design's level order."""
    blocks = {}
    for factor in design.group_factors:
        draws = posterior.ranef_draws(factor)
        levels = list(design.factor_terms(factor)[0].levels)
        have = [str(v) for v in draws.coords[factor].values]
        if sorted(have) != sorted(levels):
            raise ParameterError(
                f"the Posterior's group effects of {factor} have levels {have}, the model has "
                f"{levels}: it is not a posterior of these data"
            )
        draws = draws.assign_coords({factor: have}).sel({factor: levels})
        blocks[factor] = draws.to_numpy().reshape(n, len(levels), -1)
    return _split_by_term(design, blocks)


def _split_by_term(design: Design, blocks: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Factor -> (..., ℓ, all the factor's columns) arrays -> per-term (..., ℓ, k) arrays."""
    out, start = [], dict.fromkeys(design.group_factors, 0)
    for term in design.terms:
        s = start[term.factor]
        out.append(blocks[term.factor][..., s : s + term.nc])
        start[term.factor] = s + term.nc
    return tuple(out)


def _from_values(design: Design, values: Mapping, ranef: bool, what: str) -> ParameterSet:
    """One parameter set from a dict in the shared vocabulary."""
    unknown = [k for k in values if k not in PARAMETER_KEYS]
    if unknown:
        raise ParameterError(
            f"unknown {what} key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; allowed: {', '.join(PARAMETER_KEYS)}"
        )
    if "fixef" not in values:
        raise ParameterError(f"{what} lack 'fixef' (the fixed effects {list(design.fixef_names)})")
    fixef = _fixef(design, values["fixef"], what)

    residual: float | None = None
    if "varcorr" in values:
        clash = [k for k in ("sd", "corr") if k in values]
        if clash:
            raise ParameterError(
                f"{what} give both 'varcorr' and {', '.join(repr(k) for k in clash)}: "
                "give the variance components one way"
            )
        sd, corr, residual = _from_varcorr(design, values["varcorr"], what)
    else:
        sd = _sds(design, values.get("sd", {}), what)
        corr = _corrs(design, values.get("corr", {}), what)

    given = values.get("sigma", residual)
    if given is None:
        raise ParameterError(f"{what} lack 'sigma' (the residual standard deviation)")
    sigma = _nonnegative(given, f"{what}: sigma")
    if residual is not None and not np.isclose(sigma, residual):
        raise ParameterError(
            f"{what}: 'sigma' = {sigma} disagrees with the varcorr Residual row ({residual})"
        )

    effects = None
    if ranef:
        if "ranef" not in values:
            raise ParameterError(
                f"group_effects='observed' needs the observed groups' effects: {what} lack "
                "'ranef' (grouping factor -> DataFrame of levels x columns)"
            )
        effects = tuple(a[None] for a in _ranef(design, values["ranef"], what))
    return ParameterSet(
        fixef=fixef[None],
        sigma=np.reshape(sigma, (1,)),
        sd=tuple(a[None] for a in sd),
        corr=tuple(a[None] for a in corr),
        ranef=effects,
    )


def _fixef(design: Design, value: Any, what: str) -> np.ndarray:
    columns = list(design.fixef_names)
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if isinstance(value, Mapping):
        given = [str(k) for k in value]
        missing = [k for k in columns if k not in given]
        extra = [k for k in given if k not in columns]
        if missing or extra:
            raise ParameterError(
                f"{what}: fixef names {given} do not match the model's {columns}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unknown {extra}; a fit of another model?)" if extra else "")
            )
        lookup = {str(k): v for k, v in value.items()}
        value = [lookup[k] for k in columns]
    arr = _finite(value, f"{what}: fixef")
    if arr.shape != (len(columns),):
        raise ParameterError(
            f"{what}: fixef has shape {arr.shape}, the model has {len(columns)} fixed effects "
            f"{columns}"
        )
    return arr


def _finite(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be numeric, got {value!r}") from None
    if not np.isfinite(arr).all():
        raise ParameterError(f"{what} must be finite, got {value!r}")
    return arr


def _nonnegative(value: Any, what: str) -> np.ndarray:
    arr = _finite(value, what)
    if (arr < 0).any():
        raise ParameterError(f"{what} must be >= 0 (a standard deviation), got {value!r}")
    return arr


def _terms_for(design: Design, key: Any, what: str) -> list[int]:
    """Indices of the terms a key names: a term group, or every term of a grouping factor."""
    idx = [i for i, t in enumerate(design.terms) if key in (t.group, t.factor)]
    if not idx:
        groups = list(dict.fromkeys([t.group for t in design.terms] + design.group_factors))
        raise ParameterError(
            f"{what}: unknown group {key!r}; the model's groups are {', '.join(groups)}"
        )
    return idx


def _sds(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"{what}: 'sd' must be a dict group -> SDs, got {type(value).__name__}"
        )
    sd: list[np.ndarray | None] = [None] * len(design.terms)
    for key, given in value.items():
        if isinstance(given, pd.Series):
            given = given.to_dict()
        idx = _terms_for(design, key, f"{what}: sd")
        # "Subject" of (Days || Subject) is both the first term's group and the factor:
        # as many values as that term has columns means the term, else the whole factor
        n_given = len(given) if isinstance(given, Mapping) else np.size(given)
        alone = [i for i in idx if design.terms[i].group == key]
        if alone and n_given == design.terms[alone[0]].nc:
            idx = alone
        columns = [c for i in idx for c in design.terms[i].cnames]
        if isinstance(given, Mapping):
            unknown = [c for c in given if c not in columns]
            missing = [c for c in columns if c not in given]
            if unknown or missing or len(set(columns)) < len(columns):
                raise ParameterError(
                    f"{what}: sd[{key!r}] must give one SD per column {columns}"
                    + (f"; unknown {unknown}" if unknown else "")
                    + (f"; missing {missing}" if missing else "")
                )
            flat = _nonnegative([given[c] for c in columns], f"{what}: sd[{key!r}]")
        else:
            flat = np.atleast_1d(_nonnegative(given, f"{what}: sd[{key!r}]"))
            if flat.shape != (len(columns),):
                raise ParameterError(
                    f"{what}: sd[{key!r}] has {flat.size} values for the columns {columns}"
                )
        start = 0
        for i in idx:
            if sd[i] is not None:
                raise ParameterError(f"{what}: the SDs of {design.terms[i].group} are given twice")
            sd[i] = flat[start : start + design.terms[i].nc]
            start += design.terms[i].nc
    missing_terms = [t.group for t, s in zip(design.terms, sd, strict=True) if s is None]
    if missing_terms:
        raise ParameterError(
            f"{what} lack the random-effect SDs 'sd' of {', '.join(missing_terms)}"
        )
    return tuple(s for s in sd if s is not None)  # every term has its SDs now


def _corrs(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(value, Mapping):
        raise ParameterError(
            f"{what}: 'corr' must be a dict group -> correlations, got {type(value).__name__}"
        )
    corr = [np.eye(t.nc) for t in design.terms]
    for key, given in value.items():
        idx = [i for i in _terms_for(design, key, f"{what}: corr") if design.terms[i].nc > 1]
        if len(idx) != 1:
            raise ParameterError(
                f"{what}: corr[{key!r}] names no single correlated term: the effects of "
                f"{key} are independent (one column per term)"
                if not idx
                else f"{what}: corr[{key!r}] is ambiguous; use one of "
                f"{[design.terms[i].group for i in idx]}"
            )
        term = design.terms[idx[0]]
        corr[idx[0]] = _corr_matrix(term, given, f"{what}: corr[{key!r}]")
    return tuple(corr)


def _corr_matrix(term: ReTerm, given: Any, what: str) -> np.ndarray:
    k, columns = term.nc, list(term.cnames)
    if isinstance(given, Mapping):
        mat = np.eye(k)
        for pair, r in given.items():
            if not (isinstance(pair, tuple) and len(pair) == 2 and set(pair) <= set(columns)):
                raise ParameterError(f"{what}: key {pair!r} is not a pair of columns of {columns}")
            a, b = columns.index(pair[0]), columns.index(pair[1])
            mat[a, b] = mat[b, a] = float(_finite(r, what))
    else:
        arr = _finite(given, what)
        if arr.ndim == 0 and k == 2:
            mat = np.array([[1.0, float(arr)], [float(arr), 1.0]])
        elif arr.shape == (k, k):
            mat = arr
        else:
            raise ParameterError(
                f"{what} must be a {k} x {k} correlation matrix for {columns}"
                + (" or one number" if k == 2 else "")
                + f", got shape {arr.shape}"
            )
    _check_corr(mat, what)
    return mat


def _check_corr(mat: np.ndarray, what: str) -> None:
    """Ω must be symmetric with a unit diagonal and positive semi-definite."""
    if not np.allclose(mat, mat.T, atol=1e-10):
        raise ParameterError(f"{what} is not symmetric:\n{mat}")
    if not np.allclose(np.diag(mat), 1.0, atol=1e-10):
        raise ParameterError(f"{what} must have ones on the diagonal:\n{mat}")
    if np.linalg.eigvalsh(mat).min() < -1e-8:
        raise ParameterError(
            f"{what} is not a valid correlation matrix (not positive semi-definite):\n{mat}"
        )


def _from_varcorr(
    design: Design, vc: Any, what: str
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], float | None]:
    """SDs, correlation matrices and σ from ``fit.varcorr``'s layout."""
    need = {"grp", "var1", "var2", "sdcor"}
    if not isinstance(vc, pd.DataFrame) or not need <= set(vc.columns):
        raise ParameterError(
            f"{what}: 'varcorr' must be a DataFrame with columns grp, var1, var2, sdcor "
            "(the layout of fit.varcorr)"
        )
    groups = {t.group: i for i, t in enumerate(design.terms)}
    sd = [np.full(t.nc, np.nan) for t in design.terms]
    corr = [np.eye(t.nc) for t in design.terms]
    sigma = None
    for grp, var1, var2, value in vc[["grp", "var1", "var2", "sdcor"]].itertuples(index=False):
        label = f"varcorr row ({grp}, {var1}, {var2})"
        if grp == names.RESIDUAL:
            if pd.isna(var1):  # rows with var1 are other residual groups' σ (sigma=)
                sigma = float(_nonnegative(value, f"{what}: {label}"))
            continue
        if grp not in groups:
            raise ParameterError(
                f"{what}: unknown group {grp!r} in varcorr; the model's groups are "
                f"{', '.join(groups)} (a fit of another model?)"
            )
        i = groups[grp]
        columns = list(design.terms[i].cnames)
        if var1 not in columns or not (pd.isna(var2) or var2 in columns):
            raise ParameterError(f"{what}: {label} names a column not in {grp}'s {columns}")
        if pd.isna(var2):
            sd[i][columns.index(var1)] = _nonnegative(value, f"{what}: {label}")
        else:
            a, b = columns.index(var1), columns.index(var2)
            corr[i][a, b] = corr[i][b, a] = float(_finite(value, f"{what}: {label}"))
    for i, term in enumerate(design.terms):
        if np.isnan(sd[i]).any():
            raise ParameterError(f"{what}: varcorr lacks the SDs of {term.group}")
        _check_corr(corr[i], f"{what}: the varcorr correlations of {term.group}")
    return tuple(sd), tuple(corr), sigma


def _ranef(design: Design, value: Any, what: str) -> tuple[np.ndarray, ...]:
    """Per-term (ℓ, k) arrays from factor -> DataFrame (levels x all the factor's columns)."""
    if not isinstance(value, Mapping):
        raise ParameterError(f"{what}: 'ranef' must be a dict grouping factor -> DataFrame")
    unknown = [k for k in value if k not in design.group_factors]
    if unknown:
        raise ParameterError(
            f"{what}: unknown grouping factor(s) {unknown} in ranef; the model's are "
            f"{design.group_factors}"
        )
    blocks: dict[str, np.ndarray] = {}
    for factor in design.group_factors:
        if factor not in value:
            raise ParameterError(f"{what}: ranef lacks the grouping factor {factor!r}")
        df = value[factor]
        columns = design.factor_columns(factor)
        levels = list(design.factor_terms(factor)[0].levels)
        if not isinstance(df, pd.DataFrame) or [str(c) for c in df.columns] != columns:
            raise ParameterError(
                f"{what}: ranef[{factor!r}] must be a DataFrame with columns {columns}"
            )
        labels = [str(i) for i in df.index]
        if sorted(labels) != sorted(levels):
            raise ParameterError(
                f"{what}: ranef[{factor!r}] has levels that differ from the model's "
                f"{len(levels)} levels of {factor} (a fit to other data?)"
            )
        table = pd.DataFrame(df.to_numpy(dtype=float), index=labels).loc[levels]
        blocks[factor] = _finite(table.to_numpy(), f"{what}: ranef[{factor!r}]")
    return _split_by_term(design, blocks)

"""The model design shared by the REML and Bayesian paths.

A linear mixed model ``y = Xβ + Zb + ε`` with ``b ~ N(0, Σ)`` and ``ε ~ N(0, σ² I)``.
Z is the column-wise concatenation of one block per random-effect term; term ``i``
is ``(r | f)`` with raw model matrix ``X_i`` (n x k_i) and grouping factor ``f``
(ℓ_i levels).  Its block ``Z_i`` is the transposed Khatri-Rao product of the level
indicators and ``X_i``: the coefficients are *level-major* (level 1's k_i
coefficients, then level 2's, ...), exactly as lme4's ``reTrms``.
"""

from __future__ import annotations

import functools
import itertools
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import names
from .errors import BayesLMMError, DataError, DataWarning, FormulaError
from .formula import CONTR_POLY, Translation, parse_formula, to_formulaic


@functools.cache
def lower_triangle(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of a k x k lower triangle in lme4's column-wise θ order."""
    rows, cols = np.triu_indices(k)  # row-major upper = column-major lower, transposed
    return cols, rows


@dataclass(frozen=True, eq=False)
class ReTerm:
    """One random-effect term ``(cnames | factor)`` of the model.

    Attributes
    ----------
    group:   lme4's ``VarCorr`` group label ("Subject", "Subject.1" for a second
             term on the same factor, "cask:batch").
    factor:  grouping factor name ("Subject", "cask:batch").
    levels:  level labels (strings) in R's order.
    codes:   int array (n,): the level index of each row.
    cnames:  column names of ``X`` ("(Intercept)", "Days").
    X:       the term's raw model matrix, float (n, k).
    """

    group: str
    factor: str
    levels: tuple[str, ...]
    codes: np.ndarray
    cnames: tuple[str, ...]
    X: np.ndarray

    @property
    def nl(self) -> int:
        """Number of levels ℓ."""
        return len(self.levels)

    @property
    def nc(self) -> int:
        """Number of columns k (random coefficients per level)."""
        return len(self.cnames)

    @property
    def q(self) -> int:
        """Number of random effects ℓ·k."""
        return self.nl * self.nc

    @property
    def ntheta(self) -> int:
        """Length of this term's θ block: the lower triangle of a k x k factor."""
        return self.nc * (self.nc + 1) // 2

    @property
    def theta_names(self) -> list[str]:
        """lme4's θ names, column-wise lower triangle: ``g.a``, ``g.b.a``, ``g.b``."""
        c = self.cnames
        return [
            f"{self.factor}.{c[i]}" if i == j else f"{self.factor}.{c[i]}.{c[j]}"
            for i, j in zip(*lower_triangle(self.nc), strict=True)
        ]

    @property
    def theta_lower(self) -> np.ndarray:
        """Lower bounds of this term's θ: 0 on the diagonal, -inf below it."""
        return np.array(
            [0.0 if i == j else -np.inf for j in range(self.nc) for i in range(j, self.nc)]
        )

    @property
    def theta_start(self) -> np.ndarray:
        """lme4's default start: 1 on the diagonal, 0 below it."""
        return np.array([1.0 if i == j else 0.0 for j in range(self.nc) for i in range(j, self.nc)])

    def Z(self) -> sp.csc_matrix:
        """Sparse n x (ℓ·k) block ``Z_i`` with level-major columns."""
        n, k = self.X.shape
        rows = np.repeat(np.arange(n), k)
        cols = (self.codes[:, None] * k + np.arange(k)[None, :]).ravel()
        return sp.csc_matrix((self.X.ravel(), (rows, cols)), shape=(n, self.q))

    def nested_in(self, other: ReTerm) -> bool:
        """Whether this term's factor is nested in ``other``'s (cask:batch in batch): it has
        more levels, and each of its levels occurs within a single level of ``other``."""
        if self.nl <= other.nl:
            return False
        pairs = np.unique(self.codes * other.nl + other.codes)
        return len(pairs) == self.nl


@dataclass(frozen=True, eq=False)
class ResidualGroups:
    """The groups of a residual SD per group (nlme's ``varIdent(form = ~ 1 | factor)``):
    ``levels`` in order of first appearance in the data, as nlme orders its strata (the
    first row's level is the reference), ``codes`` each row's."""

    factor: str
    levels: tuple[str, ...]
    codes: np.ndarray

    @property
    def ngroups(self) -> int:
        return len(self.levels)


@dataclass(frozen=True, eq=False)
class Design:
    """Everything both estimation paths read: y, X, and the random-effect terms.

    ``terms`` are in lme4's order (sorted by number of levels, largest first, with
    lme4's tie rule), so θ, ``varcorr`` and ``ranef`` line up with lme4.
    """

    formula: str
    response: str
    y: np.ndarray
    X: np.ndarray
    fixef_names: tuple[str, ...]
    terms: tuple[ReTerm, ...]
    columns: dict[str, np.ndarray | pd.api.extensions.ExtensionArray]
    n_dropped: int = 0
    dropped_columns: tuple[str, ...] = field(default=())
    #: lme4's precision weights (Var ε_i = σ²/w_i), None for all 1
    weights: np.ndarray | None = None
    #: the known part of the linear predictor (``offset()`` terms plus ``offset=``), or None
    offset: np.ndarray | None = None
    #: how to compute the offset on new rows: the ``offset()`` expressions (R syntax)
    offset_terms: tuple[str, ...] = ()
    #: the column ``offset=`` named ("" when it was an array: no new rows then)
    offset_column: str | None = None
    #: the residual SD's groups (``sigma="~ 1 | g"``), None for one σ
    residual: ResidualGroups | None = None

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The model frame: the columns the formula uses, complete rows, user dtypes
        (with R's ``(weights)`` and ``(offset)`` columns where the model has them)."""
        return pd.DataFrame(self.columns)

    @property
    def weight_offset_note(self) -> list[str]:
        """Summary lines naming the weights and the offset, if any."""
        lines = []
        if self.weights is not None:
            lines.append("Weights: precision weights w (Var(e_i) = sigma^2 / w_i)")
        if self.offset is not None:
            parts = [f"offset({t})" for t in self.offset_terms]
            if self.offset_column is not None:
                parts.append(self.offset_column or "offset= values")
            lines.append(f"Offset: {' + '.join(parts)}")
        return lines

    @property
    def is_plain(self) -> bool:
        """No weights, offset or residual groups: y = Xβ + Zb + ε with ε ~ N(0, σ²I)."""
        return self.weights is None and self.offset is None and self.residual is None

    @property
    def log_weights(self) -> float:
        """Σ log w_i (lme4 subtracts it from the REML criterion and the deviance)."""
        return 0.0 if self.weights is None else float(np.log(self.weights).sum())

    def working(self, ratio: np.ndarray | None = None) -> Design:
        """The equivalent homoscedastic design: rows scaled by sqrt(w_i) (w_i the weight,
        divided by the squared σ ratio of row i's residual group given in ``ratio``) and
        the offset subtracted from y.  Its σ, θ, β and b are this design's; its criteria
        differ by Σ log w_i (see :attr:`log_weights`)."""
        if self.is_plain:
            return self
        w = self.row_weights(ratio)
        y = self.y if self.offset is None else self.y - self.offset
        if w is None:
            return replace(self, y=y, offset=None, offset_terms=(), residual=None)
        s = np.sqrt(w)
        return replace(
            self,
            y=s * y,
            X=self.X * s[:, None],
            terms=tuple(replace(t, X=t.X * s[:, None]) for t in self.terms),
            weights=None,
            offset=None,
            offset_terms=(),
            residual=None,
        )

    def residual_scale(self, ratio: np.ndarray | None = None) -> np.ndarray | None:
        """Each row's residual SD over σ, 1/sqrt(w_i) times its group's ratio (None: 1)."""
        w = self.row_weights(ratio)
        return None if w is None else 1.0 / np.sqrt(w)

    def row_weights(self, ratio: np.ndarray | None = None) -> np.ndarray | None:
        """Each row's precision relative to σ²: w_i / ratio[g_i]² (None: all 1)."""
        w = self.weights
        if self.residual is not None and ratio is not None:
            scale = 1.0 / np.asarray(ratio, dtype=float)[self.residual.codes] ** 2
            w = scale if w is None else w * scale
        return w

    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def missing_note(self) -> list[str]:
        """R's "(k observations deleted due to missingness)" line for summaries, if any."""
        if not self.n_dropped:
            return []
        s = "s" if self.n_dropped > 1 else ""
        return [f"({self.n_dropped} observation{s} deleted due to missingness)"]

    @property
    def p(self) -> int:
        """Number of fixed-effect columns (after dropping aliased ones)."""
        return self.X.shape[1]

    @property
    def q(self) -> int:
        """Total number of random effects."""
        return sum(t.q for t in self.terms)

    @property
    def group_factors(self) -> list[str]:
        """Distinct grouping factors in term order (lme4's ``names(flist)``)."""
        return list(dict.fromkeys(t.factor for t in self.terms))

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor (lme4's ``ngrps``)."""
        return {t.factor: t.nl for t in self.terms}

    @property
    def intercept_index(self) -> int | None:
        """Position of ``(Intercept)`` among the fixed effects, None without one."""
        if "(Intercept)" not in self.fixef_names:
            return None
        return self.fixef_names.index("(Intercept)")

    def factor_terms(self, factor: str) -> list[ReTerm]:
        """The terms on grouping factor ``factor``, in term order."""
        return [t for t in self.terms if t.factor == factor]

    def factor_columns(self, factor: str) -> list[str]:
        """The factor's columns side by side over its terms, as lme4's ``ranef`` has them."""
        return [c for t in self.factor_terms(factor) for c in t.cnames]

    def coords(self) -> dict[str, list]:
        """The named coordinates of the model's variables (PyMC's dims, the DataTree's):
        fixed effects, slopes, observations, each factor's levels and each term's columns."""
        out: dict[str, list] = {
            names.FIXEF_DIM: list(self.fixef_names),
            names.OBS: list(range(self.nobs)),
        }
        slopes = [n for j, n in enumerate(self.fixef_names) if j != self.intercept_index]
        if slopes:
            out[names.SLOPE] = slopes
        for t in self.terms:
            out[t.factor] = list(t.levels)
            out[names.term_dim(t.group)] = list(t.cnames)
            out[names.term_dim_bis(t.group)] = list(t.cnames)
        return out

    @property
    def parameters(self) -> list[names.Parameter]:
        """Every scalar parameter: fixed effects, per term SDs and correlations, sigma."""
        return names.parameters(self.fixef_names, [(t.group, t.cnames) for t in self.terms])

    def differences(self, other: Design, *, same_data: bool = True) -> list[str]:
        """What makes ``other`` a different model; empty when it is the same one.

        Always compared: the fixed effects and the random-effect terms (group labels and
        columns): the parameters mean the same.  With ``same_data`` also the formula, the
        observations (y, X) and the grouping factors' levels: the same model fitted to the
        same data.
        """
        if other is self:
            return []
        problems = []
        if same_data and self.formula != other.formula:
            problems.append(f"formulas differ ({self.formula!r} vs {other.formula!r})")
        if same_data and self.nobs != other.nobs:
            problems.append(f"numbers of observations differ ({self.nobs} vs {other.nobs})")
        elif same_data:
            if not np.array_equal(self.y, other.y):
                problems.append("responses differ")
            if self.X.shape == other.X.shape and not np.array_equal(self.X, other.X):
                problems.append("fixed-effect model matrices differ")
            for what in ("weights", "offset"):
                a, b = getattr(self, what), getattr(other, what)
                if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                    problems.append(f"{what} differ")
            ra, rb = self.residual, other.residual
            levels = [None if r is None else r.levels for r in (ra, rb)]
            if levels[0] != levels[1]:
                problems.append("residual groups (sigma=) differ")
        if self.fixef_names != other.fixef_names:
            problems.append(
                f"fixed effects differ ({list(self.fixef_names)} vs {list(other.fixef_names)})"
            )

        def terms(d: Design) -> list[tuple]:
            return [(t.group, t.cnames) + ((t.levels,) if same_data else ()) for t in d.terms]

        if terms(self) != terms(other):
            problems.append("random-effect terms or their levels differ")
        return problems

    @property
    def theta_names(self) -> list[str]:
        return [name for t in self.terms for name in t.theta_names]

    @property
    def theta_lower(self) -> np.ndarray:
        return np.concatenate([t.theta_lower for t in self.terms])

    @property
    def theta_start(self) -> np.ndarray:
        return np.concatenate([t.theta_start for t in self.terms])

    @property
    def theta_slices(self) -> list[slice]:
        """Slice of θ belonging to each term."""
        out, start = [], 0
        for t in self.terms:
            out.append(slice(start, start + t.ntheta))
            start += t.ntheta
        return out

    def Z(self) -> sp.csc_matrix:
        """Sparse n x q random-effects model matrix ``[Z_1 ... Z_k]``."""
        return sp.hstack([t.Z() for t in self.terms], format="csc")


# --------------------------------------------------------------------------------------
# Building the design from a formula and a DataFrame (lme4's lFormula)
# --------------------------------------------------------------------------------------


def _contr_poly(values: Any) -> Any:
    """An ordered factor coded as R codes it: ``contr.poly`` (``.L``, ``.Q``, ``.C``, ``^4``)."""
    from formulaic.transforms import C
    from formulaic.transforms.contrasts import PolyContrasts

    return C(values, PolyContrasts())


_CONTEXT: dict[str, Callable[..., Any]] = {
    CONTR_POLY: _contr_poly,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}


def build_design(
    formula: str,
    data: pd.DataFrame,
    *,
    weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    offset: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    sigma: str | None = None,
) -> Design:
    """Compile an lme4 formula and a DataFrame into a :class:`Design` (lme4's ``lFormula``).

    The caller's DataFrame is never modified.  Rows with a missing value in any
    column the formula uses are dropped (counted in ``n_dropped``, with a warning).
    ``weights``: lme4's precision weights, a column name or one value per row of ``data``
    (positive and finite: anything else is a DataError naming the rows).  ``offset``: a
    known term added to the linear predictor (a column or one value per row), summed with
    the formula's ``offset(...)`` terms.  ``sigma``: ``"~ 1 | g"`` gives each level of
    column g its own residual SD (nlme's ``varIdent``).
    """
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(
            f"formula {formula!r} has no random-effect term: a mixed model needs at least "
            "one, like (1 | g)"
        )
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows")

    columns = [str(c) for c in data.columns]
    alias = _Aliases(columns)
    response = alias.encode(parsed.response)
    fixed = alias.encode(parsed.fixed)
    bars = [(alias.encode(b.lhs), b) for b in parsed.bars]
    offsets = [alias.encode(o) for o in parsed.offsets]
    resid_factor = residual_factor(sigma, columns)

    used: list[str] = []
    for expr, where in [(response, "the response"), (fixed, "the fixed effects")] + [
        (lhs, str(b)) for lhs, b in bars
    ]:
        used += alias.required(expr, where)
    for expr, raw in zip(offsets, parsed.offsets, strict=True):
        for name in alias.required(f"I({expr})", f"offset({raw})"):
            _check_no_na(data, name, f"offset({raw})")
            used.append(name)
    if resid_factor is not None:
        used.append(resid_factor)
    w_all = _row_values(data, weights, "weights")
    off_all = _row_values(data, offset, "offset")
    if w_all is not None:
        _check_weights(data, w_all)
    for _, b in bars:
        for name in b.factors:
            if name not in alias.code:
                raise DataError(f"grouping factor '{name}' in {b} is not a column of data")
            used.append(name)
    used = list(dict.fromkeys(used))

    cols = _Columns(data, used, alias)
    if cols.n_dropped:
        warnings.warn(
            f"dropped {cols.n_dropped} of {len(data)} rows with missing values "
            f"in {', '.join(repr(c) for c in cols.with_missing)}",
            DataWarning,
            stacklevel=3,
        )
    n_dropped = cols.n_dropped

    y = _response(parsed.response, response, cols, alias)
    X, columns = _model_matrix(fixed, cols, alias, "the fixed effects")
    keep = independent_columns(X)
    aliased = [name for j, name in enumerate(columns) if j not in keep]
    X, columns = X[:, keep], [columns[j] for j in keep]
    if aliased:
        warnings.warn(
            "fixed-effect model matrix is rank deficient so dropping "
            f"{len(aliased)} column{'s' if len(aliased) > 1 else ''}: {', '.join(aliased)}",
            DataWarning,
            stacklevel=3,
        )

    n = len(y)
    terms = []
    for lhs, bar in bars:
        Xi, cnames = _model_matrix(lhs, cols, alias, str(bar))
        if Xi.shape[1] == 0:
            raise FormulaError(f"random-effect term {bar} has no columns")
        levels, codes = _grouping_factor(cols, bar.factors)
        if len(levels) < 2:
            raise DataError(
                f"grouping factor '{bar.factor}' in {bar} has a single level "
                f"({levels[0]!r}); a random effect needs at least two"
            )
        if len(levels) >= n:
            raise DataError(
                f"grouping factor '{bar.factor}' has {len(levels)} levels for {n} observations: "
                "the number of levels must be smaller than the number of observations "
                "(the random effect and the residual are not identifiable)"
            )
        if len(levels) * len(cnames) >= n:
            raise DataError(
                f"term {bar} has {len(levels) * len(cnames)} random effects for {n} "
                "observations: the random-effect parameters and the residual variance "
                "are unidentifiable"
            )
        independent = independent_columns(Xi)
        if len(independent) < Xi.shape[1]:
            collinear = [c for j, c in enumerate(cnames) if j not in independent]
            warnings.warn(
                f"the columns of random-effect term {bar} are collinear: "
                f"{', '.join(collinear)} {'is a' if len(collinear) == 1 else 'are'} linear "
                f"combination{'' if len(collinear) == 1 else 's'} of "
                f"{', '.join(cnames[j] for j in independent)}: the data cannot separate "
                "their SDs and correlations (REML gives a singular fit; the posterior follows "
                "the prior where the data are silent). Drop the redundant column",
                DataWarning,
                stacklevel=3,
            )
        terms.append((bar.factor, tuple(levels), codes, tuple(cnames), Xi))

    terms = [terms[i] for i in _term_order([len(t[1]) for t in terms])]
    seen: dict[str, int] = {}
    reterms = []
    for factor, term_levels, term_codes, term_cnames, Xi in terms:
        k = seen.get(factor, 0)
        seen[factor] = k + 1
        group = factor if k == 0 else f"{factor}.{k}"
        reterms.append(ReTerm(group, factor, term_levels, term_codes, term_cnames, Xi))

    off = _offset_values(offsets, cols, alias, parsed.offsets)
    if off_all is not None:
        off = off_all[cols.keep] if off is None else off + off_all[cols.keep]
    w = None if w_all is None else w_all[cols.keep]
    frame = dict(cols.values)
    if w is not None:
        frame["(weights)"] = w
    if off_all is not None:  # R's (offset) column; a named one also by its name (new rows)
        frame["(offset)"] = off_all[cols.keep]
        if isinstance(offset, str):
            frame[offset] = off_all[cols.keep]
    resid = None
    if resid_factor is not None:
        levels, codes = _first_appearance(*_grouping_factor(cols, (resid_factor,)))
        if len(levels) < 2:
            raise DataError(
                f"sigma={sigma!r}: column '{resid_factor}' has a single level "
                f"({levels[0]!r}); a residual SD per group needs at least two"
            )
        resid = ResidualGroups(resid_factor, tuple(levels), codes)
    return Design(
        formula=parsed.formula,
        response=parsed.response,
        y=y,
        X=X,
        fixef_names=tuple(columns),
        terms=tuple(reterms),
        columns=frame,
        n_dropped=n_dropped,
        dropped_columns=tuple(aliased),
        weights=w,
        offset=off,
        offset_terms=parsed.offsets,
        offset_column=None if offset is None else offset if isinstance(offset, str) else "",
        residual=resid,
    )


def frame_options(frame: pd.DataFrame) -> dict[str, str]:
    """The ``weights=`` / ``offset=`` a saved model frame gives back: R's ``(weights)`` and
    ``(offset)`` columns, which :func:`build_design` writes into ``Design.frame``."""
    return {k: f"({k})" for k in ("weights", "offset") if f"({k})" in frame.columns}


def _first_appearance(levels: list[str], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Levels in order of first appearance in the rows (nlme's ``varIdent`` strata:
    ``unique(strat)``, so the first row's level is the reference), codes renumbered."""
    _, first = np.unique(codes, return_index=True)
    order = np.argsort(first)  # level indices by first row
    remap = np.empty(len(levels), dtype=np.intp)
    remap[order] = np.arange(len(order))
    return [levels[i] for i in order], remap[codes]


def residual_factor(sigma: str | None, columns: Sequence[str]) -> str | None:
    """The column of ``sigma="~ 1 | g"`` (also ``"1 | g"`` or ``"g"``), None for None."""
    if sigma is None:
        return None
    if not isinstance(sigma, str):
        raise FormulaError(f"sigma must be a string like '~ 1 | g', got {type(sigma).__name__}")
    m = re.fullmatch(r"\s*(?:~\s*)?(?:1\s*\|\s*)?`?([^`|~]+?)`?\s*", sigma)
    if m is None:
        raise FormulaError(f"sigma={sigma!r}: write '~ 1 | g' for one residual SD per level of g")
    name = m.group(1)
    if name not in columns:
        raise DataError(f"sigma={sigma!r}: column '{name}' is not a column of data")
    return name


def _rows_text(index: pd.Index, where: np.ndarray) -> str:
    rows = index[where]
    shown = ", ".join(repr(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def _check_no_na(data: pd.DataFrame, name: str, where: str) -> None:
    na = np.asarray(data[name].isna())
    if na.any():
        raise DataError(
            f"column '{name}' of {where} has missing values ({_rows_text(data.index, na)}): "
            "an offset must be known for every row"
        )


def _row_values(data: pd.DataFrame, values: Any, what: str) -> np.ndarray | None:
    """``weights=`` / ``offset=`` as floats, one per row of ``data`` (a column name or a
    sequence); DataErrors name the column, the length or the rows at fault."""
    if values is None:
        return None
    where = what
    if isinstance(values, str):
        if values not in data.columns:
            raise DataError(f"{what}={values!r} is not a column of data")
        where = f"{what} column '{values}'"
        values = data[values]
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != len(data):
        raise DataError(
            f"{what} must give one value per row of data ({len(data)}), got "
            f"{arr.shape[0] if arr.ndim == 1 else f'an array of shape {arr.shape}'}"
        )
    if arr.dtype.kind not in "iuf" and not (
        arr.dtype.kind == "O" and pd.api.types.is_numeric_dtype(pd.Series(arr).infer_objects())
    ):
        raise DataError(f"{where} must be numeric, got dtype {arr.dtype}")
    out = np.asarray(arr, dtype=float)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataError(
            f"{where} has missing or infinite values ({_rows_text(data.index, bad)}): "
            f"{'weights' if what == 'weights' else 'an offset'} must be known for every row"
        )
    return out


def _check_weights(data: pd.DataFrame, w: np.ndarray) -> None:
    if (w == 0).all():
        raise DataError("weights are all zero: at least the observations used need weight > 0")
    bad = w <= 0
    if bad.any():
        raise DataError(
            f"weights must be positive: {_rows_text(data.index, bad)} "
            f"{'have' if bad.sum() > 1 else 'has'} weight <= 0 (drop those rows instead)"
        )


def _offset_values(
    exprs: Sequence[str], cols: _Columns, alias: _Aliases, raw: Sequence[str]
) -> np.ndarray | None:
    """The sum of the ``offset(...)`` expressions on the kept rows, None without any."""
    total = None
    for expr, text in zip(exprs, raw, strict=True):
        code = expr if re.fullmatch(r"_v\d+_", expr.strip()) else f"I({expr})"
        values, _ = _model_matrix(f"0 + {code}", cols, alias, f"offset({text})")
        if values.shape[1] != 1:
            raise DataError(f"offset({text}) must be one numeric value per row")
        total = values[:, 0] if total is None else total + values[:, 0]
    return total


def _term_order(nl: list[int]) -> list[int]:
    """lme4's order of the terms (mkReTrms) from their numbers of levels in formula order:
    by number of levels, decreasing, only when some later term has more levels;
    ``rev(order(nl))`` puts tied terms in reverse formula order."""
    if any(b > a for a, b in itertools.pairwise(nl)):
        return sorted(range(len(nl)), key=lambda i: nl[i])[::-1]
    return list(range(len(nl)))


_PLAIN_SUM = re.compile(r"\s*(?:[01]|_v\d+_)(?:\s*\+\s*(?:[01]|_v\d+_))*\s*")


class _Aliases:
    """Rename data columns to safe identifiers so any column name works in formulaic."""

    def __init__(self, columns: list[str]):
        self.code = {c: f"_v{i}_" for i, c in enumerate(columns)}
        self.name = {v: k for k, v in self.code.items()}
        # longest first so 'Sepal.Length' wins over a column called 'Sepal'
        ordered = sorted(columns, key=len, reverse=True)
        self._pattern = re.compile(
            "|".join(
                [r"`([^`]+)`"] + [r"(?<![\w.`])" + re.escape(c) + r"(?![\w.`(])" for c in ordered]
            )
        )

    def encode(self, expr: str) -> str:
        def sub(m: re.Match) -> str:
            if m.group(1) is not None:  # `backticked name`
                if m.group(1) not in self.code:
                    raise DataError(f"column '{m.group(1)}' not found in data")
                return self.code[m.group(1)]
            return self.code[m.group(0)]

        return self._pattern.sub(sub, expr)

    def decode(self, text: str) -> str:
        return re.sub(r"_v\d+_", lambda m: self.name[m.group(0)], text)

    def required(self, expr: str, where: str) -> list[str]:
        if _PLAIN_SUM.fullmatch(expr):  # "1 + _v1_": nothing for formulaic to parse
            return [self.name[v] for v in dict.fromkeys(re.findall(r"_v\d+_", expr))]
        import formulaic  # 0.7 s to import: only formulas that need it pay

        try:
            variables = formulaic.Formula(to_formulaic(expr).code).required_variables
        except Exception as exc:
            raise FormulaError(f"cannot parse {self.decode(expr)!r} in {where}: {exc}") from None
        unknown = sorted(v for v in variables if v not in self.name and v not in _CONTEXT)
        if unknown:
            raise DataError(
                f"column{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)} in {where} not found in data"
            )
        # formulaic does not report the arguments of stateful transforms (center(x)):
        # every alias in the encoded expression is a column it uses
        return [self.name[v] for v in dict.fromkeys(re.findall(r"_v\d+_", expr))]


class _Columns:
    """The columns the formula uses, rows with a missing value dropped (no copy of
    ``data`` otherwise), by original name; formulaic's alias-coded frame on demand."""

    def __init__(self, data: pd.DataFrame, used: list[str], alias: _Aliases):
        self.alias = alias
        raw: dict[str, np.ndarray | pd.api.extensions.ExtensionArray] = {}
        missing = np.zeros(len(data), dtype=bool)
        self.with_missing = []
        for c in data.columns:
            if str(c) not in used:
                continue
            s = data[c]
            if isinstance(s, pd.DataFrame):
                raise DataError(f"column '{c}' appears more than once in data")
            values = s.array if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) else s.values
            na = np.isnan(values) if values.dtype.kind == "f" else np.asarray(s.isna())
            if na.any():
                missing |= na
                self.with_missing.append(str(c))
            raw[str(c)] = values
        self.keep = ~missing  # the rows of ``data`` the design keeps
        self.n_dropped = int(missing.sum())
        if self.n_dropped == len(data):
            empty = [c for c in self.with_missing if pd.isna(raw[c]).all()]
            detail = (
                f"column{'s' if len(empty) > 1 else ''} {', '.join(repr(c) for c in empty)} "
                f"{'have' if len(empty) > 1 else 'has'} no values"
                if empty
                else f"every row misses a value in {', '.join(repr(c) for c in self.with_missing)}"
            )
            raise DataError(f"no rows left after dropping rows with missing values: {detail}")
        # copies: the design must not change when the caller edits ``data`` later
        raw = {c: v[~missing] if self.n_dropped else v.copy() for c, v in raw.items()}
        self.values = raw
        self.n = len(data) - self.n_dropped
        # numeric (not bool) columns as floats, converted once
        self._floats = {
            c: np.asarray(v, dtype=float) for c, v in raw.items() if v.dtype.kind in "iuf"
        }
        for c, x in self._floats.items():
            if not np.isfinite(x).all():
                raise DataError(f"column '{c}' has infinite values")

    def numeric(self, name: str) -> np.ndarray | None:
        """The column as floats when it is numeric (not bool), else None."""
        return self._floats.get(name)

    @cached_property
    def ordered(self) -> frozenset[str]:
        """Alias codes of the ordered factors (R codes them with ``contr.poly``)."""
        return frozenset(
            self.alias.code[c]
            for c, v in self.values.items()
            if isinstance(v.dtype, pd.CategoricalDtype) and v.dtype.ordered
        )

    @cached_property
    def work(self) -> pd.DataFrame:
        """Alias-coded model columns for formulaic (R's factor conventions)."""
        return pd.DataFrame(
            {self.alias.code[c]: _as_model_column(pd.Series(v)) for c, v in self.values.items()}
        )


def _as_model_column(s: pd.Series) -> pd.Series:
    """Strings and bools become factors with R's level order; numbers stay numeric."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        used = np.bincount(s.cat.codes.to_numpy(), minlength=len(s.cat.categories))
        return s if used.all() else s.cat.remove_unused_categories()
    if pd.api.types.is_bool_dtype(s):
        flags = np.where(s, "TRUE", "FALSE")
        return pd.Series(pd.Categorical(flags, categories=["FALSE", "TRUE"]), index=s.index)
    if pd.api.types.is_integer_dtype(s):
        return s.astype(np.int64)  # C(g) levels print as R does: 'C(g)2', not 'C(g)2.0'
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    labels = s.astype(str)
    return pd.Series(pd.Categorical(labels, categories=sorted(labels.unique())), index=s.index)


def _r_name(column: str, alias: _Aliases, code: Translation) -> str:
    """formulaic's column name -> R's: 'Intercept' -> '(Intercept)', 'f[T.b]' -> 'fb',
    'I(x ** 2)' -> 'I(x^2)' for R's 'I(x^2)', 'o[.L]' -> 'o.L'."""
    if column == "Intercept":
        return "(Intercept)"
    column = re.sub(r"\[(?:T\.)?(.*?)\]", r"\1", code.r_name(column))
    return alias.decode(column)


def _additive_numeric(
    expr: str, cols: _Columns, alias: _Aliases
) -> tuple[np.ndarray, list[str]] | None:
    """X and names without formulaic for the common ``1 + x + z`` (numeric columns only).

    Returns None for anything else (factors, transformations, interactions, ``-``).
    """
    if "-" in expr:
        return None
    pieces = [p.strip() for p in expr.split("+")]
    intercept = "0" not in pieces
    used = list(dict.fromkeys(p for p in pieces if p not in ("0", "1")))
    columns = []
    for p in used:
        x = cols.numeric(alias.name[p]) if p in alias.name else None
        if x is None:
            return None
        columns.append(x)
    X = np.empty((cols.n, intercept + len(columns)))
    if intercept:
        X[:, 0] = 1.0
    for j, x in enumerate(columns, start=intercept):
        X[:, j] = x
    return X, ["(Intercept)"] * intercept + [alias.name[c] for c in used]


def _model_matrix(
    expr: str, cols: _Columns, alias: _Aliases, where: str
) -> tuple[np.ndarray, list[str]]:
    simple = _additive_numeric(expr, cols, alias)
    if simple is not None:
        return simple
    import formulaic

    work = cols.work
    code = to_formulaic(expr, cols.ordered)
    try:
        mm = formulaic.model_matrix(code.code, work, context=_CONTEXT, na_action="ignore")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = alias.decode(code.r_name(msg))
        unknown = re.search(r"name '([^']+)' is not defined", msg)
        if unknown:
            raise DataError(f"column '{unknown.group(1)}' in {where} not found in data") from None
        raise FormulaError(f"cannot build {where} from {alias.decode(expr)!r}: {msg}") from None
    X = np.asarray(mm, dtype=float).reshape(len(work), -1)
    columns = [_r_name(c, alias, code) for c in mm.columns]
    if not np.isfinite(X).all():
        col = columns[int(np.where(~np.isfinite(X).all(axis=0))[0][0])]
        raise DataError(f"column '{col}' of {where} has non-finite values (e.g. log of 0)")
    return X, columns


#: R's tolerance for declaring a column aliased (``lm``'s ``qr(tol = 1e-7)``)
ALIAS_TOL = 1e-7


def independent_columns(X: np.ndarray, tol: float = ALIAS_TOL) -> list[int]:
    """Indices of the columns R keeps: a column is aliased (dropped) when it is a linear
    combination of the kept ones to its left.

    Greedy, left to right (R's ``dqrdc2`` pivoting, as lme4 and ``lm`` use it): column j
    is kept when its residual after projection on the kept columns has norm above
    ``tol`` times its own norm.
    """
    keep: list[int] = []
    Q = np.empty((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j]
        norm = np.linalg.norm(col)
        resid = col - Q @ (Q.T @ col)
        resid -= Q @ (Q.T @ resid)  # re-orthogonalise for stability
        rnorm = np.linalg.norm(resid)
        if norm > 0 and rnorm > tol * norm:
            keep.append(j)
            Q = np.column_stack([Q, resid / rnorm])
    return keep


def _response(text: str, expr: str, cols: _Columns, alias: _Aliases) -> np.ndarray:
    if text in cols.values:
        y = cols.numeric(text)
        if y is None:
            dtype = cols.values[text].dtype
            raise DataError(f"response '{text}' must be numeric, got dtype {dtype}")
        return y.copy()
    Y, _ = _model_matrix(f"0 + {expr}", cols, alias, "the response")  # log(y) works too
    if Y.shape[1] != 1:
        raise DataError(f"response '{text}' must be one numeric column")
    return Y[:, 0].copy()


def factor_levels(
    v: np.ndarray | pd.api.extensions.ExtensionArray,
) -> tuple[list[str], np.ndarray]:
    """Level labels in R's order and the integer code of each row."""
    if isinstance(v, pd.Categorical):
        codes = np.asarray(v.codes)
        used = np.flatnonzero(np.bincount(codes, minlength=len(v.categories)))
        remap = np.empty(len(v.categories), dtype=np.intp)
        remap[used] = np.arange(len(used))  # unused levels are dropped, as lme4 does
        return [str(x) for x in v.categories.take(used).tolist()], remap[codes]
    s = pd.Series(v)
    if pd.api.types.is_bool_dtype(s):
        s = s.map({False: "FALSE", True: "TRUE"})
    values, codes = np.unique(s.to_numpy(), return_inverse=True)
    if pd.api.types.is_numeric_dtype(s):
        labels = [str(int(v)) if float(v).is_integer() else str(v) for v in values]
    else:
        labels = [str(v) for v in values]
    return labels, codes.astype(np.intp)


def _grouping_factor(cols: _Columns, factors: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """Levels and codes of ``a:b:...``: observed combinations, the first factor slowest."""
    labels, codes = factor_levels(cols.values[factors[0]])
    for name in factors[1:]:
        lab2, codes2 = factor_levels(cols.values[name])
        combined = codes * len(lab2) + codes2
        used, codes = np.unique(combined, return_inverse=True)
        labels = [f"{labels[u // len(lab2)]}:{lab2[u % len(lab2)]}" for u in used]
    return labels, codes.astype(np.intp)


# --------------------------------------------------------------------------------------
# New rows in a design's columns (prediction)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TermRows:
    """A random-effect term of a design on new rows.

    ``X`` the term's columns (m, k); ``labels`` each row's level of the term's grouping
    factor (str); ``codes`` that level's index in ``term.levels``, -1 where the data have
    no such level.
    """

    term: ReTerm
    X: np.ndarray
    labels: np.ndarray
    codes: np.ndarray

    @property
    def seen(self) -> np.ndarray:
        """Whether each row's level is one of the data's (bool, m)."""
        return self.codes >= 0


@dataclass(frozen=True, eq=False)
class NewRows:
    """Rows in the columns of a design: what every prediction evaluates.

    ``X`` the fixed-effect model matrix (m, p) with the design's columns; ``terms`` one
    :class:`TermRows` per term of the design (same order); ``index`` the rows' labels (the
    index of ``newdata``, or 0..n-1 for the design's own rows).
    """

    X: np.ndarray
    terms: tuple[TermRows, ...]
    index: pd.Index
    #: the model's offset on these rows (None: none)
    offset: np.ndarray | None = None

    @property
    def m(self) -> int:
        """Number of rows."""
        return self.X.shape[0]

    def linear_predictor(
        self, fixef: np.ndarray, ranef: Sequence[np.ndarray | None] | None = None
    ) -> np.ndarray:
        """``η = Xβ + Σ_t X_t · b_t[level]`` for S parameter sets at once: (S, m).

        ``fixef`` (S, p); ``ranef`` per term (S, ℓ, k) in the term's level order, or None to
        leave that term (or, for ``ranef=None``, every term) out.  A row whose level the
        data lack gets b = 0 (the population line), as lme4's ``allow.new.levels``.
        """
        fixef = np.atleast_2d(fixef)
        eta = np.zeros((fixef.shape[0], self.m))
        if self.offset is not None:
            eta += self.offset
        for j in range(self.X.shape[1]):  # column by column: no (S, m, p) temporaries
            eta += fixef[:, j : j + 1] * self.X[:, j]
        for rows, b in zip(self.terms, ranef or [None] * len(self.terms), strict=True):
            if b is None:
                continue
            b = np.asarray(b, dtype=float)
            padded = np.concatenate([b, np.zeros_like(b[:, :1])], axis=1)  # level -1: b = 0
            codes = np.where(rows.seen, rows.codes, b.shape[1])
            for c in range(b.shape[2]):
                eta += padded[:, codes, c] * rows.X[:, c]
        return eta


#: what ``predict``'s ``group_effects`` may say for a grouping factor
GROUP_EFFECTS = ("observed", "new", "none")
#: what ``predict``'s ``kind`` may be
PREDICTION_KINDS = ("mean", "response")


def group_effect_modes(design: Design, group_effects: str | Mapping[str, str]) -> dict[str, str]:
    """``predict``'s ``group_effects`` as one of :data:`GROUP_EFFECTS` per grouping factor.

    A string applies to every factor; a mapping names factors (the others: "observed").
    """
    if isinstance(group_effects, str):
        given: Mapping[str, str] = dict.fromkeys(design.group_factors, group_effects)
    elif isinstance(group_effects, Mapping):
        unknown = [f for f in group_effects if f not in design.group_factors]
        if unknown:
            raise BayesLMMError(
                f"group_effects names unknown grouping factors {unknown}; "
                f"the model has {design.group_factors}"
            )
        given = {f: group_effects.get(f, "observed") for f in design.group_factors}
    else:
        given = {"": repr(group_effects)}
    bad = [v for v in given.values() if v not in GROUP_EFFECTS]
    if bad:
        raise BayesLMMError(
            "group_effects must be 'observed', 'new' or 'none' (or a dict of them by "
            f"grouping factor), got {group_effects!r}"
        )
    return dict(given)


def check_prediction_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`PREDICTION_KINDS`, else a BayesLMMError."""
    if kind not in PREDICTION_KINDS:
        raise BayesLMMError(f"kind must be 'mean' or 'response', got {kind!r}")
    return kind


def new_rows(design: Design, newdata: pd.DataFrame | None = None) -> NewRows:
    """``newdata`` in ``design``'s columns (the design's own rows for None), checked as data.

    Every column the formula's predictors and grouping factors use must be there (the
    response need not be; other columns are ignored), without missing or infinite values,
    numeric where the data's is numeric, and a factor of the fixed effects (or of a
    random-effect term's columns) may not have levels the data lack: each is a
    :class:`DataError` naming the column.  Levels of grouping factors may be new
    (``TermRows.codes`` -1).  Data-dependent transforms keep the data's state
    (``center(x)`` subtracts the data's mean, factor codings keep the data's levels).
    """
    if newdata is None:
        return NewRows(
            design.X,
            tuple(
                TermRows(t, t.X, np.asarray(t.levels, dtype=object)[t.codes], t.codes)
                for t in design.terms
            ),
            pd.RangeIndex(design.nobs),
            design.offset,
        )
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    if len(newdata) == 0:
        raise DataError("newdata has no rows")
    parsed = parse_formula(design.formula)
    frame = design.frame
    alias = _Aliases([str(c) for c in frame.columns])
    fixed = alias.encode(parsed.fixed)
    bars = [(alias.encode(b.lhs), b) for b in parsed.bars]
    model_cols = alias.required(fixed, "the fixed effects")
    for lhs, bar in bars:
        model_cols += alias.required(lhs, str(bar))
    model_cols = list(dict.fromkeys(model_cols))
    offsets = [alias.encode(o) for o in parsed.offsets]
    offset_cols = [c for o in offsets for c in alias.required(f"I({o})", "the offset")]
    if design.offset_column == "":
        raise DataError(
            "the model's offset= was given as an array, so it is unknown on newdata: give "
            "offset= as a column name to predict on new rows"
        )
    if design.offset_column is not None:
        offset_cols.append(design.offset_column)
    needed = list(dict.fromkeys(model_cols + [f for _, b in bars for f in b.factors] + offset_cols))
    given = {str(c): c for c in newdata.columns}
    missing = [c for c in needed if c not in given]
    if missing:
        raise DataError(
            f"newdata lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} used by the formula"
        )
    new = pd.DataFrame({c: newdata[given[c]].to_numpy() for c in needed}, index=newdata.index)
    na = [c for c in needed if new[c].isna().any()]
    if na:
        rows = new.index[new[na].isna().any(axis=1).to_numpy()]
        shown = ", ".join(repr(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise DataError(
            f"newdata has missing values in {', '.join(repr(c) for c in na)} "
            f"(row{'s' if len(rows) > 1 else ''} {shown}): predictions need complete rows"
        )
    train = _Columns(frame, needed, alias)
    cols = _Columns(new, needed, alias)
    for c in model_cols:
        if train.numeric(c) is not None and cols.numeric(c) is None:
            uses = [f for f in design.fixef_names if c in f] or [c]
            raise DataError(
                f"newdata's column {c!r} is not numeric (dtype {new[c].dtype}) as the data's "
                f"is, so newdata does not give the fixed-effect columns {uses}"
            )
    work = _work_like(train, cols, model_cols, alias)
    X = _new_matrix(fixed, train, cols, work, alias, "the fixed effects", design.fixef_names)
    order = _term_order([design.ngroups[b.factor] for _, b in bars])
    terms = []
    for (lhs, bar), t in zip([bars[i] for i in order], design.terms, strict=True):
        Xt = _new_matrix(lhs, train, cols, work, alias, str(bar), t.cnames)
        labels = _row_labels(cols.values[bar.factors[0]])
        for name in bar.factors[1:]:
            pairs = zip(labels, _row_labels(cols.values[name]), strict=True)
            labels = np.asarray([f"{a}:{b}" for a, b in pairs], dtype=object)
        codes = pd.Index(t.levels).get_indexer(pd.Index(labels)).astype(np.intp)
        terms.append(TermRows(t, Xt, labels, codes))
    offset = _offset_values(offsets, cols, alias, parsed.offsets)
    if design.offset_column is not None:
        extra = cols.numeric(design.offset_column)
        if extra is None:
            raise DataError(f"newdata's offset column {design.offset_column!r} is not numeric")
        offset = extra if offset is None else offset + extra
    return NewRows(X, tuple(terms), newdata.index, offset)


def _row_labels(values: np.ndarray | pd.api.extensions.ExtensionArray) -> np.ndarray:
    """Each row's level label, as :func:`factor_levels` names the levels (str)."""
    labels, codes = factor_levels(values)
    return np.asarray(labels, dtype=object)[codes]


def _work_like(train: _Columns, new: _Columns, columns: list[str], alias: _Aliases) -> pd.DataFrame:
    """New rows' alias-coded model columns, factors with the data's levels (a level the
    data lack is a DataError)."""
    out: dict[str, pd.Series | pd.Categorical] = {}
    for c in columns:
        code = alias.code[c]
        known = train.work[code]
        if not isinstance(known.dtype, pd.CategoricalDtype):
            out[code] = _as_model_column(pd.Series(new.values[c]))
            continue
        categories = known.cat.categories
        labels = _row_labels(new.values[c])
        where = pd.Index([str(x) for x in categories]).get_indexer(pd.Index(labels))
        if (where < 0).any():
            unseen = list(dict.fromkeys(labels[where < 0]))
            shown = ", ".join(repr(u) for u in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
            raise DataError(
                f"newdata's column {c!r} has level{'s' if len(unseen) > 1 else ''} {shown} "
                "that the data do not have: the model has no coefficient for "
                f"{'them' if len(unseen) > 1 else 'it'} (levels: "
                f"{', '.join(repr(str(x)) for x in categories)})"
            )
        out[code] = pd.Categorical.from_codes(where, categories=categories)
    return pd.DataFrame(out, index=pd.RangeIndex(new.n))


def _new_matrix(
    expr: str,
    train: _Columns,
    new: _Columns,
    work: pd.DataFrame,
    alias: _Aliases,
    where: str,
    wanted: Sequence[str],
) -> np.ndarray:
    """The columns ``wanted`` of ``expr``'s model matrix on new rows, with the data's
    transforms (formulaic's model spec of the data, applied to the new rows)."""
    simple = _additive_numeric(expr, new, alias)
    if simple is None or _additive_numeric(expr, train, alias) is None:
        import formulaic
        from formulaic.errors import FormulaicWarning

        code = to_formulaic(expr, train.ordered)
        spec = formulaic.model_matrix(code.code, train.work, context=_CONTEXT, na_action="ignore")
        with warnings.catch_warnings():
            warnings.simplefilter("error", FormulaicWarning)
            try:
                mm = spec.model_spec.get_model_matrix(work, context=_CONTEXT)
            except Exception as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                msg = alias.decode(code.r_name(msg))
                raise DataError(f"cannot build {where} from newdata: {msg}") from None
        X = np.asarray(mm, dtype=float).reshape(len(work), -1)
        columns = [_r_name(c, alias, code) for c in mm.columns]
    else:
        X, columns = simple
    absent = [c for c in wanted if c not in columns]
    if absent:
        raise DataError(f"newdata does not give the {where} columns {absent}")
    X = X[:, [columns.index(c) for c in wanted]]
    if not np.isfinite(X).all():
        col = wanted[int(np.where(~np.isfinite(X).all(axis=0))[0][0])]
        raise DataError(f"column '{col}' of {where} has non-finite values in newdata")
    return X


# --------------------------------------------------------------------------------------
# The fixed part's terms (F tests and estimated marginal means)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part: R's label (``nitro:Variety``), its columns (indices in
    ``fixef_names``), the data columns it uses as factors, and its numeric factors
    (R-named expressions such as ``nitro`` or ``I(nitro^2)``)."""

    label: str
    columns: tuple[int, ...]
    factors: tuple[str, ...]
    numerics: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class FixedTerms:
    """The fixed part by term: ``terms`` in formula order (the intercept included, with
    no factors and no numerics), ``values`` each numeric factor on the design's rows."""

    terms: tuple[FixedTerm, ...]
    values: dict[str, np.ndarray]

    @property
    def factors(self) -> list[str]:
        """The data columns the fixed part uses as factors, in order of appearance."""
        return list(dict.fromkeys(f for t in self.terms for f in t.factors))

    @property
    def numeric_variables(self) -> list[str]:
        """Labels of the numeric factors (``nitro``, ``I(nitro^2)``)."""
        return list(dict.fromkeys(n for t in self.terms for n in t.numerics))


def fixed_terms(design: Design) -> FixedTerms:
    """The fixed part of ``design`` by term (formulaic's term structure, R's names).
    Columns R dropped as aliased belong to no term."""
    parsed = parse_formula(design.formula)
    frame = design.frame
    alias = _Aliases([str(c) for c in frame.columns])
    fixed = alias.encode(parsed.fixed)
    cols = _Columns(frame, [str(c) for c in frame.columns], alias)
    index = {name: j for j, name in enumerate(design.fixef_names)}
    simple = _additive_numeric(fixed, cols, alias)
    if simple is not None:
        X, names_ = simple
        terms = [
            FixedTerm(n, (index[n],), (), () if n == "(Intercept)" else (n,))
            for n in names_
            if n in index
        ]
        values = {n: X[:, j] for j, n in enumerate(names_) if n != "(Intercept)"}
        return FixedTerms(tuple(terms), values)
    import formulaic

    code = to_formulaic(fixed, cols.ordered)
    mm = formulaic.model_matrix(code.code, cols.work, context=_CONTEXT, na_action="ignore")
    spec = mm.model_spec
    names_ = [_r_name(c, alias, code) for c in mm.columns]
    terms, values = [], {}
    for term, where in spec.term_indices.items():
        label = "(Intercept)" if str(term) == "1" else alias.decode(code.r_name(str(term)))
        factors, numerics = [], []
        for f in term.factors:
            expr = str(f.expr)
            if expr == "1":
                continue
            kind = spec.encoder_state.get(expr, (None,))[0]
            if getattr(kind, "name", "") == "CATEGORICAL":
                factors += [alias.name[v] for v in re.findall(r"_v\d+_", expr)]
                continue
            name = alias.decode(code.r_name(expr))
            numerics.append(name)
            if name not in values:
                one = formulaic.model_matrix(f"0 + {expr}", cols.work, context=_CONTEXT)
                values[name] = np.asarray(one, dtype=float)[:, 0]
        kept = tuple(index[names_[j]] for j in where if names_[j] in index)
        terms.append(FixedTerm(label, kept, tuple(factors), tuple(numerics)))
    return FixedTerms(tuple(terms), values)

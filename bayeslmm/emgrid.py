"""What F tests and estimated marginal means ask of the fixed part, on either path.

* :func:`hypotheses`: each term's hypothesis matrix L (Lβ = 0) for type III and type II
  tests.  Type III (SAS's, Goodnight's rule, which lmerTest's ``anova(m, type = 3)``
  implements; independent of the factor coding): the term's interaction contrasts over
  its factors, averaged with equal weights over the other factors' levels, of the
  coefficient of its numeric factors, with the other numeric factors at 0.  Type II
  (lmerTest's): the term adjusted for every term that does not contain it, containment as
  lmerTest's ``relatives`` (every variable, and the same numeric ones),
  L = (X_Tᵀ M₀ X_T)⁻¹ X_Tᵀ M₀ X.
* :func:`reference_grid`: emmeans' reference grid: every combination of the fixed part's
  factor levels, numeric variables at their mean (or ``at``), and the rows of L averaging
  it with equal weights over the non-focal factors, one row per level of ``specs`` (within
  ``by``).
* :class:`EmmeansTable`: the DataFrame both paths return, with ``pairs()`` and
  ``contrast()``, which build contrasts of its rows and hand them back to the path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .design import Design, FixedTerm, FixedTerms, factor_levels, fixed_terms, new_rows
from .errors import BayesLMMError, DataError

#: the ANOVA types :func:`hypotheses` knows
TYPES = (2, 3)


class EmmeansError(BayesLMMError, ValueError):
    """Bad ``specs``, ``by``, ``at`` or contrast for estimated marginal means or F tests."""


def _factor_codes(design: Design, terms: FixedTerms) -> dict[str, tuple[list[str], np.ndarray]]:
    return {f: factor_levels(design.columns[f]) for f in terms.factors}


def hypotheses(design: Design, kind: int = 3, X: np.ndarray | None = None) -> dict[str, Any]:
    """Each non-intercept term's hypothesis matrix (rows x p), by term label (module doc).
    ``X``: the model matrix type II projects with (the design's by default, as lmerTest
    uses ``model.matrix``)."""
    if kind not in TYPES:
        raise EmmeansError(f"type must be 2 or 3 (type III or II F tests), got {kind!r}")
    terms = fixed_terms(design)
    tests = [t for t in terms.terms if t.columns and t.label != "(Intercept)"]
    if kind == 2:
        return {t.label: _type2(t, terms, design.X if X is None else X) for t in tests}
    cells = _cell_matrices(design, terms)
    return {t.label: _type3(t, terms, cells, design) for t in tests}


def _variables(t: FixedTerm) -> set[str]:
    return set(t.factors) | set(t.numerics)


def _contains(big: FixedTerm, small: FixedTerm) -> bool:
    """lmerTest's ``relatives``: ``big`` has every variable of ``small`` and the same
    numeric ones (so ``x:f`` contains ``x`` but not ``f``)."""
    return (
        big is not small
        and _variables(small) <= _variables(big)
        and set(big.numerics) == set(small.numerics)
    )


def _type2(term: FixedTerm, terms: FixedTerms, X: np.ndarray) -> np.ndarray:
    others = [j for t in terms.terms if t is not term and not _contains(t, term) for j in t.columns]
    X0 = X[:, others]
    XT = X[:, list(term.columns)]
    M0X = X - X0 @ np.linalg.lstsq(X0, X, rcond=None)[0] if others else X
    M0XT = M0X[:, list(term.columns)]
    return np.linalg.solve(XT.T @ M0XT, M0XT.T @ X)


def _cell_matrices(design: Design, terms: FixedTerms) -> dict[tuple[str, ...], np.ndarray]:
    """G_m (cells x p) per numeric monomial m: each column's factor part in each cell of the
    factors' grid, for the columns whose term has numeric factors m (0 elsewhere)."""
    codes = _factor_codes(design, terms)
    sizes = [len(codes[f][0]) for f in terms.factors]
    cell = (
        np.ravel_multi_index([codes[f][1] for f in terms.factors], sizes)
        if sizes
        else np.zeros(design.nobs, dtype=np.intp)
    )
    ncell = int(np.prod(sizes)) if sizes else 1
    out: dict[tuple[str, ...], np.ndarray] = {}
    for t in terms.terms:
        key = tuple(sorted(t.numerics))
        G = out.setdefault(key, np.zeros((ncell, design.p)))
        part = np.ones(design.nobs)
        for name in t.numerics:
            part = part * terms.values[name]
        use = part != 0
        for j in t.columns:
            total = np.bincount(cell[use], weights=design.X[use, j] / part[use], minlength=ncell)
            count = np.bincount(cell[use], minlength=ncell)
            if (count == 0).any():
                empty = int(np.flatnonzero(count == 0)[0])
                labels = [
                    codes[f][0][i]
                    for f, i in zip(terms.factors, np.unravel_index(empty, sizes), strict=True)
                ]
                raise EmmeansError(
                    f"type III tests need every combination of {terms.factors}; "
                    f"{dict(zip(terms.factors, labels, strict=True))} has no rows for term "
                    f"{t.label!r} (use type=2)"
                )
            G[:, j] = total / count
    return out


def _type3(
    term: FixedTerm,
    terms: FixedTerms,
    cells: dict[tuple[str, ...], np.ndarray],
    design: Design,
) -> np.ndarray:
    C = np.ones((1, 1))
    codes = _factor_codes(design, terms)
    for f in terms.factors:
        k = len(codes[f][0])
        part = np.eye(k)[:-1] - np.eye(k)[1:] if f in term.factors else np.full((1, k), 1 / k)
        C = np.kron(C, part)
    return C @ cells[tuple(sorted(term.numerics))]


# --------------------------------------------------------------------------------------
# emmeans' reference grid
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Grid:
    """Rows of L (one per focal cell) with their labels and the offset there."""

    L: np.ndarray
    index: pd.Index
    specs: tuple[str, ...]
    by: tuple[str, ...]
    offset: np.ndarray


def _names(value: str | Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.replace("~", " ").replace("*", "+").replace(":", "+")
        return [p.strip().strip("`") for p in text.split("+") if p.strip()]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise EmmeansError(f"{what} must name factors (a string or a list of strings), got {value!r}")


def parse_specs(
    design: Design, specs: str | Sequence[str], by: str | Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """``specs`` (``"A"``, ``"~ A"``, ``"A + B"``, ``"~ A | B"``, a list) and ``by`` as
    factor names, checked against the fixed part."""
    if isinstance(specs, str) and specs.split("~")[0].strip() and "~" in specs:
        lhs, rhs = specs.split("~", 1)
        raise EmmeansError(
            f"specs {specs!r}: emmeans' '{lhs.strip()} ~ ...' form is "
            f"fit.emmeans('{rhs.strip()}').contrast('{lhs.strip()}') here "
            "(.pairs() for pairwise)"
        )
    if isinstance(specs, str) and "|" in specs:
        specs, extra = specs.split("|", 1)
        by = _names(by, "by") + _names(extra, "by")
    spec_names, by_names = _names(specs, "specs"), _names(by, "by")
    if not spec_names:
        raise EmmeansError("specs names no factor: give e.g. 'Variety' or '~ A | B'")
    terms = fixed_terms(design)
    for name in spec_names + by_names:
        if name in terms.factors:
            continue
        if name in terms.numeric_variables or name in design.columns:
            what = (
                "is numeric"
                if name in terms.numeric_variables
                or pd.api.types.is_numeric_dtype(pd.Series(design.columns[name]))
                else "is not a factor of the fixed effects"
            )
            raise EmmeansError(
                f"emmeans: '{name}' {what}: marginal means are over the fixed part's factors "
                f"({terms.factors or 'none'}); set numeric variables with at={{'{name}': ...}}"
            )
        raise EmmeansError(
            f"emmeans: '{name}' is not a term of the model (its factors: {terms.factors})"
        )
    if set(spec_names) & set(by_names):
        raise EmmeansError(f"specs and by share {sorted(set(spec_names) & set(by_names))}")
    return spec_names, by_names


def reference_grid(
    design: Design,
    specs: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    at: Mapping[str, Any] | None = None,
) -> Grid:
    """emmeans' reference grid and the rows averaging it per focal cell (module doc)."""
    spec_names, by_names = parse_specs(design, specs, by)
    terms = fixed_terms(design)
    at = dict(at or {})
    unknown = [k for k in at if k not in design.columns]
    if unknown:
        raise EmmeansError(f"at= names {unknown}, which are not columns of the model")
    levels: dict[str, list[Any]] = {}
    for f in terms.factors:
        labels, _ = factor_levels(design.columns[f])
        chosen = [str(v) for v in np.atleast_1d(at[f])] if f in at else labels
        bad = [v for v in chosen if v not in labels]
        if bad:
            raise EmmeansError(f"at['{f}'] has levels {bad} that '{f}' lacks ({labels})")
        levels[f] = chosen
    combos = list(itertools.product(*[levels[f] for f in terms.factors]))
    grid = pd.DataFrame(combos, columns=terms.factors) if combos else pd.DataFrame(index=[0])
    grid = grid.iloc[: max(len(combos), 1)]
    for c, values in design.columns.items():
        if c in terms.factors or c.startswith("("):
            continue
        s = pd.Series(values)
        if c in at:
            grid[c] = float(np.asarray(at[c], dtype=float).ravel()[0])
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            grid[c] = float(s.mean())
        else:
            grid[c] = factor_levels(values)[0][0]
    try:
        rows = new_rows(design, grid.reset_index(drop=True))
    except DataError as exc:
        raise EmmeansError(f"cannot build the reference grid: {exc}") from None
    offset = rows.offset if rows.offset is not None else np.zeros(rows.m)
    focal = spec_names + by_names
    keys = grid[focal].astype(str).reset_index(drop=True)
    order = list(itertools.product(*[levels[f] for f in reversed(focal)]))
    L: list[np.ndarray] = []
    off: list[float] = []
    cells: list[tuple[Any, ...]] = []
    combo: tuple[Any, ...]
    for combo in order:
        combo = combo[::-1]  # the first spec varies fastest, as emmeans lists them
        sel = np.all([keys[f].to_numpy() == v for f, v in zip(focal, combo, strict=True)], axis=0)
        L.append(rows.X[sel].mean(axis=0))
        off.append(float(offset[sel].mean()))
        cells.append(combo)
    index = (
        pd.Index([c[0] for c in cells], name=focal[0])
        if len(focal) == 1
        else pd.MultiIndex.from_tuples(cells, names=focal)
    )
    return Grid(np.array(L), index, tuple(spec_names), tuple(by_names), np.array(off))


# --------------------------------------------------------------------------------------
# The table and its contrasts
# --------------------------------------------------------------------------------------

#: a path's evaluation of contrasts: (L, offset, labels, kind) -> table
Evaluate = Callable[[np.ndarray, np.ndarray, pd.Index, str], pd.DataFrame]


def _label(key: Any) -> str:
    return " ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def contrast_coefficients(method: Any, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """emmeans' contrast families over k means: ``"pairwise"`` (a − b for each pair, in
    order), ``"revpairwise"`` (b − a), ``"trt.vs.ctrl"`` (each − the first), ``"eff"``
    (each − the mean of all), or a dict name -> k coefficients."""
    k = len(labels)
    eye = np.eye(k)
    if method in ("pairwise", "revpairwise"):
        pairs = list(itertools.combinations(range(k), 2))
        if method == "revpairwise":
            pairs = [(j, i) for i, j in pairs[::-1]]
        return np.array([eye[i] - eye[j] for i, j in pairs]).reshape(-1, k), [
            f"{labels[i]} - {labels[j]}" for i, j in pairs
        ]
    if method == "trt.vs.ctrl":
        return eye[1:] - eye[0], [f"{labels[i]} - {labels[0]}" for i in range(1, k)]
    if method == "eff":
        return eye - 1.0 / k, [f"{lab} effect" for lab in labels]
    if isinstance(method, Mapping):
        C = np.array([np.asarray(v, dtype=float).ravel() for v in method.values()])
        if C.ndim != 2 or C.shape[1] != k:
            raise EmmeansError(f"each contrast needs {k} coefficients (one per mean), got {C}")
        return C, [str(n) for n in method]
    raise EmmeansError(
        "method must be 'pairwise', 'revpairwise', 'trt.vs.ctrl', 'eff' or a dict of "
        f"coefficient vectors, got {method!r}"
    )


class EmmeansTable(pd.DataFrame):
    """Estimated marginal means: a DataFrame indexed by the levels of ``specs`` (and
    ``by``), whose ``pairs()`` and ``contrast()`` give contrasts of its rows."""

    _metadata: ClassVar[list[str]] = ["_grid", "_evaluate"]
    _grid: Grid
    _evaluate: Evaluate

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    @classmethod
    def build(cls, grid: Grid, evaluate: Evaluate) -> EmmeansTable:
        """The means of ``grid`` as ``evaluate`` computes them."""
        table = cls(evaluate(grid.L, grid.offset, grid.index, "emmeans"))
        table._grid = grid
        table._evaluate = evaluate
        return table

    def contrast(self, method: Any = "eff", **kwargs: Any) -> pd.DataFrame:
        """Contrasts of the means (:func:`contrast_coefficients`), within each ``by``
        group; ``kwargs`` go to the path (e.g. ``adjust``)."""
        grid: Grid = self._grid
        nb = len(grid.by)
        groups = [()] if not nb else list(dict.fromkeys(k[-nb:] for k in grid.index))
        L, off, labels = [], [], []
        for g in groups:
            rows = [i for i, k in enumerate(grid.index) if not nb or tuple(k[-nb:]) == g]
            names = [
                _label(k[:-nb] if nb and isinstance(k, tuple) else k) for k in grid.index[rows]
            ]
            names = [n[:-1] if n.endswith(" ") else n for n in names]
            C, cnames = contrast_coefficients(method, names)
            L.append(C @ grid.L[rows])
            off.append(C @ grid.offset[rows])
            labels += [(c, *g) for c in cnames]
        index = (
            pd.MultiIndex.from_tuples(labels, names=["contrast", *grid.by])
            if nb
            else pd.Index([lab[0] for lab in labels], name="contrast")
        )
        return self._evaluate(np.vstack(L), np.concatenate(off), index, "contrast", **kwargs)

    def pairs(self, reverse: bool = False, **kwargs: Any) -> pd.DataFrame:
        """Every pairwise difference (emmeans' ``pairs``): ``a - b`` in level order."""
        return self.contrast("revpairwise" if reverse else "pairwise", **kwargs)

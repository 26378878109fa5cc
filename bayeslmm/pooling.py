"""Partial pooling at any Σ and σ: the conditional modes in closed form, no refit.

Given the random-effect covariances Σ (one per term: SDs and correlations) and the
residual SD σ, the fixed effects β̂ and the conditional modes b̂ = Λû solve one penalised
least-squares problem (lme4's PLS, Henderson's mixed-model equations)::

    minimise ‖y − Xβ − ZΛu‖² + σ²‖u‖²   over β, u,      ΛΛᵀ = Σ (block diagonal)

which is ordinary least squares on ``[[X, ZΛ], [0, σI]]``.  It needs no Σ⁻¹, so Σ = 0
(τ → 0: b̂ = 0, complete pooling) is one end of the slider, and τ → ∞ (σ²‖u‖² negligible:
each group's own fit, no pooling) the other.  At the REML Σ̂, σ̂ it reproduces lme4's
``coef``.  A data set of a few thousand rows solves in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import names
from .compare import sdcor_by_key
from .design import Design, independent_columns
from .errors import BayesLMMError


class PoolingError(BayesLMMError, ValueError):
    """A setting of the pooling explorer that cannot be used (unknown term, bad value)."""


@dataclass(frozen=True)
class Setting:
    """Σ and σ at which partial pooling is computed.

    ``sd``: (group, column) → SD; ``corr``: (group, first column, second column) → the
    correlation (columns in the term's order); ``sigma``: the residual SD.
    """

    sd: Mapping[tuple[str, str], float]
    corr: Mapping[tuple[str, str, str], float]
    sigma: float

    def labels(self) -> dict[str, float]:
        """The values under the parameter labels of ``blm.compare``."""
        out = {names.sd_label(g, c): v for (g, c), v in self.sd.items()}
        out |= {names.corr_label(g, a, b): v for (g, a, b), v in self.corr.items()}
        return out | {names.SIGMA: self.sigma}

    def scaled(self, factor: float, groups: list[str] | None = None) -> Setting:
        """Every SD (of ``groups``; all by default) times ``factor``."""
        sd = {k: v * factor if groups is None or k[0] in groups else v for k, v in self.sd.items()}
        return Setting(sd, dict(self.corr), self.sigma)


def setting_from_varcorr(design: Design, varcorr: pd.DataFrame) -> Setting:
    """The setting of a ``varcorr`` table (a REML fit's, or a posterior's means)."""
    sdcor = sdcor_by_key(varcorr)
    sd, corr = {}, {}
    for t in design.terms:
        for i, a in enumerate(t.cnames):
            sd[(t.group, a)] = float(sdcor[(t.group, a, None)])
            for b in t.cnames[i + 1 :]:
                corr[(t.group, a, b)] = float(sdcor[(t.group, a, b)])
    return Setting(sd, corr, float(sdcor[(names.RESIDUAL, None, None)]))


def check_setting(design: Design, setting: Setting) -> None:
    """A package error naming the parameter for an unknown key or an impossible value."""
    sd_keys, corr_keys = setting_keys(design)
    if set(setting.sd) != set(sd_keys) or set(setting.corr) != set(corr_keys):
        got = sorted(Setting(setting.sd, setting.corr, 1.0).labels())
        want = sorted(
            Setting(dict.fromkeys(sd_keys, 1.0), dict.fromkeys(corr_keys, 0.0), 1.0).labels()
        )
        raise PoolingError(f"the setting's parameters {got} are not the model's {want}")
    for key, value in setting.sd.items():
        if not (np.isfinite(value) and value >= 0):
            raise PoolingError(f"{names.sd_label(*key)} must be a finite SD >= 0, got {value}")
    for ckey, value in setting.corr.items():
        if not -1 <= value <= 1:
            raise PoolingError(f"{names.corr_label(*ckey)} must lie in [-1, 1], got {value}")
    if not (np.isfinite(setting.sigma) and setting.sigma > 0):
        raise PoolingError(f"sigma must be a finite SD > 0, got {setting.sigma}")


def setting_keys(design: Design) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """The SD and correlation keys of the model's terms."""
    sd = [(t.group, a) for t in design.terms for a in t.cnames]
    corr = [
        (t.group, a, b)
        for t in design.terms
        for i, a in enumerate(t.cnames)
        for b in t.cnames[i + 1 :]
    ]
    return sd, corr


def term_covariance(term_group: str, cnames: tuple[str, ...], setting: Setting) -> np.ndarray:
    """Σ of one term (k x k) from its SDs and correlations."""
    sd = np.array([setting.sd[(term_group, c)] for c in cnames])
    R = np.eye(len(cnames))
    for i, a in enumerate(cnames):
        for j in range(i + 1, len(cnames)):
            R[i, j] = R[j, i] = setting.corr[(term_group, a, cnames[j])]
    return R * np.outer(sd, sd)


def _root(S: np.ndarray) -> np.ndarray:
    """A factor L with L Lᵀ = S for a positive semi-definite S (an impossible set of
    correlations is projected on the nearest semi-definite matrix)."""
    w, V = np.linalg.eigh(S)
    return V * np.sqrt(np.clip(w, 0.0, None))


def covariance_factor(design: Design, setting: Setting) -> np.ndarray:
    """Dense block-diagonal Λ (q x q, level-major within each term, as ``design.Z()``)
    with ΛΛᵀ = Var(b)."""
    blocks = []
    for t in design.terms:
        L = _root(term_covariance(t.group, t.cnames, setting))
        blocks.append(np.kron(np.eye(t.nl), L))
    q = sum(b.shape[0] for b in blocks)
    lam = np.zeros((q, q))
    start = 0
    for b in blocks:
        k = b.shape[0]
        lam[start : start + k, start : start + k] = b
        start += k
    return lam


def conditional_modes(
    X: np.ndarray, ZL: np.ndarray, y: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """β̂ and û of ``min ‖y − Xβ − (ZΛ)u‖² + σ²‖u‖²`` (minimum-norm where β is not
    identified, as when every group has its own intercept and τ is huge)."""
    p, q = X.shape[1], ZL.shape[1]
    A = np.block([[X, ZL], [np.zeros((q, p)), sigma * np.eye(q)]])
    rhs = np.concatenate([y, np.zeros(q)])
    sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return sol[:p], sol[p:]


def own_fits(X: np.ndarray, y: np.ndarray, codes: np.ndarray, nl: int) -> np.ndarray:
    """Each group's own least squares fit (R's ``lm``: aliased or inestimable columns NaN),
    levels x columns."""
    out = np.full((nl, X.shape[1]), np.nan)
    for i in range(nl):
        rows = codes == i
        keep = independent_columns(X[rows]) if rows.any() else []
        if keep:
            out[i, keep] = np.linalg.lstsq(X[rows][:, keep], y[rows], rcond=None)[0]
    return out


def first_rows(codes: np.ndarray, keep: int) -> np.ndarray:
    """Mask of each group's first ``keep`` rows (in data order)."""
    order = np.argsort(codes, kind="stable")
    rank = np.empty(len(codes), dtype=int)
    starts = np.searchsorted(codes[order], codes[order])
    rank[order] = np.arange(len(codes)) - starts
    return rank < keep


@dataclass(frozen=True)
class View:
    """Everything the explorer shows at one setting (levels in the factor's order)."""

    coefficients: pd.DataFrame  # levels x columns: β̂ + b̂
    no_pooling: pd.DataFrame  # levels x columns, on the rows kept
    complete_pooling: pd.Series  # columns
    population: pd.Series  # β̂ at this setting (0 for a random-only column)
    n: np.ndarray  # rows kept per level
    cov: np.ndarray  # Σ of the factor's columns shown
    terms: list[str]  # the factor's random-effect columns

    def table(self) -> pd.DataFrame:
        """The shrinkage table at the current setting: one row per level and random-effect
        column, with ``n`` (rows kept), ``no_pooling``, ``complete_pooling``, ``partial``
        and ``shrinkage`` = 1 − (partial − β̂)/(no_pooling − β̂)."""
        v = self
        index = pd.MultiIndex.from_product(
            [v.coefficients.index, v.terms], names=[v.coefficients.index.name, "term"]
        )
        own = v.no_pooling[v.terms].to_numpy().ravel()
        partial = v.coefficients[v.terms].to_numpy().ravel()
        beta = np.tile(v.population[v.terms].to_numpy(), len(v.n))
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = (partial - beta) / (own - beta)
        return pd.DataFrame(
            {
                "n": np.repeat(v.n, len(v.terms)),
                "no_pooling": own,
                "complete_pooling": np.tile(v.complete_pooling[v.terms].to_numpy(), len(v.n)),
                "partial": partial,
                "shrinkage": np.where(np.isfinite(moved), 1.0 - moved, np.nan),
            },
            index=index,
        )

    def arrows(self) -> pd.DataFrame:
        """Per level, where its arrow starts (no pooling) and ends (partial pooling), in the
        factor's first two random-effect columns (one for a random intercept only)."""
        v = self
        shown = v.terms[:2]
        start = v.no_pooling[shown].add_prefix("start ")
        end = v.coefficients[shown].add_prefix("end ")
        return pd.concat([start, end], axis=1)

    def ellipse(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre β̂ and covariance Σ of the population distribution of the shown columns."""
        v = self
        shown = v.terms[:2]
        return v.population[shown].to_numpy(), v.cov[: len(shown), : len(shown)]

"""Simulated crossed and nested designs of the shapes in issue 20 (deterministic seeds).

Shared by ``bench_reml_crossed.py`` and ``tests/test_reml_crossed.py``:

* :func:`simulate_kb07`: Kronmüller & Barr (2007)'s shape, 56 subjects x 32 items, every
  subject meets every item once (1,792 rows), spkr, prec and load (±0.5) within subjects
  and within items by a Latin square;
* :func:`simulate_two_condition`: ``rt ~ cond + (1 + cond | subj) + (1 + cond | item)``,
  every subject meets every item once;
* :func:`simulate_nested`: ``y ~ 1 + (1 | a) + (1 | a:b)``, b nested in a.

The InstEval shape is ``_sim.simulate_insteval``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: KB07-shaped formulas: the reduced and the maximal model
KB07_REDUCED = (
    "rt ~ spkr*prec*load + (1 + spkr + prec + load | subj) + (1 + spkr + prec + load | item)"
)
KB07_MAXIMAL = "rt ~ spkr*prec*load + (1 + spkr*prec*load | subj) + (1 + spkr*prec*load | item)"
TWO_CONDITION = "rt ~ cond + (1 + cond | subj) + (1 + cond | item)"
NESTED = "y ~ 1 + (1 | a) + (1 | a:b)"
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def _effects(rng: np.random.Generator, sds: np.ndarray, corr: float, n: int) -> np.ndarray:
    """n draws of len(sds) effects with SDs ``sds`` and equal correlations ``corr``."""
    k = len(sds)
    R = np.full((k, k), corr) + (1 - corr) * np.eye(k)
    L = np.linalg.cholesky(R * np.outer(sds, sds))
    return rng.standard_normal((n, k)) @ L.T


def simulate_kb07(subjects: int = 56, items: int = 32, seed: int = 1) -> pd.DataFrame:
    """A KB07-shaped data set: ``rt`` with subject and item effects on the intercept, the
    three main effects and their interactions (the interactions' SDs small, so the
    maximal model is usually singular, as on the real data); residual SD 670."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    i = np.tile(np.arange(items), subjects)
    cond = (s + i) % 8  # Latin square: each subject and each item meets all 8 cells
    spkr = ((cond >> 2) & 1) - 0.5
    prec = ((cond >> 1) & 1) - 0.5
    load = (cond & 1) - 0.5
    X = np.column_stack(
        [np.ones_like(spkr), spkr, prec, load, spkr * prec, spkr * load, prec * load]
    )
    X = np.column_stack([X, spkr * prec * load])
    beta = np.array([2180.0, 68.0, -333.0, 78.0, -21.0, 19.0, -25.0, 16.0])
    sd_s = np.array([300.0, 40.0, 60.0, 50.0, 20.0, 10.0, 15.0, 5.0])
    sd_i = np.array([360.0, 30.0, 250.0, 40.0, 15.0, 20.0, 10.0, 5.0])
    bs = _effects(rng, sd_s, 0.2, subjects)
    bi = _effects(rng, sd_i, -0.1, items)
    rt = X @ beta + np.einsum("nk,nk->n", X, bs[s] + bi[i]) + rng.normal(0, 670.0, s.size)
    return pd.DataFrame(
        {
            "rt": rt,
            "spkr": spkr,
            "prec": prec,
            "load": load,
            "subj": pd.Categorical([f"S{k:02d}" for k in s]),
            "item": pd.Categorical([f"I{k:02d}" for k in i]),
        }
    )


def simulate_two_condition(subjects: int = 100, items: int = 100, seed: int = 1) -> pd.DataFrame:
    """``rt ~ cond + (1 + cond | subj) + (1 + cond | item)``: cond = ±0.5 by a Latin square,
    subject SDs 50 and 20 (correlation 0.3), item SDs 30 and 15 (correlation -0.2),
    residual SD 80."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    i = np.tile(np.arange(items), subjects)
    cond = ((s + i) % 2) - 0.5
    bs = _effects(rng, np.array([50.0, 20.0]), 0.3, subjects)
    bi = _effects(rng, np.array([30.0, 15.0]), -0.2, items)
    rt = (
        600.0
        + 25.0 * cond
        + bs[s, 0]
        + bs[s, 1] * cond
        + bi[i, 0]
        + bi[i, 1] * cond
        + rng.normal(0, 80.0, s.size)
    )
    return pd.DataFrame(
        {
            "rt": rt,
            "cond": cond,
            "subj": pd.Categorical([f"s{k}" for k in s]),
            "item": pd.Categorical([f"i{k}" for k in i]),
        }
    )


def simulate_nested(
    outer: int = 300, inner: int = 4, per_cell: int = 3, seed: int = 1
) -> pd.DataFrame:
    """``y ~ 1 + (1 | a) + (1 | a:b)``: ``inner`` levels of b within each of ``outer``
    levels of a, ``per_cell`` rows each; SDs 1.0 (a), 0.5 (a:b), residual 0.8."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(outer), inner * per_cell)
    b = np.tile(np.repeat(np.arange(inner), per_cell), outer)
    ua = rng.normal(0, 1.0, outer)
    uab = rng.normal(0, 0.5, (outer, inner))
    y = 10.0 + ua[a] + uab[a, b] + rng.normal(0, 0.8, a.size)
    return pd.DataFrame(
        {
            "y": y,
            "a": pd.Categorical([f"a{k}" for k in a]),
            "b": pd.Categorical([f"b{k}" for k in b]),
        }
    )

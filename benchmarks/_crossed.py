"""Simulated crossed, partially crossed and nested designs for ``bench_crossed.py`` and the
slow exactness tests: the shapes of issue 20 (psycholinguistic subjects x items, KB07,
InstEval, nested a/a:b)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def two_condition(subjects: int, items: int, seed: int = 1) -> pd.DataFrame:
    """``rt ~ cond + (1 + cond | subj) + (1 + cond | item)``: every subject sees every item
    once, cond = ±0.5 counterbalanced, subject SDs (40, 20) correlation 0.3, item SDs (30,
    15) correlation −0.2, residual SD 60."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    i = np.tile(np.arange(items), subjects)
    cond = ((s + i) % 2) - 0.5
    us = _correlated(rng, subjects, [40.0, 20.0], 0.3)
    ui = _correlated(rng, items, [30.0, 15.0], -0.2)
    rt = 600 + 25 * cond + us[s, 0] + us[s, 1] * cond + ui[i, 0] + ui[i, 1] * cond
    rt += rng.normal(size=s.size) * 60
    return pd.DataFrame(
        {"rt": rt, "cond": cond, "subj": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]}
    )


def _correlated(rng: np.random.Generator, n: int, sd: list[float], rho: float) -> np.ndarray:
    k = len(sd)
    corr = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    cov = np.outer(sd, sd) * corr
    return rng.multivariate_normal(np.zeros(k), cov, n)


def kb07(seed: int = 1) -> pd.DataFrame:
    """A KB07-shaped design: 56 subjects x 32 items, 1,792 rows, spkr, prec and load within
    both (±0.5 contrasts, balanced), every effect varying by subject and by item (SDs of a
    maximal model, small interactions), residual SD 670 (ms, as in KB07's RTtrunc)."""
    rng = np.random.default_rng(seed)
    ns, ni = 56, 32
    s = np.repeat(np.arange(ns), ni)
    i = np.tile(np.arange(ni), ns)
    cell = (s + i) % 8
    spkr = (cell & 1) - 0.5
    prec = ((cell >> 1) & 1) - 0.5
    load = ((cell >> 2) & 1) - 0.5
    X = np.column_stack(
        [np.ones_like(spkr), spkr, prec, load, spkr * prec, spkr * load, prec * load,
         spkr * prec * load]
    )  # fmt: skip
    beta = np.array([2180.0, 68.0, 340.0, 78.0, -20.0, 18.0, -9.0, 17.0])
    sd_s = np.array([300.0, 30.0, 60.0, 40.0, 20.0, 20.0, 20.0, 20.0])
    sd_i = np.array([360.0, 60.0, 250.0, 30.0, 20.0, 20.0, 20.0, 20.0])
    us = rng.normal(size=(ns, 8)) * sd_s
    ui = rng.normal(size=(ni, 8)) * sd_i
    y = X @ beta + (X * us[s]).sum(1) + (X * ui[i]).sum(1) + rng.normal(size=s.size) * 670
    return pd.DataFrame(
        {"rt": y, "spkr": spkr, "prec": prec, "load": load,
         "subj": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]}
    )  # fmt: skip


def nested(outer: int = 300, inner: int = 4, reps: int = 3, seed: int = 1) -> pd.DataFrame:
    """``y ~ 1 + (1 | a) + (1 | a:b)``: ``inner`` levels of b in each of ``outer`` levels of
    a, ``reps`` rows each (SDs 1 and 0.5, residual 1)."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(outer), inner * reps)
    b = np.tile(np.repeat(np.arange(inner), reps), outer)
    ua = rng.normal(size=outer)
    uab = rng.normal(size=(outer, inner)) * 0.5
    y = 5 + ua[a] + uab[a, b] + rng.normal(size=a.size)
    return pd.DataFrame({"y": y, "a": [f"a{k}" for k in a], "b": [f"b{k}" for k in b]})


def one_factor(levels: int = 1200, reps: int = 3, seed: int = 1) -> pd.DataFrame:
    """``y ~ 1 + (1 | g)`` with ``levels`` levels of ``reps`` rows (the nested design's peer)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), reps)
    y = 5 + rng.normal(size=levels)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "g": [f"g{k}" for k in g]})


def partially_crossed(subjects: int = 120, items: int = 80, per: int = 20, seed: int = 1):
    """``rt ~ cond + (1 + cond | subj) + (1 | item)``: each subject sees ``per`` random items."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), per)
    i = np.concatenate([rng.choice(items, per, replace=False) for _ in range(subjects)])
    cond = rng.integers(0, 2, s.size) - 0.5
    us = _correlated(rng, subjects, [40.0, 20.0], 0.3)
    ui = rng.normal(size=items) * 30
    rt = 600 + 25 * cond + us[s, 0] + us[s, 1] * cond + ui[i] + rng.normal(size=s.size) * 60
    return pd.DataFrame(
        {"rt": rt, "cond": cond, "subj": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]}
    )

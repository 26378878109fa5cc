"""Simulated InstEval-like crossed design (shared by the REML benchmark and tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_insteval(
    n: int = 73_000, n_s: int = 2972, n_d: int = 1128, n_dept: int = 14, seed: int = 1
) -> pd.DataFrame:
    """``y ~ service + (1|s) + (1|d) + (1|dept)``: students s rate instructors d, instructors
    nested in departments, with lme4's InstEval variance components (0.105, 0.262, 0.012,
    residual 1.385)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n_s, n)
    s[:n_s] = np.arange(n_s)
    d = rng.integers(0, n_d, n)
    d[:n_d] = np.arange(n_d)
    dept_of_d = rng.integers(0, n_dept, n_d)
    dept_of_d[:n_dept] = np.arange(n_dept)
    dept = dept_of_d[d]
    service = rng.integers(0, 2, n)
    y = (
        3.2
        - 0.07 * service
        + rng.normal(0, np.sqrt(0.105), n_s)[s]
        + rng.normal(0, np.sqrt(0.262), n_d)[d]
        + rng.normal(0, np.sqrt(0.012), n_dept)[dept]
        + rng.normal(0, np.sqrt(1.385), n)
    )
    return pd.DataFrame(
        {
            "y": y,
            "service": pd.Categorical(np.where(service == 1, "1", "0")),
            "s": pd.Categorical([f"s{i}" for i in s]),
            "d": pd.Categorical([f"d{i}" for i in d]),
            "dept": pd.Categorical([f"dept{i}" for i in dept]),
        }
    )


def simulate_slopes(n: int = 100_000, n_groups: int = 100, seed: int = 1) -> pd.DataFrame:
    """``y ~ 1 + x + (1 + x | g)``: correlated random intercepts and slopes (sd 1 and 0.5,
    correlation 0.3), x ~ N(0, 1), residual sd 1; every group gets at least one row."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    g[: min(n, n_groups)] = np.arange(min(n, n_groups))
    cov = np.array([[1.0, 0.15], [0.15, 0.25]])
    b = rng.multivariate_normal([0.0, 0.0], cov, n_groups)
    x = rng.normal(0, 1, n)
    y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, 1, n)
    cats = np.array([f"g{i}" for i in range(n_groups)])
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(cats[g], categories=cats)})


def simulate_crossed(subjects: int = 60, items: int = 40, seed: int = 0) -> pd.DataFrame:
    """``rt ~ cond + (1 + cond | subject) + (1 | item)``, every subject meets every item
    once (a psycholinguistic design): cond = ±0.5 at random, subject SDs 30 and 15
    (uncorrelated), item SD 20, residual SD 40."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    i = np.tile(np.arange(items), subjects)
    cond = rng.integers(0, 2, s.size) - 0.5
    us = rng.normal(size=(subjects, 2)) * [30.0, 15.0]
    ui = rng.normal(size=items) * 20.0
    rt = 500 + 20 * cond + us[s, 0] + us[s, 1] * cond + ui[i] + rng.normal(size=s.size) * 40
    return pd.DataFrame(
        {"rt": rt, "cond": cond, "subject": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]}
    )

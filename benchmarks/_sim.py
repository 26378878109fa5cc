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

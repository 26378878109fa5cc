"""F tests of the fixed terms: lmerTest's ``anova(m, type = 3)`` and ``type = 2``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..design import Design
from ..emgrid import hypotheses
from .ddf import Contrasts
from .inference import Estimates


def f_tests(
    design: Design, work: Estimates, type: int = 3, ddf: str = "satterthwaite"
) -> pd.DataFrame:
    """lmerTest's ``anova(m, type = 3)`` (or ``type = 2``): one F test per fixed term
    (:func:`bayeslmm.emgrid.hypotheses`), with Satterthwaite or Kenward–Roger df
    (:class:`~bayeslmm.reml.ddf.Contrasts`).  Columns as lmerTest's: ``Sum Sq``,
    ``Mean Sq`` (F·σ̂²·NumDF and F·σ̂², F before Kenward–Roger's scaling), ``NumDF``,
    ``DenDF``, ``F value``, ``Pr(>F)``."""
    tests = hypotheses(design, type)
    contrasts = Contrasts(work, ddf)
    rows = [contrasts.f_test(L) for L in tests.values()]
    F = np.array([r[0] for r in rows])
    num = np.array([r[1] for r in rows], dtype=int)
    den = np.array([r[2] for r in rows])
    mean_sq = np.array([r[3] for r in rows]) * work.sigma**2  # lmerTest: unscaled F · σ²
    return pd.DataFrame(
        {
            "Sum Sq": mean_sq * num,
            "Mean Sq": mean_sq,
            "NumDF": num,
            "DenDF": den,
            "F value": F,
            "Pr(>F)": stats.f.sf(F, num, den),
        },
        index=pd.Index(list(tests), name="term"),
    )

"""What the inference beside a REML / ML fit shares: its errors, its parameters, its checks.

The parameters are :func:`bayeslmm.names.parameters`' (the rows of ``compare()``:
``fixef[Days]``, ``sd_Subject[(Intercept)]``, ``corr_Subject[(Intercept), Days]``,
``sigma``), each with where it sits in the model (:class:`Target`).  The algorithms are
in :mod:`.profile` (likelihood-ratio intervals), :mod:`.bootstrap` (parametric bootstrap),
:mod:`.ddf` (Satterthwaite and Kenward–Roger t-tests), :mod:`.confint` (the three
interval methods behind ``LmerFit.confint``) and :mod:`.anova` (likelihood-ratio tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..design import Design
from ..errors import BayesLMMError


class InferenceError(BayesLMMError, ValueError):
    """Bad arguments to an inference method (unknown parameter, level, method, ddf), or
    models that a likelihood-ratio test cannot compare (other data, not nested)."""


class MLRefitWarning(UserWarning):
    """lme4's message "refitting model(s) with ML (instead of REML)"."""


class Estimates(Protocol):
    """What inference reads from a fit (:class:`~bayeslmm.reml.fit.LmerFit`)."""

    @property
    def design(self) -> Design: ...
    @property
    def reml(self) -> bool: ...
    @property
    def sigma(self) -> float: ...
    @property
    def theta(self) -> pd.Series: ...
    @property
    def fixef(self) -> pd.Series: ...
    @property
    def fixef_se(self) -> pd.Series: ...
    @property
    def vcov(self) -> pd.DataFrame: ...
    @property
    def Lambda(self) -> sp.csc_matrix: ...


Kind = Literal["fixef", "sd", "corr", "sigma"]


@dataclass(frozen=True)
class Target:
    """One parameter and where it sits: a fixed effect (``index`` its column), an SD of
    term ``index`` (column ``i``), a correlation of term ``index`` (columns ``j`` < ``i``:
    the label's var1, var2) or σ."""

    label: str
    kind: Kind
    index: int = 0
    i: int = 0
    j: int = 0


def targets(design: Design) -> list[Target]:
    """Every parameter of ``design`` in compare()'s order (:attr:`Design.parameters`)."""
    groups = [t.group for t in design.terms]
    out = []
    for p in design.parameters:
        if p.kind == "fixef":
            out.append(Target(p.label, "fixef", design.fixef_names.index(str(p.var1))))
        elif p.kind == "sigma":
            out.append(Target(p.label, "sigma"))
        else:
            t = groups.index(str(p.grp))
            cnames = design.terms[t].cnames
            if p.kind == "sd":
                out.append(Target(p.label, "sd", t, cnames.index(str(p.var1))))
            else:
                i, j = cnames.index(str(p.var2)), cnames.index(str(p.var1))
                out.append(Target(p.label, "corr", t, i, j))
    return out


def select(design: Design, parm: str | Sequence[str] | None) -> list[Target]:
    """The parameters named by ``parm`` (labels as compare() writes them; None: all), in
    table order."""
    every = targets(design)
    if parm is None:
        return every
    if isinstance(parm, str):
        wanted = [parm]
    elif isinstance(parm, Sequence) and all(isinstance(w, str) for w in parm):
        wanted = list(parm)
    else:
        raise InferenceError(f"parm must be a parameter label or a list of them, got {parm!r}")
    labels = [t.label for t in every]
    unknown = [w for w in wanted if w not in labels]
    if unknown:
        raise InferenceError(f"unknown parm {unknown[0]!r}; this model's parameters are {labels}")
    return [t for t in every if t.label in wanted]


def check_level(level: object) -> float:
    """``level`` as a float in (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InferenceError(f"level must be a probability in (0, 1), got {level!r}")
    return float(level)


#: the largest q + p + 1 the dense algebra of profiles, bootstrap and t-tests takes (each
#: evaluation costs O((q + p + 1)³))
DENSE_LIMIT = 2000


def check_dense(design: Design, what: str) -> None:
    """Raise when ``design`` is too large for the dense algebra of ``what``."""
    size = design.q + design.p + 1
    if size > DENSE_LIMIT:
        raise InferenceError(
            f"{what} works on dense (q + p + 1)-square matrices and this model has "
            f"q + p + 1 = {size} > {DENSE_LIMIT} random and fixed effects; "
            "confint(method='wald') has no such limit"
        )


def interval_table(targets: Sequence[Target], bounds: np.ndarray) -> pd.DataFrame:
    """Intervals (one ``(lower, upper)`` row per target) indexed by label."""
    return pd.DataFrame(
        np.asarray(bounds, dtype=float).reshape(len(targets), 2),
        index=pd.Index([t.label for t in targets], name="parameter"),
        columns=["lower", "upper"],
    )

"""Likelihood-ratio tests of nested models: lme4's ``anova(m0, m1, ...)``."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..design import Design, independent_columns
from .fit import LmerFit, fit_lmer
from .inference import InferenceError, MLRefitWarning


def _in_span(big: np.ndarray, small: np.ndarray) -> bool:
    """Whether every column of ``small`` lies in the column space of ``big`` (R's
    aliasing rule, :func:`~bayeslmm.design.independent_columns`, on [big small])."""
    kept = independent_columns(np.column_stack([big, small]))
    return len([j for j in kept if j >= big.shape[1]]) == 0


def _nested_in(small: Design, big: Design) -> bool:
    """Whether ``small`` is a submodel of ``big`` (a sufficient check): its fixed-effect
    columns lie in big's span, and each of its random-effect terms in the span of one of
    big's terms on the same grouping factor."""
    if not _in_span(big.X, small.X):
        return False
    return all(
        any(
            u.levels == t.levels and np.array_equal(u.codes, t.codes) and _in_span(u.X, t.X)
            for u in big.terms
        )
        for t in small.terms
    )


def anova(*fits: LmerFit, names: Sequence[str] | None = None) -> pd.DataFrame:
    """lme4's likelihood-ratio table of two or more nested models fitted to the same data.

    REML fits are refitted by ML first, with an :class:`MLRefitWarning` (lme4's message
    "refitting model(s) with ML (instead of REML)").  Rows in increasing npar (ties keep
    the given order), each tested against the row above: Chisq = 2·max(0, Δlog L),
    Df = Δnpar, Pr(>Chisq) from χ²_Df (NaN where Df = 0).  Columns: npar, AIC, BIC,
    logLik, deviance, Chisq, Df, Pr(>Chisq); rows named by ``names``, else by formula
    (MODEL1, MODEL2, ... where formulas repeat).  Raises :class:`InferenceError` for fits
    to different data (responses or observations differ) and for models that are not
    nested.
    """
    if len(fits) < 2:
        raise InferenceError(f"anova needs at least two fits, got {len(fits)}")
    for f in fits:
        if not isinstance(f, LmerFit):
            raise InferenceError(f"anova compares LmerFit objects, got {type(f).__name__}")
    if names is None:
        forms = [f.design.formula for f in fits]
        unique = len(set(forms)) == len(forms)
        names = forms if unique else [f"MODEL{i + 1}" for i in range(len(fits))]
    elif isinstance(names, str) or len(names) != len(fits) or len(set(names)) != len(names):
        raise InferenceError(
            f"names must give one distinct name per fit ({len(fits)}), got {names!r}"
        )
    for f in fits[1:]:
        if f.nobs != fits[0].nobs:
            sizes = ", ".join(str(g.nobs) for g in fits)
            raise InferenceError(
                f"models were not all fitted to the same data: numbers of observations "
                f"differ ({sizes})"
            )
        if not np.array_equal(f.design.y, fits[0].design.y):
            raise InferenceError(
                "models were not all fitted to the same data: the responses differ"
            )
    order = sorted(range(len(fits)), key=lambda i: fits[i].df)  # stable, as R's order()
    for a, b in itertools.pairwise(order):
        small, big = fits[a].design, fits[b].design
        if not _nested_in(small, big):
            raise InferenceError(
                f"model {names[a]!r} is not nested in {names[b]!r}: a likelihood-ratio "
                "test needs each model (in order of npar) to be a submodel of the next"
            )
    if any(f.reml for f in fits):
        warnings.warn("refitting model(s) with ML (instead of REML)", MLRefitWarning, stacklevel=2)
    ml = []
    for i in order:
        f = fits[i]
        if f.reml:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = fit_lmer(f.design, reml=False)
        ml.append(f)
    npar = np.array([f.df for f in ml], dtype=float)
    loglik = np.array([f.loglik for f in ml])
    from scipy import stats  # loaded on first use

    chisq = np.concatenate([[np.nan], 2 * np.maximum(0.0, np.diff(loglik))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        p = np.where(df == 0, np.nan, stats.chi2.sf(chisq, df))
    return pd.DataFrame(
        {
            "npar": npar.astype(int),
            "AIC": [f.aic for f in ml],
            "BIC": [f.bic for f in ml],
            "logLik": loglik,
            "deviance": -2 * loglik,
            "Chisq": chisq,
            "Df": df,
            "Pr(>Chisq)": p,
        },
        index=[names[i] for i in order],
    )

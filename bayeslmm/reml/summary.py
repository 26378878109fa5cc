"""lme4's ``summary(fit)`` text (``print.summary.merMod`` with ``digits = 4``)."""

from __future__ import annotations

import re
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .. import names
from ..design import Design
from .pls import template
from .rformat import abbreviate, print_matrix, print_named, r_format, zapsmall

_DIGITS = 4


class Summarisable(Protocol):
    """What the summary reads from a fit (:class:`~bayeslmm.reml.fit.LmerFit`)."""

    @property
    def design(self) -> Design: ...
    @property
    def reml(self) -> bool: ...
    @property
    def data_name(self) -> str | None: ...
    @property
    def reml_criterion(self) -> float | None: ...
    @property
    def deviance(self) -> float | None: ...
    @property
    def aic(self) -> float: ...
    @property
    def bic(self) -> float: ...
    @property
    def loglik(self) -> float: ...
    @property
    def nobs(self) -> int: ...
    @property
    def df(self) -> int: ...
    @property
    def ngroups(self) -> dict[str, int]: ...
    @property
    def sigma(self) -> float: ...
    @property
    def residuals(self) -> np.ndarray: ...
    @property
    def theta(self) -> pd.Series: ...
    @property
    def fixef(self) -> pd.Series: ...
    @property
    def fixef_se(self) -> pd.Series: ...
    @property
    def vcov(self) -> pd.DataFrame: ...
    @property
    def optinfo(self) -> dict[str, Any]: ...


def summary_text(
    fit: Summarisable, tests: pd.DataFrame | None = None, method: str | None = None
) -> str:
    """The lines of lme4's summary, joined; with ``tests`` (a ``fixef_table``, computed
    by ``method``) lmerTest's: the fixed effects get df and p-values."""
    design = fit.design
    title = "REML" if fit.reml else "maximum likelihood "
    if tests is None:
        head = f"Linear mixed model fit by {title} ['lmerMod']"
    else:
        head = (
            f"Linear mixed model fit by {title}. t-tests use {method}'s method ['lmerModLmerTest']"
        )
    lines = [head, "Formula: " + " \n".join(_r_formula(design.formula))]
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    lines.append("")
    if fit.reml_criterion is not None:
        lines.append(f"REML criterion at convergence: {round(fit.reml_criterion, 1):.7g}")
    else:
        assert fit.deviance is not None
        vals = [round(v, 1) for v in (fit.aic, fit.bic, fit.loglik, fit.deviance)]
        cells = r_format([*vals, fit.nobs - fit.df], 7)
        cells[-1] = str(fit.nobs - fit.df)
        stats = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        width = max(len(c) for c in cells + stats)
        lines += print_named([c.rjust(width) for c in cells], [n.rjust(width) for n in stats])
    lines.append("")
    lines.append("Scaled residuals: ")
    q = zapsmall(_quantile7(fit.residuals / fit.sigma), _DIGITS + 1)
    lines += print_named(r_format(q, _DIGITS), ["Min", "1Q", "Median", "3Q", "Max"])
    lines.append("")
    lines.append("Random effects:")
    lines += _varcorr_lines(design, fit.theta.to_numpy(), fit.sigma)
    groups = "; ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    lines += design.missing_note
    if design.p and tests is not None:
        lines += ["", "Fixed effects:", *_coef_test_lines(tests)]
    elif design.p:
        lines += ["", "Fixed effects:", *_coef_lines(fit.fixef, fit.fixef_se)]
    if design.p > 1:
        lines += ["", "Correlation of Fixed Effects:", *_corr_lines(fit.vcov)]
    if fit.optinfo["messages"]:
        lines += ["optimizer (nloptwrap) convergence code: 0 (OK)"] + fit.optinfo["messages"]
    return "\n".join(lines)


def _r_formula(formula: str, cutoff: int = 60) -> list[str]:
    """R's deparse of an lme4 formula: spaced ``|``, ``(x || g)`` expanded, lines cut at 60."""

    def expand(m: re.Match[str]) -> str:
        lhs = [t.strip() for t in m.group(1).split("+")]
        g = m.group(2).strip()
        parts = [] if {"0", "-1"} & set(lhs) else [f"(1 | {g})"]
        parts += [f"(0 + {t} | {g})" for t in lhs if t not in ("0", "-1", "1")]
        return "(" + " + ".join(parts) + ")"

    text = re.sub(r"\(([^()|]*)\|\|([^()|]*)\)", expand, " ".join(formula.split()))
    text = re.sub(r"\s*\|\s*", " | ", text)
    text = re.sub(r"\s*([~+])\s*", r" \1 ", text)
    text = " ".join(text.replace("( ", "(").replace(" )", ")").split())
    lines, line = [], ""
    for piece in re.split(r"(?<=[~+|] )", text):
        line += piece
        if len(line) > cutoff:
            lines.append(line)
            line = "    "
    if line.strip():
        lines.append(line)
    return lines


def _quantile7(x: np.ndarray) -> np.ndarray:
    """R's quantile type 7 at 0, .25, .5, .75, 1."""
    return np.quantile(x, [0, 0.25, 0.5, 0.75, 1.0], method="linear")


def _varcorr_lines(design: Design, theta: np.ndarray, sigma: float) -> list[str]:
    sds: list[float] = []
    groups: list[str] = []
    columns: list[str] = []
    corrs: list[list[str]] = []
    maxlen = max(t.nc for t in design.terms)
    for t, sl in zip(design.terms, design.theta_slices, strict=True):
        T = template(theta[sl], t.nc)
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        sds += list(sd)
        groups += [t.group] + [""] * (t.nc - 1)
        columns += list(t.cnames)
        with np.errstate(invalid="ignore", divide="ignore"):
            C = S / np.outer(sd, sd)
        cc = np.array(r_format(np.round(np.nan_to_num(C), 2), 7, nsmall=2)).reshape(t.nc, t.nc)
        for r in range(t.nc):
            row = [str(cc[r, c]) if c < r else "" for c in range(maxlen)]
            corrs.append(row[: maxlen - 1])
    sds.append(sigma)
    groups.append(names.RESIDUAL)
    columns.append("")
    corrs.append([""] * (maxlen - 1))
    var = r_format(np.square(sds), _DIGITS)
    sdf = r_format(sds, _DIGITS)
    rows = zip(groups, columns, var, sdf, corrs, strict=True)
    cells = [[g, n, v, s, *c] for g, n, v, s, c in rows]
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (
        ["Corr"] + [""] * (maxlen - 2) if maxlen > 1 else []
    )
    return print_matrix(cells, header, [""] * len(cells))


def _coef_lines(fixef: pd.Series, fixef_se: pd.Series) -> list[str]:
    est = fixef.to_numpy()
    se = fixef_se.to_numpy()
    tval = est / se
    cs = np.column_stack([est, se])
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.array([1, 1])
    dec = int(max(1, *(_DIGITS - digmin)))
    csf = np.array(r_format(np.round(cs, dec), _DIGITS)).reshape(cs.shape, order="C")
    tf = r_format(np.round(tval, max(1, min(5, _DIGITS - 1))), _DIGITS)
    cells = [[str(csf[i, 0]), str(csf[i, 1]), tf[i]] for i in range(len(est))]
    for i in range(len(est)):
        for j in range(2):
            if cs[i, j] != 0 and float(cells[i][j]) == 0:
                cells[i][j] = r_format([cs[i, j]], _DIGITS - 1)[0]
    return print_matrix(
        cells, ["Estimate", "Std. Error", "t value"], [str(n) for n in fixef.index], right=True
    )


def _coef_test_lines(tests: pd.DataFrame) -> list[str]:
    """R's ``printCoefmat`` of lmerTest's table (digits 4): estimate, SE and df formatted
    together, the t value to 3 decimals, p by ``format.pval`` and significance stars."""
    cs = tests[["estimate", "se", "df"]].to_numpy(dtype=float)
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.array([1, 1])
    dec = int(max(1, *(_DIGITS - digmin)))
    csf = np.array(r_format(np.round(cs, dec), _DIGITS)).reshape(cs.shape)
    cells = [list(map(str, row)) for row in csf]
    for i, j in zip(*np.nonzero(cs), strict=True):  # a value that rounds to 0 shows digits
        if float(cells[i][j]) == 0:
            cells[i][j] = r_format([cs[i, j]], _DIGITS - 1)[0]
    tval = r_format(np.round(tests["t"].to_numpy(dtype=float), 3), _DIGITS)
    pval = tests["p"].to_numpy(dtype=float)
    pcol = _format_pval(pval, _DIGITS - 1)
    stars = pval < 0.1
    header = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    rows = [[*c, t, p] for c, t, p in zip(cells, tval, pcol, strict=True)]
    if stars.any():
        codes = np.array(["***", "**", "*", ".", " "])
        marks = codes[np.searchsorted([0.001, 0.01, 0.05, 0.1], pval, side="left")]
        width = max(len(m) for m in marks)
        rows = [[*row, m.ljust(width)] for row, m in zip(rows, marks, strict=True)]
        header.append("")
    lines = print_matrix(rows, header, [str(n) for n in tests.index], right=True)
    if stars.any():
        lines += ["---", "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"]
    return lines


def _format_pval(pv: np.ndarray, digits: int) -> list[str]:
    """R's ``format.pval(pv, digits)`` with eps = machine epsilon: p < eps prints as
    ``< 2e-16``; the others in two groups (p >= 1e-3, and below) by R's ``format``."""
    eps = float(np.finfo(float).eps)
    small = pv < eps
    out = [""] * len(pv)
    rest = np.flatnonzero(~small)
    fixp = np.array([v == 0 or np.floor(np.log10(v)) >= -3 for v in pv[rest]], dtype=bool)
    for group in (rest[fixp], rest[~fixp]):
        if len(group):
            for i, text in zip(group, _r_format_auto(pv[group], digits), strict=True):
                out[i] = text
    if small.any():
        width = max((len(out[i]) for i in rest), default=0)
        sep = "" if not len(rest) or width <= 6 else " "  # R: digits - 2 = 1 here
        for i in np.flatnonzero(small):
            out[i] = f"<{sep}{_sci([eps], 1)[0]}"
    return out


def _sci(values: np.ndarray | list[float], digits: int) -> list[str]:
    """R's scientific ``format``: a common number of mantissa digits (at most ``digits``
    significant, trailing zeros dropped), a two-digit exponent at least."""
    nsig = 1
    for v in values:
        mant = f"{abs(v):.{digits - 1}e}".split("e")[0].replace(".", "").rstrip("0")
        nsig = max(nsig, len(mant))
    return [f"{v:.{nsig - 1}e}" for v in values]


def _r_format_auto(values: np.ndarray, digits: int) -> list[str]:
    """R's ``format(x, digits)``: fixed notation unless it is wider than scientific."""
    fixed, sci = r_format(values, digits), _sci(values, digits)
    if max(len(s.strip()) for s in fixed) <= max(len(s) for s in sci):
        return [s.strip() for s in fixed]
    return sci


def _corr_lines(vcov: pd.DataFrame) -> list[str]:
    V = vcov.to_numpy()
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    p = len(sd)
    labels = [str(n) for n in vcov.index]
    cf = np.array(r_format(np.round(C.ravel(order="F"), 3), 7, nsmall=3)).reshape((p, p), order="F")
    rows = [abbreviate(n, 11) for n in labels]
    cols = [abbreviate(n, 6) for n in labels]
    cells = [[str(cf[i, j]) if i > j else "" for j in range(p - 1)] for i in range(1, p)]
    return print_matrix(cells, cols[: p - 1], rows[1:])

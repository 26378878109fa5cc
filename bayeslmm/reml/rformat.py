"""R's number formatting and ``abbreviate``, as lme4's ``summary()`` output uses them."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _sig_decimals(x: float, digits: int) -> int:
    """Decimals R needs to show ``x`` with ``digits`` significant digits (zeros dropped)."""
    if x == 0 or not math.isfinite(x):
        return 0
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    nsig = len(mant.replace(".", "").rstrip("0")) or 1
    return max(0, nsig - int(exp) - 1)


def r_format(values: ArrayLike, digits: int = 7, nsmall: int = 0) -> list[str]:
    """R's ``format(x, digits=)`` for a numeric vector: common decimals, common width."""
    vals = [float(v) for v in np.ravel(values)]
    dec = max([_sig_decimals(v, digits) for v in vals] + [nsmall])
    out = [f"{v:.{dec}f}" for v in vals]
    width = max(len(s) for s in out)
    return [s.rjust(width) for s in out]


def zapsmall(values: ArrayLike, digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest |x|."""
    x = np.asarray(values, dtype=float)
    mx = np.max(np.abs(x))
    nd = digits if mx == 0 else max(0, math.floor(digits - math.log10(mx) + 0.5))
    return np.round(x, nd)


def _is_vowel(ch: str) -> bool:
    return ch in "aeiou"


def abbreviate(name: str, minlength: int) -> str:
    """R's ``abbreviate(name, minlength)`` (method "left.kept")."""
    s = list(name.strip())
    if len(s) <= minlength:
        return "".join(s)

    def first(i):
        return s[i - 1].isspace()

    def last(i):
        return not s[i - 1].isspace() and (i + 1 >= len(s) or s[i + 1].isspace())

    rules = [
        lambda i: _is_vowel(s[i]) and last(i),
        lambda i: _is_vowel(s[i]) and not first(i),
        lambda i: s[i].islower() and last(i),
        lambda i: s[i].islower() and not first(i),
        lambda i: not first(i) and not s[i].isspace(),
    ]
    for rule in rules:
        i = len(s) - 1
        while i > 0:
            if i < len(s) and rule(i):
                del s[i]
            if len(s) - sum(c.isspace() for c in s) <= minlength:
                return "".join(s).replace(" ", "")
            i -= 1
    return "".join(s).replace(" ", "")


def print_matrix(
    cells: list[list[str]],
    colnames: list[str],
    rownames: list[str],
    right: bool = False,
) -> list[str]:
    """R's ``print()`` of a character matrix with ``quote=FALSE``."""
    rw = max([len(r) for r in rownames] + [0])
    widths = [
        max([len(colnames[j])] + [len(row[j]) for row in cells]) for j in range(len(colnames))
    ]

    def cell(text, w):
        return text.rjust(w) if right else text.ljust(w)

    lines = [" " * rw + "".join(" " + cell(c, w) for c, w in zip(colnames, widths, strict=True))]
    for name, row in zip(rownames, cells, strict=True):
        cells_text = "".join(" " + cell(c, w) for c, w in zip(row, widths, strict=True))
        lines.append(name.ljust(rw) + cells_text)
    return lines


def print_named(values: list[str], names: list[str]) -> list[str]:
    """R's ``print()`` of a named vector: right-justified columns, a space after each."""
    widths = [max(len(a), len(b)) for a, b in zip(values, names, strict=True)]
    return [
        "".join(n.rjust(w) + " " for n, w in zip(names, widths, strict=True)),
        "".join(v.rjust(w) + " " for v, w in zip(values, widths, strict=True)),
    ]

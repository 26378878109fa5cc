"""lme4 formula syntax: split ``y ~ fixed + (lhs | group)`` into its parts.

The fixed part and each bar's left-hand side are ordinary Wilkinson formulas and
are handed to formulaic (see :mod:`bayeslmm.design`).  What formulaic cannot do
the way lme4 does — the bars themselves — is parsed here with reformulas'
semantics:

* ``(x | g)``    one correlated term with columns ``(Intercept), x``;
* ``(x || g)``   split into uncorrelated terms, one per term label of the LHS:
  ``(1 | g) + (0 + x | g)``;
* ``(1 | a/b)``  nesting, ``(1 | a) + (1 | b:a)`` (the interaction named inner:outer);
* ``(1 | a:b)``  a grouping factor made of the observed combinations of a and b.

:func:`to_formulaic` turns the R syntax formulaic reads otherwise (``^`` inside a call
is a power in R, xor in Python) into formulaic's, and names the results as R does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Container
from dataclasses import dataclass

from .errors import FormulaError


@dataclass(frozen=True)
class Bar:
    """One random-effect term ``(lhs | factors[0]:factors[1]:...)`` after expansion."""

    lhs: str
    factors: tuple[str, ...]

    @property
    def factor(self) -> str:
        """lme4's name of the grouping factor ("cask:batch")."""
        return ":".join(self.factors)

    def __str__(self) -> str:
        return f"({self.lhs} | {self.factor})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed-effects RHS and expanded bars (formula order)."""

    formula: str
    response: str
    fixed: str
    bars: tuple[Bar, ...]
    #: the expressions of the fixed part's ``offset(...)`` terms (lme4 sums them)
    offsets: tuple[str, ...] = ()


def _check_parens(text: str, formula: str) -> None:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"unbalanced parentheses: unexpected ')' in {formula!r}")
    if depth:
        raise FormulaError(f"unbalanced parentheses: missing ')' in {formula!r}")


def _split_top(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at depth-0 characters in ``seps``; returns (separator, piece) pairs."""
    out, depth, start, sep = [], 0, 0, "+"
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            # a '-' or '+' right after an operator ('**-1', 'e-5') is not a separator
            prev = text[:i].rstrip()
            if prev and prev[-1] not in "*/^:~,(" and not re.search(r"\d[eE]$", prev):
                out.append((sep, text[start:i].strip()))
                sep, start = ch, i + 1
    out.append((sep, text[start:].strip()))
    return out


def _is_bar(piece: str) -> bool:
    """True for a parenthesised ``(... | ...)`` piece."""
    if not (piece.startswith("(") and piece.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(piece):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(piece) - 1:
            return False  # "(a)+(b)" style: the outer parentheses do not wrap it all
    inner = piece[1:-1]
    depth = 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == "|":
            return True
    return False


def _group_factors(rhs: str, bar: str) -> list[tuple[str, ...]]:
    """Grouping side of a bar -> one tuple of factor names per term (``/`` expanded)."""
    rhs = rhs.strip()
    while rhs.startswith("(") and rhs.endswith(")"):
        rhs = rhs[1:-1].strip()
    if not rhs:
        raise FormulaError(f"empty grouping factor on the right of '|' in {bar}")
    nests = [p.strip() for p in rhs.split("/")]
    out: list[tuple[str, ...]] = []
    outer: tuple[str, ...] = ()
    for part in nests:
        names = tuple(n.strip().strip("`") for n in part.split(":"))
        for n in names:
            if not n or any(c in n for c in "+-*()~|"):
                raise FormulaError(
                    f"invalid grouping factor {part!r} in {bar}: use a variable name, "
                    "'a:b' for an interaction or 'a/b' for nesting"
                )
        # lme4 names nested interactions inner:outer ('cask:batch' for batch/cask)
        outer = names + outer
        out.append(outer)
    return out[::-1]  # reformulas lists the innermost interaction first


def _lhs_term_labels(lhs: str, bar: str) -> tuple[bool, list[str]]:
    """Intercept flag and term labels of a bar's LHS (for ``||`` splitting), R syntax."""
    import formulaic  # 0.7 s to import: only formulas that need it pay

    code = to_formulaic(lhs)
    try:
        terms = [code.r_name(str(t)) for t in formulaic.Formula(code.code)]
    except Exception as exc:  # formulaic's own parse errors
        raise FormulaError(f"cannot parse {lhs!r} in {bar}: {exc}") from None
    return "1" in terms, [t for t in terms if t != "1"]


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and expanded bars.

    >>> parse_formula("y ~ x + (x || g)").bars
    (Bar(lhs='1', factors=('g',)), Bar(lhs='0 + x', factors=('g',)))
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    text = " ".join(formula.split())
    _check_parens(text, formula)
    if text.count("~") != 1:
        raise FormulaError(
            f"formula needs exactly one '~' between response and predictors: {formula!r}"
        )
    response, rhs = (s.strip() for s in text.split("~"))
    if not response:
        raise FormulaError(f"formula has no response on the left of '~': {formula!r}")
    if not rhs:
        raise FormulaError(f"formula has no predictors on the right of '~': {formula!r}")

    fixed_pieces: list[str] = []
    bars: list[Bar] = []
    offsets: list[str] = []
    for sep, piece in _split_top(rhs, "+-"):
        if not piece:
            raise FormulaError(f"dangling '{sep}' in {formula!r}")
        inner = _offset_argument(piece)
        if inner is not None:
            if sep == "-" or not inner:
                raise FormulaError(f"write an offset as '+ offset(expression)' in {formula!r}")
            offsets.append(inner)
        elif _is_bar(piece):
            if sep == "-":
                raise FormulaError(f"cannot subtract a random-effect term {piece} in {formula!r}")
            bars.extend(_parse_bar(piece))
        elif "|" in piece:
            raise FormulaError(
                f"random-effect term {piece!r} must be wrapped in parentheses, "
                f"like (1 | g), in {formula!r}"
            )
        else:
            fixed_pieces.append(piece if not fixed_pieces and sep == "+" else f"{sep} {piece}")
    fixed = " ".join(fixed_pieces) if fixed_pieces else "1"
    if fixed.startswith("- "):
        fixed = "1 " + fixed
    return ParsedFormula(
        formula=text, response=response, fixed=fixed, bars=tuple(bars), offsets=tuple(offsets)
    )


def _offset_argument(piece: str) -> str | None:
    """The argument of an ``offset(...)`` term (one call spanning the piece), else None."""
    m = re.fullmatch(r"offset\s*\((.*)\)", piece, flags=re.S)
    if m is None:
        return None
    depth = 0
    for ch in m.group(1):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return None  # "offset(a) + (b)": the parentheses do not wrap it all
    return m.group(1).strip()


def _parse_bar(piece: str) -> list[Bar]:
    inner = piece[1:-1].strip()
    depth, pos = 0, -1
    for i, ch in enumerate(inner):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == "|":
            pos = i
            break
    double = inner[pos + 1 : pos + 2] == "|"
    lhs = inner[:pos].strip()
    rhs = inner[pos + (2 if double else 1) :].strip()
    if not lhs:
        raise FormulaError(f"empty left side of '|' in {piece}: write (1 | g) for an intercept")
    if "|" in rhs:
        raise FormulaError(f"more than one '|' in {piece}")
    groups = _group_factors(rhs, piece)
    if not double:
        return [Bar(lhs, g) for g in groups]
    intercept, labels = _lhs_term_labels(lhs, piece)
    lhss = (["1"] if intercept else []) + [f"0 + {label}" for label in labels]
    return [Bar(part, g) for g in groups for part in lhss]


# --------------------------------------------------------------------------------------
# R syntax -> formulaic's
# --------------------------------------------------------------------------------------

#: the function formulaic code wraps an ordered factor in (R's ``contr.poly`` coding)
CONTR_POLY = "_contr_poly_"

_TOKEN = re.compile(
    r"""\s*("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`"""  # strings, `names`
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"  # numbers
    r"|[A-Za-z_.][\w.]*|\*\*|%[^%]*%|[=!<>]=|&&|\|\||\S)"  # names, operators
)
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
#: binary operators R's deparse writes with spaces around them (``^``, ``/``, ``:`` without)
_SPACED = {"+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "&&", "|", "||", "~", "="}
_OPERATORS = _SPACED | {"^", "**", "/", ":", "!", "(", ",", "["}


@dataclass(frozen=True)
class Translation:
    """An R-syntax expression as formulaic code; ``names`` maps formulaic's name of each
    rewritten piece (``I(x ** 2)``) to R's (``I(x^2)``)."""

    code: str
    names: dict[str, str]

    def r_name(self, text: str) -> str:
        """A formulaic column name or term label with the rewritten pieces named as R does."""
        if not self.names:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(self.names, key=len, reverse=True))
        return re.sub(pattern, lambda m: self.names[m.group(0)], text)


def to_formulaic(expr: str, ordered: Container[str] = frozenset()) -> Translation:
    """R syntax -> formulaic's.

    ``^`` inside a call's arguments (``I(x^2)``, ``log((x - 1)^2)``) is R's arithmetic
    power, ``**`` (at the formula level ``(a + b)^2`` stays the interaction power); a
    bare name in ``ordered`` (an ordered factor) is wrapped in :data:`CONTR_POLY`.

    >>> to_formulaic("x + I((x - 1)^2)").names
    {'I((x - 1) ** 2)': 'I((x - 1)^2)'}
    """
    pieces: list[str] = []
    names: dict[str, str] = {}
    opens: list[bool] = []  # per open parenthesis: whether it opens a call's arguments
    calls = 0
    outer = (0, 0)  # where the outermost call starts: index in pieces, offset in expr
    name_at = (0, 0)
    power = False
    tokens = list(_TOKEN.finditer(expr))
    prev = ""
    for k, m in enumerate(tokens):
        tok = m.group(1)
        piece = tok
        following = tokens[k + 1].group(1) if k + 1 < len(tokens) else ""
        if tok == "(":
            call = bool(_NAME.fullmatch(prev))
            if call and not calls:
                outer = name_at
            opens.append(call)
            calls += call
        elif tok == ")":
            calls -= opens.pop() if opens else False
            if not calls and power:  # the outermost call ends: name it as R does
                key = _formulaic_name("".join(pieces[outer[0] :]).strip() + ")")
                if key is not None:
                    names[key] = _deparse(expr[outer[1] : m.end(1)])
                power = False
        elif tok == "^" and calls:
            piece, power = "**", True
        elif _NAME.fullmatch(tok):
            name_at = (len(pieces), m.start(1))
            if not calls and tok in ordered and following != "(":
                piece = f"{CONTR_POLY}({tok})"
                names[piece] = tok
        pieces.append(m.group(0)[: m.start(1) - m.start(0)] + piece)
        prev = tok
    return Translation("".join(pieces).strip(), names)


def _formulaic_name(code: str) -> str | None:
    """formulaic's name of a piece of Python code (``ast.unparse``, `names` kept)."""
    quoted: dict[str, str] = {}

    def hide(m: re.Match) -> str:
        alias = f"_q{len(quoted)}_"
        quoted[alias] = m.group(0)
        return alias

    try:
        text = ast.unparse(ast.parse(re.sub(r"`[^`]*`", hide, code), mode="eval"))
    except SyntaxError:
        return None  # formulaic reports it
    for alias, name in quoted.items():
        text = text.replace(alias, name)
    return text


def _deparse(code: str) -> str:
    """R's ``deparse`` of a call: spaces around ``+ - *`` and comparisons, none around
    ``^ / :``, ``**`` as ``^``, numbers as R prints them."""
    out: list[str] = []
    prev = "("
    for m in _TOKEN.finditer(code):
        tok = "^" if m.group(1) == "**" else m.group(1)
        if tok in _SPACED and not (tok in ("+", "-") and prev in _OPERATORS):  # unary
            out.append(f" {tok} ")
        elif tok == ",":
            out.append(", ")
        elif _NUMBER.fullmatch(tok):
            out.append(_r_number(tok))
        else:
            out.append(tok)
        prev = tok
    return "".join(out)


def _r_number(text: str) -> str:
    """A numeric literal as R prints it: 15 significant digits, fixed notation unless
    scientific is narrower (``1e-05``, ``1e+05``, ``0.5``)."""
    value = float(text)
    mantissa, exponent = f"{value:.14e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = int(exponent)
    digits = len(mantissa.replace(".", ""))
    fixed = f"{value:.{max(digits - 1 - power, 0)}f}"
    scientific = f"{mantissa}e{power:+03d}"
    return fixed if len(fixed) <= len(scientific) else scientific

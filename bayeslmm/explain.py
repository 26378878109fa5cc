"""The model's generative story in words and symbols, with the user's variable names.

For ``Reaction ~ Days + (Days | Subject)``::

    b0, b1                                         population (fixed) coefficients
    Sigma_u = diag(tau_u) Omega_u diag(tau_u)      covariance of one Subject's effects
    (u0[j], u1[j]) ~ MvNormal(0, Sigma_u)          each Subject's effects
    mu[i] = (b0 + u0[Subject[i]]) + (b1 + u1[Subject[i]]) * Days[i]
    Reaction[i] ~ Normal(mu[i], sigma)

Given a REML fit the story carries the estimates; given a Posterior, the posterior means
and the priors of the Bayesian model.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import names
from .design import Design, ReTerm
from .params import ParameterSet, parameters_of

if TYPE_CHECKING:
    from .bayes.priors import Prior

_LETTERS = "uvwrst"


@dataclass(frozen=True)
class Step:
    """One step of the story: a title, its plain-text statement and its LaTeX."""

    title: str
    text: str
    latex: str


@dataclass(frozen=True)
class Explanation:
    """The generative story of one model; ``print`` it, or display it in a notebook."""

    formula: str
    source: str
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        width = len(str(len(self.steps)))
        lines = [f"Generative story of {self.formula} ({self.source})"]
        lines += [f"{i:>{width}}. {s.title}: {s.text}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    __repr__ = __str__

    def to_markdown(self) -> str:
        """Markdown with inline LaTeX, one numbered item per step."""
        lines = [f"**Generative story of `{self.formula}`** ({self.source})", ""]
        lines += [f"{i}. {s.title}: {s.latex}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


#: how the story names each kind of source
_SOURCES = {
    "values": "given parameter values",
    "reml": "REML estimates",
    "posterior": "posterior means",
}


def explain(
    design: Design, fit: Any = None, *, priors: Mapping[str, Prior] | None = None
) -> Explanation:
    """The generative story of ``design``'s model: symbols only, or filled in from ``fit``.

    ``fit`` is None (symbols), a REML fit (estimates), a Posterior (posterior means and
    the priors it was sampled with) or a dict of parameter values (see
    :mod:`bayeslmm.params`).  ``priors`` (resolved) are listed beside the parameters: the
    story that the prior predictive follows.
    """
    values, source = None, "symbols"
    used: Mapping[str, Prior] = {}
    marginal = fixef_integrated = False
    if fit is not None:
        params, kind = parameters_of(design, fit, role="fit")
        values, source = params.mean(), _SOURCES[kind]
        if kind == "posterior":
            used, source = fit.priors, source + " and the priors used"
            marginal = set(fit.parameterization.values()) == {"marginal"}
            fixef_integrated = fit.integrated_fixef
    if priors is not None and not used:
        used, source = priors, source + " and the model's priors"
    texts = {name: str(prior) for name, prior in used.items()}
    story = _Story(design, values, texts)
    ratio = getattr(fit, "sigma_ratio", None)
    story.sigma_ratio = None if ratio is None else [float(r) for r in ratio]
    steps = story.steps() + ([story.marginal(fixef_integrated)] if marginal else [])
    return Explanation(design.formula, source, tuple(steps))


def _num(x: float) -> str:
    return f"{x:.4g}"


def _tex_name(name: str) -> str:
    """A user's name inside LaTeX ``\\text{}``."""
    for ch in "\\{}_%&#$^~":
        name = name.replace(ch, "\\" + ch)
    return rf"\text{{{name}}}"


class _Story:
    """Symbols for every parameter of one design, and the steps that use them."""

    def __init__(self, design: Design, values: ParameterSet | None, priors: dict[str, str]):
        self.design, self.values, self.priors = design, values, priors
        self.sigma_ratio: list[float] | None = None  # residual groups' ratios, when known
        self.letter = {
            f: _LETTERS[i] if i < len(_LETTERS) else f"u{i + 1}_"
            for i, f in enumerate(design.group_factors)
        }
        # (term index, column) -> (text symbol, LaTeX symbol) of the group effect
        self.effect: dict[tuple[int, int], tuple[str, str]] = {}
        for factor in design.group_factors:
            cols = [
                (i, c)
                for i, t in enumerate(design.terms)
                if t.factor == factor
                for c in range(t.nc)
            ]
            letter = self.letter[factor]
            for j, key in enumerate(cols):
                self.effect[key] = (
                    (letter, letter) if len(cols) == 1 else (f"{letter}{j}", f"{letter}_{{{j}}}")
                )

    def steps(self) -> list[Step]:
        out = [self._fixed(), self._groups()]
        for i, term in enumerate(self.design.terms):
            out += self._term(i, term)
        return [*out, self._predictor(), self._response()]

    def marginal(self, fixef: bool) -> Step:
        """How the marginalised sampler computed the posterior from this story (``fixef``:
        the fixed coefficients, with Normal priors, were integrated out too)."""
        effects = ", ".join(
            f"{', '.join(self.effect[(i, c)][0] for c in range(t.nc))} ({t.factor})"
            for i, t in enumerate(self.design.terms)
        )
        symbols = [
            (t.factor, ", ".join(f"${self.effect[(i, c)][1]}$" for c in range(t.nc)))
            for i, t in enumerate(self.design.terms)
        ]
        effects_tex = ", ".join(f"{tex} (`{factor}`)" for factor, tex in symbols)
        y = self.design.response
        conditional = (
            "their exact conditional given those parameters and the data, a Gaussian; with the "
            "fixed coefficients, SDs, correlations and sigma fixed at lme4's estimates, the "
            "group effects' conditional has lme4's conditional modes as its mean and lme4's "
            "condVar as its covariance"
        )
        if fixef:
            text = (
                f"the group effects {effects} and the fixed coefficients (Normal priors) were "
                "integrated out for sampling: NUTS drew only the SDs, correlations and sigma, "
                f"from {y} ~ MvNormal(X m, sigma^2 I + Z Sigma Z^T + X S X^T) (m, S: the "
                "fixed coefficients' prior means and variances); afterwards each draw got the "
                f"fixed coefficients and group effects together from {conditional}"
            )
            latex = (
                f"the group effects {effects_tex} and the fixed coefficients (Normal priors) "
                "were integrated out for sampling: NUTS drew only the SDs, correlations and "
                rf"$\sigma$, from ${_tex_name(y)} \sim \mathrm{{MvNormal}}(Xm, \sigma^2 I + "
                r"Z\Sigma Z^\top + XSX^\top)$; afterwards each draw got $\beta$ and the group "
                "effects together from their exact (Gaussian) conditional given those "
                "parameters and the data"
            )
        else:
            text = (
                f"the group effects {effects} were integrated out for sampling: NUTS drew the "
                f"fixed coefficients, SDs, correlations and sigma from {y} ~ MvNormal(X b, "
                "sigma^2 I + Z Sigma Z^T); afterwards each draw got the group effects from "
                + conditional
            )
            latex = (
                f"the group effects {effects_tex} were integrated out for sampling: NUTS drew "
                rf"the other parameters from ${_tex_name(y)} \sim \mathrm{{MvNormal}}(X\beta, "
                r"\sigma^2 I + Z\Sigma Z^\top)$; afterwards each draw got the group effects "
                "from their exact (Gaussian) conditional given those parameters and the data: "
                "lme4's conditional modes and condVar when the parameters are fixed at lme4's "
                "estimates"
            )
        return Step("How the posterior was computed", text, latex)

    # -- steps ----------------------------------------------------------------------------
    def _fixed(self) -> Step:
        texts, texes = [], []
        for j, name in enumerate(self.design.fixef_names):
            value = None if self.values is None else self.values.fixef[0, j]
            text, tex = self._param(
                f"b{j}", rf"\beta_{{{j}}}", value, names.fixef_label(name), name
            )
            texts.append(text)
            texes.append(tex)
        if names.INTERCEPT in self.priors:
            centred, centred_tex = self._centred_intercept()
            prior = self.priors[names.INTERCEPT]
            texts.append(f"prior on the centred intercept {centred} ~ {prior}")
            texes.append(f"prior on the centred intercept ${centred_tex} \\sim$ {prior}")
        return Step("Population (fixed) coefficients", ", ".join(texts), ", ".join(texes))

    def _centred_intercept(self) -> tuple[str, str]:
        """``b0 + 4.5 * b1``: the intercept at the slope columns' means (bayes.py's α)."""
        design = self.design
        icpt = design.fixef_names.index("(Intercept)")
        text, tex = [f"b{icpt}"], [rf"\beta_{{{icpt}}}"]
        for j in range(design.p):
            if j != icpt:
                mean = _num(design.X[:, j].mean())
                text.append(f"{mean} * b{j}")
                tex.append(rf"{mean}\,\beta_{{{j}}}")
        return " + ".join(text), " + ".join(tex)

    def _groups(self) -> Step:
        """The grouping factors, their sizes, and which are nested in or crossed with which."""
        design = self.design
        first = {f: next(t for t in design.terms if t.factor == f) for f in design.group_factors}
        parts = [(f"{f} ({first[f].nl} levels)", f"`{f}` ({first[f].nl} levels)") for f in first]
        for a, b in itertools.combinations(design.group_factors, 2):
            if first[b].nested_in(first[a]):
                a, b = b, a
            relation = "nested in" if first[a].nested_in(first[b]) else "crossed with"
            parts.append((f"; {a} {relation} {b}", f"; `{a}` {relation} `{b}`"))
        title = "Grouping factor" if len(first) == 1 else "Grouping factors"
        n = len(first)
        return Step(
            title,
            ", ".join(p for p, _ in parts[:n]) + "".join(p for p, _ in parts[n:]),
            ", ".join(p for _, p in parts[:n]) + "".join(p for _, p in parts[n:]),
        )

    def _term(self, i: int, term: ReTerm) -> list[Step]:
        design, factor = self.design, term.factor
        syms = [self.effect[(i, c)] for c in range(term.nc)]
        sds = []
        for c, name in enumerate(term.cnames):
            value = None if self.values is None else self.values.sd[i][0, c]
            sds.append(
                self._param(
                    f"tau_{syms[c][0]}",
                    rf"\tau_{{{syms[c][1]}}}",
                    value,
                    names.sd_label(term.group, name),
                    name,
                )
            )
        n_terms = sum(t.factor == factor for t in design.terms)
        if term.nc == 1:
            (u, utex), (sd_text, sd_tex) = syms[0], sds[0]
            alone = (
                f"; independent of {factor}'s other effects (separate terms, no correlation)"
                if n_terms > 1
                else ""
            )
            return [
                Step(
                    f"{factor} effects",
                    f"{u}[j] ~ Normal(0, tau_{u}) for each of the {term.nl} levels j of "
                    f"{factor}; {sd_text}{alone}",
                    rf"${utex}[j] \sim \mathrm{{Normal}}(0, \tau_{{{utex}}})$ for each of the "
                    f"{term.nl} levels $j$ of `{factor}`; {sd_tex}{alone}",
                )
            ]
        name = self.letter[factor] + ("" if n_terms == 1 else f"_{i + 1}")
        tex = self.letter[factor] + ("" if n_terms == 1 else f",{i + 1}")
        taus = ", ".join(f"tau_{u}" for u, _ in syms)
        taus_tex = ", ".join(rf"\tau_{{{u}}}" for _, u in syms)
        return [
            Step(
                f"SDs of the {factor} effects",
                ", ".join(s for s, _ in sds),
                ", ".join(s for _, s in sds),
            ),
            self._correlation(i, term, name, tex, syms),
            Step(
                f"Covariance of the {factor} effects",
                f"Sigma_{name} = diag({taus}) Omega_{name} diag({taus})",
                rf"$\Sigma_{{{tex}}} = \mathrm{{diag}}({taus_tex})\,\Omega_{{{tex}}}\,"
                rf"\mathrm{{diag}}({taus_tex})$",
            ),
            Step(
                f"{factor} effects",
                f"({', '.join(f'{u}[j]' for u, _ in syms)}) ~ MvNormal(0, Sigma_{name}) "
                f"for each of the {term.nl} levels j of {factor}",
                rf"$({', '.join(f'{u}[j]' for _, u in syms)}) \sim "
                rf"\mathrm{{MvNormal}}(0, \Sigma_{{{tex}}})$ for each of the {term.nl} levels "
                f"$j$ of `{factor}`",
            ),
        ]

    def _correlation(
        self, i: int, term: ReTerm, name: str, tex: str, syms: list[tuple[str, str]]
    ) -> Step:
        prior = self.priors.get(names.corr(term.group))
        if prior is not None:
            text, latex = f"Omega_{name} ~ {prior}", rf"$\Omega_{{{tex}}} \sim$ {prior}"
        elif self.values is None:
            text, latex = (
                f"Omega_{name} ~ LKJ(eta)",
                rf"$\Omega_{{{tex}}} \sim \mathrm{{LKJ}}(\eta)$",
            )
        else:
            text = f"Omega_{name} (an LKJ(eta) prior in the Bayesian model)"
            latex = rf"$\Omega_{{{tex}}}$ (an $\mathrm{{LKJ}}(\eta)$ prior in the Bayesian model)"
        if self.values is not None:
            pairs = [(a, b) for b in range(term.nc) for a in range(b + 1, term.nc)]
            corr = self.values.corr[i][0]
            text += "; " + ", ".join(
                f"corr({syms[b][0]}, {syms[a][0]}) = {_num(corr[a, b])}" for a, b in pairs
            )
            latex += "; " + ", ".join(
                rf"$\rho({syms[b][1]}, {syms[a][1]}) = {_num(corr[a, b])}$" for a, b in pairs
            )
        return Step(f"Correlation matrix of the {term.factor} effects", text, latex)

    def _predictor(self) -> Step:
        """``mu[i]``: one summand per model-matrix column, fixed and random coefficients
        of the same column together, the intercept first."""
        design = self.design
        columns = list(
            dict.fromkeys(list(design.fixef_names) + [c for t in design.terms for c in t.cnames])
        )
        columns.sort(key=lambda c: c != "(Intercept)")
        texts, texes = [], []
        for col in columns:
            coef, coef_tex = [], []
            if col in design.fixef_names:
                j = design.fixef_names.index(col)
                coef.append(f"b{j}")
                coef_tex.append(rf"\beta_{{{j}}}")
            for i, term in enumerate(design.terms):
                if col in term.cnames:
                    u, utex = self.effect[(i, term.cnames.index(col))]
                    coef.append(f"{u}[{term.factor}[i]]")
                    coef_tex.append(f"{utex}[{_tex_name(term.factor)}[i]]")
            text, tex = " + ".join(coef), " + ".join(coef_tex)
            if len(coef) > 1 and len(columns) > 1:
                text, tex = f"({text})", f"({tex})"
            if col != "(Intercept)":
                data, data_tex = _column_expr(col, design.frame)
                text, tex = f"{text} * {data}", rf"{tex} \cdot {data_tex}"
            texts.append(text)
            texes.append(tex)
        return Step(
            "Linear predictor",
            f"mu[i] = {' + '.join(texts)}",
            rf"$\mu[i] = {' + '.join(texes)}$",
        )

    def _response(self) -> Step:
        design = self.design
        value = None if self.values is None else float(self.values.sigma[0])
        sd_text, sd_tex = self._param("sigma", r"\sigma", value, names.SIGMA)
        y = design.response
        sd, tex = self._residual_sd()
        mean, mean_tex = (
            ("mu[i] + offset[i]", r"\mu[i] + o[i]")
            if design.offset is not None
            else (
                "mu[i]",
                r"\mu[i]",
            )
        )
        text = f"{y}[i] ~ Normal({mean}, {sd}) for each of the {design.nobs} observations i"
        latex = (
            rf"${_tex_name(y)}[i] \sim \mathrm{{Normal}}({mean_tex}, {tex})$ for each of the "
            f"{design.nobs} observations $i$"
        )
        if sd_text != "sigma":
            text, latex = f"{text}; {sd_text}", f"{latex}; {sd_tex}"
        text, latex = text + self._residual_note(), latex + self._residual_note()
        return Step("Response", text, latex)

    def _residual_sd(self) -> tuple[str, str]:
        """The residual SD of row i: sigma, sigma / sqrt(w[i]) with weights, times
        delta[g[i]] with residual groups (text, LaTeX)."""
        design = self.design
        text, tex = "sigma", r"\sigma"
        if design.residual is not None:
            g = design.residual.factor
            text, tex = f"sigma * delta[{g}[i]]", rf"\sigma \delta[{_tex_name(g)}[i]]"
        if design.weights is not None:
            text, tex = f"{text} / sqrt(w[i])", rf"{tex} / \sqrt{{w[i]}}"
        return text, tex

    def _residual_note(self) -> str:
        """What offset[i], w[i] and delta are (with the fit's ratios, when known)."""
        design, notes = self.design, []
        if design.offset is not None:
            terms = [f"offset({t})" for t in design.offset_terms]
            if design.offset_column is not None:
                terms.append(f"offset= {design.offset_column or 'values'}")
            notes.append(f"offset[i] the known {' + '.join(terms)} of row i")
        if design.weights is not None:
            notes.append("w[i] the weight of row i (lme4's precision weights)")
        res = design.residual
        if res is not None:
            ratio = self.sigma_ratio
            known = (
                ": "
                + ", ".join(
                    f"delta[{lv}] = {_num(r)}" for lv, r in zip(res.levels, ratio, strict=True)
                )
                if ratio is not None
                else f" (delta[{res.levels[0]}] = 1)"
            )
            notes.append(
                f"delta the residual SD of each level of {res.factor} over the first's{known}"
            )
        return "".join(f"; {n}" for n in notes)

    def _param(
        self, sym: str, tex: str, value: float | None, key: str, label: str | None = None
    ) -> tuple[str, str]:
        """``b0``, ``b0 = 251.4 for (Intercept)``, ``... (prior Normal(...))``: text, LaTeX."""
        text, latex = sym, f"${tex}$"
        if value is not None:
            text, latex = f"{sym} = {_num(value)}", f"${tex} = {_num(value)}$"
        if label is not None:
            text, latex = f"{text} for {label}", f"{latex} for `{label}`"
        prior = self.priors.get(key)
        if prior is not None:
            text, latex = f"{text} (prior {prior})", f"{latex} (prior {prior})"
        return text, latex


def _column_expr(column: str, frame: pd.DataFrame) -> tuple[str, str]:
    """A model-matrix column as data: ``Days[i]``, ``[Species[i] == versicolor]``, products."""
    texts, texes = [], []
    for part in column.split(":"):
        if part in frame.columns:
            texts.append(f"{part}[i]")
            texes.append(f"{_tex_name(part)}[i]")
            continue
        factor = next(
            (
                c
                for c in sorted(frame.columns, key=len, reverse=True)
                if part.startswith(c)
                and not pd.api.types.is_float_dtype(frame[c])
                and part[len(c) :] in {str(v) for v in frame[c].unique()}
            ),
            None,
        )
        if factor is None:
            texts.append(f"{part}[i]")
            texes.append(f"{_tex_name(part)}[i]")
        else:
            level = part[len(factor) :]
            texts.append(f"[{factor}[i] == {level}]")
            texes.append(rf"[{_tex_name(factor)}[i] = {_tex_name(level)}]")
    return " * ".join(texts), r" \cdot ".join(texes)

"""``blm.report``: one self-contained HTML file per fit, to hand over or print.

Sections (each a ``<section id=...>``): the model and data (``overview``), lme4's summary
(``reml``), the posterior summary and diagnostics with trace and rank plots
(``posterior``), REML beside the posterior (``compare``), the shrinkage table and picture
(``shrinkage``), the generative story (``story``), the priors used (``priors``) and the
versions and seed (``versions``).  Images are inline PNG (base64) and the style sheet is
inline: the file makes no network request, and it prints one section per block.
"""

from __future__ import annotations

import base64
import html
import io
import platform
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .compare import check_inputs, compare, shrinkage
from .errors import BayesLMMError
from .explain import explain

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .bayes.posterior import Posterior
    from .bayes.priors import Prior
    from .reml.fit import LmerFit

#: the packages whose versions the report lists
PACKAGES = ("bayeslmm", "numpy", "scipy", "pandas", "pymc", "arviz", "matplotlib", "nlopt")
#: section ids and titles, in the report's order
SECTIONS = {
    "overview": "Model and data",
    "reml": "REML fit (lme4's summary)",
    "posterior": "Posterior summary and diagnostics",
    "compare": "REML beside the posterior",
    "shrinkage": "Partial pooling: the shrinkage table and picture",
    "story": "The generative story",
    "priors": "Priors used",
    "versions": "Versions and seed",
}
#: each section's heading mark (colours no figure uses, so a screenshot can find them)
SECTION_COLORS = {
    "overview": "#b8860b",
    "reml": "#006d6f",
    "posterior": "#5b2a86",
    "compare": "#c2185b",
    "shrinkage": "#33691e",
    "story": "#0d47a1",
    "priors": "#e65100",
    "versions": "#4e342e",
}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222;
       line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 3px solid #1f77b4; padding-bottom: .2em; }
h2 { font-size: 1.25em; border-left: 10px solid #1f77b4; padding-left: .4em; margin-top: 1.6em; }
.wide { overflow-x: auto; }
pre.story { white-space: pre-wrap; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; font-size: .82em; }
table { border-collapse: collapse; font-size: .8em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eef3f8; }
img { max-width: 100%; height: auto; }
.note { color: #555; font-size: .9em; }
.warn { color: #a40000; font-weight: bold; }
nav a { margin-right: .8em; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  nav { display: none; }
  section { break-inside: avoid-page; }
  h2 { break-after: avoid; }
  img, table, pre { break-inside: avoid; }
  pre { white-space: pre-wrap; }
  .wide { overflow: visible; }
  table { font-size: 7pt; }
}
"""


def _png(fig: Figure, dpi: int = 72) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    table = pd.DataFrame(df).round(digits).to_html(border=0, na_rep="", escape=True)
    return f'<div class="wide">{table}</div>'


def _p(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def _overview(fit: LmerFit | None, posterior: Posterior | None, data_name: str | None) -> str:
    design = (fit if fit is not None else posterior).design  # type: ignore[union-attr]
    rows = {
        "formula": design.formula,
        "data": data_name or "(not named)",
        "observations": f"{design.nobs} ({design.n_dropped} rows dropped for missing values)",
        "groups": ", ".join(f"{k}: {v} levels" for k, v in design.ngroups.items()),
        "estimates": " and ".join(
            w for w, x in (("REML/ML", fit), ("posterior (NUTS)", posterior)) if x is not None
        ),
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    return _table(pd.DataFrame({"": list(rows.values())}, index=list(rows)))


def _posterior_section(posterior: Posterior | None) -> str:
    if posterior is None:
        return _p("No posterior was given: this report holds the REML fit only.")
    from .chain_plots import plot_chains

    d = posterior.diagnostics
    checks = pd.DataFrame(
        {
            "value": [d.divergences, d.max_r_hat, d.min_ess_bulk, d.min_ess_tail],
            "wanted": ["0", "< 1.01", "> 400", "> 400"],
        },
        index=["divergences", "largest R-hat", "smallest bulk ESS", "smallest tail ESS"],
    )
    good = d.divergences == 0 and d.max_r_hat < 1.01 and min(d.min_ess_bulk, d.min_ess_tail) > 400
    verdict = (
        _p("All checks pass.")
        if good
        else _p(
            "Some checks fail: run longer chains, raise target_accept, or reparameterise "
            "before trusting these numbers.",
            "warn",
        )
    )
    sampling = f"{d.chains} chains x {d.draws} draws, sampled in {d.sampling_time:.1f} s"
    return "".join(
        [
            _pre(posterior.summary()),
            _p(sampling),
            _table(checks),
            verdict,
            _png(plot_chains(posterior)),
        ]
    )


def _shrinkage_section(fit: LmerFit | None, posterior: Posterior | None) -> str:
    from .plots import plot_shrinkage

    design = (fit if fit is not None else posterior).design  # type: ignore[union-attr]
    parts = [_table(shrinkage(fit, posterior), 3)]
    for factor in design.group_factors:
        parts.append(_png(plot_shrinkage(fit, posterior, factor=factor)))
    return "".join(parts)


def _priors_section(posterior: Posterior | None, priors: Mapping[str, Prior]) -> str:
    note = (
        _p("The priors the posterior was sampled with.")
        if posterior is not None
        else _p("No posterior was sampled: the model's priors, as a posterior would use them.")
    )
    rows = pd.DataFrame(
        {"prior": [str(p) for p in priors.values()], "rule": [p.rule for p in priors.values()]},
        index=pd.Index(list(priors), name="parameter"),
    )
    return note + _table(rows)


def _versions(seed: int | None) -> str:
    rows = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            rows[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows[package] = "not installed"
    rows["seed"] = "not given" if seed is None else str(seed)
    return _table(pd.DataFrame({"": list(rows.values())}, index=list(rows)))


def report_html(
    fit: LmerFit | None,
    posterior: Posterior | None,
    *,
    seed: int | None = None,
    data_name: str | None = None,
    priors: Mapping[str, Prior] | None = None,
) -> str:
    """The report as one HTML string (see :func:`report`)."""
    design = check_inputs(fit, posterior)
    if posterior is not None:
        priors = posterior.priors
    elif priors is None:
        from .bayes.priors import resolve_priors

        priors = resolve_priors(design)
    story = explain(design, posterior if posterior is not None else fit, priors=priors)
    bodies = {
        "overview": _overview(fit, posterior, data_name),
        "reml": _pre(fit.summary()) if fit is not None else _p("No REML fit was given."),
        "posterior": _posterior_section(posterior),
        "compare": _table(compare(fit, posterior))
        if fit is not None and posterior is not None
        else _p("Needs both a REML fit and a posterior."),
        "shrinkage": _shrinkage_section(fit, posterior),
        "story": f'<pre class="story">{html.escape(str(story))}</pre>',
        "priors": _priors_section(posterior, priors),
        "versions": _versions(seed),
    }
    nav = " ".join(f'<a href="#{k}">{html.escape(v)}</a>' for k, v in SECTIONS.items())
    sections = "\n".join(
        f'<section id="{k}"><h2>{html.escape(SECTIONS[k])}</h2>\n{body}</section>'
        for k, body in bodies.items()
    )
    title = html.escape(f"bayeslmm report: {design.formula}")
    marks = "".join(f"#{k} h2 {{ border-left-color: {c}; }}\n" for k, c in SECTION_COLORS.items())
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}{marks}</style></head>\n"
        f"<body><h1>{title}</h1><nav>{nav}</nav>\n{sections}\n</body></html>\n"
    )


def report(
    fit: LmerFit | None,
    posterior: Posterior | None = None,
    path: str | Path = "report.html",
    *,
    seed: int | None = None,
    data_name: str | None = None,
    priors: Mapping[str, Prior] | None = None,
) -> Path:
    """Write one self-contained HTML report of a REML fit and/or a posterior to ``path``.

    It holds lme4's summary, the posterior summary and diagnostics (trace and rank plots),
    the side-by-side table, the shrinkage table and picture, the generative story with the
    model's names and numbers, the priors used, the package versions and ``seed`` (the
    seed the posterior was sampled with, when given).  Without a posterior the report lists
    ``priors`` (resolved, as ``Model``'s; the default priors if None), and the story
    carries them.  Returns the path written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise BayesLMMError(f"report path '{path}' must end in .html")
    text = report_html(fit, posterior, seed=seed, data_name=data_name, priors=priors)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BayesLMMError(f"cannot write the report to '{path}': {exc}") from None
    return path

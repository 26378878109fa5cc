"""Every name the package shares: PyMC variables and dims, parameter labels, interval labels.

PyMC variables of the model of a design (``idata.posterior``), for each term group ``g``
(``ReTerm.group``: "Subject", "Subject.1", "cask:batch") and its grouping factor ``f``::

    fixef     (fixef__term)              β on the original scale (xarray forbids a
                                         variable named like its own dimension)
    sigma     ()                         residual SD σ
    sd_g      (g__term)                  SDs τ_g of the term's columns
    corr_g    (g__term, g__term_bis)     correlation matrix Ω_g (terms with k >= 2)
    ranef_g   (f, g__term)               group effects b_g (level dim named by the factor)
    y         (obs)                      the observed response

and the sampler's free variables ``Intercept`` (the centred design's intercept), ``beta``
(dim ``slope``: the non-intercept fixed effects), ``z_g`` (non-centred), ``coef_g``
(hierarchically centred), ``chol_g`` (packed LKJ Cholesky factor).

Parameter labels (rows of :func:`~bayeslmm.compare`, keys of priors): ``fixef[Days]``,
``sd_Subject[Days]``, ``corr_Subject[(Intercept), Days]``, ``sigma``.

Interval columns: ``{kind}{percent}_lb`` / ``_ub`` with ``percent = format(100 p, "g")``:
``eti89_lb`` at p = 0.89, ``eti57_lb`` at 0.57, ``hdi99.9_ub`` at 0.999.  This is ArviZ
1.x's ``az.summary`` naming (``f"{kind}{int(p * 100)}_lb"``) wherever 100·p is a whole
number that floating point gets exactly (0.5, 0.89, 0.9, 0.94, 0.95, ...); where it is not,
ArviZ truncates (0.57 -> ``eti56``, 0.999 -> ``eti99``) and this rule keeps the percentage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

# -- PyMC variables and dims --------------------------------------------------------------

FIXEF = "fixef"
FIXEF_DIM = "fixef__term"
SIGMA = "sigma"
Y = "y"
OBS = "obs"
INTERCEPT = "Intercept"
BETA = "beta"
SLOPE = "slope"
#: the draw dimensions of every posterior variable
SAMPLE_DIMS = ("chain", "draw")


def sd(group: str) -> str:
    """SDs of term group ``group``'s columns (and the prior key of their block)."""
    return f"sd_{group}"


def corr(group: str) -> str:
    """Correlation matrix of term group ``group`` (and the key of its LKJ prior)."""
    return f"corr_{group}"


def ranef(group: str) -> str:
    """Group effects b of term group ``group``."""
    return f"ranef_{group}"


def z(group: str) -> str:
    """Standard-normal innovations of a non-centred term."""
    return f"z_{group}"


def coef(group: str) -> str:
    """β + b of a hierarchically centred term."""
    return f"coef_{group}"


def corr_chol(group: str) -> str:
    """Cholesky factor of a correlated term's correlation matrix (the LKJ variable)."""
    return f"corr_chol_{group}"


def term_dim(group: str) -> str:
    """Dimension of a term's columns."""
    return f"{group}__term"


def term_dim_bis(group: str) -> str:
    """Second dimension of a term's correlation matrix."""
    return f"{group}__term_bis"


# -- parameter labels -----------------------------------------------------------------------

#: ``varcorr``'s group label of the residual SD (R's ``as.data.frame(VarCorr())``)
RESIDUAL = "Residual"


def fixef_label(column: str) -> str:
    """``fixef[Days]``."""
    return f"{FIXEF}[{column}]"


def sd_label(group: str, column: str) -> str:
    """``sd_Subject[Days]``."""
    return f"{sd(group)}[{column}]"


def corr_label(group: str, var1: str, var2: str) -> str:
    """``corr_Subject[(Intercept), Days]``: ``var1``, ``var2`` in ``varcorr``'s order."""
    return f"{corr(group)}[{var1}, {var2}]"


@dataclass(frozen=True)
class Parameter:
    """One scalar parameter: its label and its ``varcorr`` key (``grp``, ``var1``, ``var2``).

    Fixed effects have ``grp`` None and ``var1`` the column; SDs ``var2`` None; the
    residual SD is ``("Residual", None, None)``.
    """

    label: str
    kind: Literal["fixef", "sd", "corr", "sigma"]
    grp: str | None
    var1: str | None
    var2: str | None


def parameters(
    fixef_names: Sequence[str], terms: Iterable[tuple[str, Sequence[str]]]
) -> list[Parameter]:
    """Every scalar parameter in the order shared by compare and ``varcorr``.

    Fixed effects, then per term (``(group, columns)`` in term order) its SDs and its
    correlations (lower triangle column-wise: ``var1`` the column, ``var2`` the row, as R's
    ``as.data.frame(VarCorr())``), then ``sigma``.
    """
    out = [Parameter(fixef_label(name), "fixef", None, name, None) for name in fixef_names]
    for group, cols in terms:
        out += [Parameter(sd_label(group, c), "sd", group, c, None) for c in cols]
        out += [
            Parameter(corr_label(group, cols[j], cols[i]), "corr", group, cols[j], cols[i])
            for j in range(len(cols))
            for i in range(j + 1, len(cols))
        ]
    out.append(Parameter(SIGMA, "sigma", RESIDUAL, None, None))
    return out


# -- intervals ----------------------------------------------------------------------------------

CIKind = Literal["eti", "hdi"]
CI_KINDS: tuple[CIKind, ...] = ("eti", "hdi")
#: ArviZ 1.x's defaults (``az.rcParams["stats.ci_kind"]``, ``["stats.ci_prob"]``)
DEFAULT_CI_KIND: CIKind = "eti"
DEFAULT_CI_PROB = 0.89


def ci_percent(prob: float) -> str:
    """The interval's probability in percent, as labels print it: 0.89 -> "89", 0.999 -> "99.9"."""
    return format(100 * prob, "g")


def ci_columns(kind: str, prob: float) -> tuple[str, str]:
    """Lower and upper bound columns: ``("eti89_lb", "eti89_ub")``."""
    label = f"{kind}{ci_percent(prob)}"
    return f"{label}_lb", f"{label}_ub"


def ci_legend(kind: str, prob: float) -> str:
    """The interval in a figure legend: "89% ETI"."""
    return f"{ci_percent(prob)}% {kind.upper()}"

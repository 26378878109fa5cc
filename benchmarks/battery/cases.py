"""The benchmark battery of issue 13, target 1: 20 textbook lme4 models.

8 cases are the lme4 references in ``shared/reference/lme4/`` (data from
``bayeslmm.load_dataset``); 12 more are of the same kinds, on simulated data
(``data/sim_*.csv``, written by ``make_sim_data.py`` with fixed seeds): 2 shapes of their
own and 10 models of textbook datasets (nlme::Orthodont, datasets::ChickWeight, ...) fitted
to simulated data of the same design, drawn from the case's model with parameters near the
original's estimates (see README.md).

Grouping columns are pandas Categoricals whose levels are sorted as R's ``factor()``
sorts them (numeric codes numerically), like ``bayeslmm.load_dataset``; fixed-effect
factors carry R's level order for the original dataset (so the contrasts, and the
fixed-effect names, are lme4's: e.g. Orthodont's ``SexFemale``).

Usage::

    from cases import CASES, CASE_BY_NAME
    case = CASE_BY_NAME["orthodont"]
    model = bayeslmm.Model(case.formula, case.load())
    fit = model.fit_reml(reml=case.reml)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


@dataclass(frozen=True)
class Case:
    """One battery model: an lme4 formula, a loader for its data, REML (True) or ML."""

    name: str
    formula: str
    load: Callable[[], pd.DataFrame]
    reml: bool = True
    note: str = ""
    #: "reference" (one of the 8 shared lme4 references) or "simulated"
    source: str = "simulated"
    #: the kinds of issue 13 this case stands for (free text, for the report)
    kind: str = ""


# --------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------


def _r_levels(values: pd.Series) -> list[str]:
    """R's ``factor()`` level order of a column: numeric codes numerically, else sorted."""
    uniq = pd.unique(values.dropna())
    try:
        return [str(v) for v in sorted(uniq, key=float)]
    except (TypeError, ValueError):
        return sorted(str(v) for v in uniq)


def _categorical(values: pd.Series, levels: Sequence[str] | None = None) -> pd.Categorical:
    levels = list(levels) if levels is not None else _r_levels(values)
    as_str = values.map(
        lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    )
    missing = set(as_str.unique()) - set(levels)
    if missing:
        raise ValueError(f"values {sorted(missing)} not among the levels {levels}")
    return pd.Categorical(as_str, categories=levels)


def _csv(
    file: str,
    factors: dict[str, Sequence[str] | None],
    drop: Sequence[str] = (),
    derived: dict[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
) -> pd.DataFrame:
    """Read ``data/<file>``; ``factors``: column -> R's levels (None: R's factor() order)."""
    df = pd.read_csv(DATA / file)
    df = df.drop(columns=[c for c in drop if c in df.columns])
    for col, levels in factors.items():
        df[col] = _categorical(df[col], levels)
    for col, fn in (derived or {}).items():
        df[col] = fn(df)
    return df


def _bundled(name: str) -> pd.DataFrame:
    import bayeslmm

    return bayeslmm.load_dataset(name)


# --------------------------------------------------------------------------------------
# the 20 cases
# --------------------------------------------------------------------------------------

_REFERENCES: tuple[Case, ...] = (
    Case(
        "dyestuff",
        "Yield ~ 1 + (1|Batch)",
        partial(_bundled, "dyestuff"),
        note="lme4::Dyestuff; 6 batches x 5; random intercept only",
        source="reference",
        kind="one-factor random intercept, few groups",
    ),
    Case(
        "iris_seed",
        "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)",
        partial(_bundled, "iris"),
        note="datasets::iris; 3 groups, correlated slope on an uncentred predictor",
        source="reference",
        kind="correlated slope, uncentred, 3 groups",
    ),
    Case(
        "pastes",
        "strength ~ 1 + (1|batch/cask)",
        partial(_bundled, "pastes"),
        note="lme4::Pastes; casks nested in batches",
        source="reference",
        kind="nested",
    ),
    Case(
        "penicillin",
        "diameter ~ 1 + (1|plate) + (1|sample)",
        partial(_bundled, "penicillin"),
        note="lme4::Penicillin; fully crossed 24 plates x 6 samples",
        source="reference",
        kind="crossed",
    ),
    Case(
        "ss_int",
        "Reaction ~ Days + (1|Subject)",
        partial(_bundled, "sleepstudy"),
        note="lme4::sleepstudy; random intercept",
        source="reference",
        kind="one-factor random intercept",
    ),
    Case(
        "ss_slope",
        "Reaction ~ Days + (Days|Subject)",
        partial(_bundled, "sleepstudy"),
        note="lme4::sleepstudy; correlated slope",
        source="reference",
        kind="correlated slope",
    ),
    Case(
        "ss_slope_ml",
        "Reaction ~ Days + (Days|Subject)",
        partial(_bundled, "sleepstudy"),
        reml=False,
        note="lme4::sleepstudy; correlated slope, compared with the ML fit",
        source="reference",
        kind="correlated slope (ML)",
    ),
    Case(
        "ss_uncorr",
        "Reaction ~ Days + (Days||Subject)",
        partial(_bundled, "sleepstudy"),
        note="lme4::sleepstudy; uncorrelated intercept and slope",
        source="reference",
        kind="uncorrelated (||)",
    ),
)

_MORE: tuple[Case, ...] = (
    Case(
        "orthodont",
        "distance ~ age + Sex + (age | Subject)",
        partial(_csv, "sim_orthodont.csv", {"Subject": None, "Sex": ["Male", "Female"]}),
        note="simulated with the shape of nlme::Orthodont; 27 children x 4 ages (8-14), age "
        "NOT centred: the intercept is at age 0, far from the data, so intercept and slope "
        "are strongly correlated",
        source="simulated",
        kind="correlated slope, uncentred predictor",
    ),
    Case(
        "chickweight",
        "weight ~ Time + Diet + (Time | Chick)",
        partial(_csv, "sim_chickweight.csv", {"Chick": None, "Diet": ["1", "2", "3", "4"]}),
        note="simulated with the shape of datasets::ChickWeight; 50 chicks, 2-12 weighings "
        "(unbalanced as the original: some chicks die), Time 0-21 days uncentred; "
        "by-chick correlation -0.98",
        source="simulated",
        kind="correlated slope, uncentred, unbalanced",
    ),
    Case(
        "dyestuff2",
        "Yield ~ 1 + (1 | Batch)",
        partial(_csv, "sim_dyestuff2.csv", {"Batch": None}),
        note="simulated with the shape of lme4::Dyestuff2; 6 batches x 5, no between-batch "
        "variation, and (like Box & Tiao's data) a between-batch variance estimate of zero: "
        "a singular fit (theta = 0)",
        source="simulated",
        kind="singular (boundary) variance",
    ),
    Case(
        "oats",
        "yield ~ nitro + Variety + (1 | Block/Variety)",
        partial(
            _csv,
            "sim_oats.csv",
            {"Block": None, "Variety": ["Golden Rain", "Marvellous", "Victory"]},
        ),
        note="simulated with the shape of nlme::Oats (Yates' split plot); Variety plots "
        "nested in 6 blocks, nitro numeric",
        source="simulated",
        kind="nested (split plot)",
    ),
    Case(
        "machines_nested",
        "score ~ Machine + (1 | Worker/Machine)",
        partial(_csv, "sim_machines.csv", {"Worker": None, "Machine": ["A", "B", "C"]}),
        note="simulated with the shape of nlme::Machines; 6 workers x 3 machines x 3 "
        "replicates; Worker:Machine interaction",
        source="simulated",
        kind="nested",
    ),
    Case(
        "machines_vector",
        "score ~ Machine + (0 + Machine | Worker)",
        partial(_csv, "sim_machines.csv", {"Worker": None, "Machine": ["A", "B", "C"]}),
        note="simulated with the shape of nlme::Machines (the data of machines_nested); "
        "vector-valued factor term: 3 SDs and a 3x3 correlation from only 6 workers",
        source="simulated",
        kind="vector-valued (0 + f | g), 3x3 correlation",
    ),
    Case(
        "cake",
        "angle ~ recipe * temperature + (1 | recipe:replicate)",
        partial(
            _csv,
            "sim_cake.csv",
            {
                "recipe": ["A", "B", "C"],
                "replicate": None,
                "temperature": ["175", "185", "195", "205", "215", "225"],
            },
        ),
        reml=False,
        note="simulated with the shape of lme4::cake, for lme4's help-page model fm1 "
        "(REML = FALSE); 18 fixed effects. In R temperature is an ordered factor "
        "(polynomial contrasts); here an unordered factor (treatment contrasts): the same "
        "model and fit, different fixed-effect coordinates",
        source="simulated",
        kind="many fixed effects, interaction grouping factor (ML)",
    ),
    Case(
        "ergostool",
        "effort ~ Type + (1 | Subject)",
        partial(_csv, "sim_ergostool.csv", {"Subject": None, "Type": ["T1", "T2", "T3", "T4"]}),
        note="simulated with the shape of nlme::ergoStool; randomized block, 9 subjects x 4 "
        "stool types",
        source="simulated",
        kind="one-factor random intercept with a fixed factor",
    ),
    Case(
        "bodyweight_uncorr",
        "weight ~ Time * Diet + (Time || Rat)",
        partial(_csv, "sim_bodyweight.csv", {"Rat": None, "Diet": ["1", "2", "3"]}),
        note="simulated with the shape of nlme::BodyWeight; 16 rats x 11 weighings, Time "
        "1-64 days uncentred; uncorrelated intercept and slope",
        source="simulated",
        kind="uncorrelated (||), uncentred predictor",
    ),
    Case(
        "oxboys_quad",
        "height ~ age + I(age^2) + (age + I(age^2) | Subject)",
        partial(_csv, "sim_oxboys.csv", {"Subject": None}, drop=("Occasion",)),
        note="simulated with the shape of nlme::Oxboys; 26 boys x 9 occasions, age centred "
        "(-1..1); quadratic growth with a 3-term correlated block (3 SDs, 3x3 correlation)",
        source="simulated",
        kind="3-term correlated block",
    ),
    Case(
        "sim_crossed",
        "rt ~ cond + (1 + cond | subject) + (1 | item)",
        partial(_csv, "sim_crossed.csv", {"subject": None, "item": None}),
        note="simulated (make_sim_data.py, seed 20240613): 30 subjects x 20 items fully "
        "crossed, correlated by-subject slope of a between-item condition",
        source="simulated",
        kind="crossed, with a correlated slope",
    ),
    Case(
        "sim_manygroups",
        "y ~ x + (1 | g)",
        partial(_csv, "sim_manygroups.csv", {"g": None}),
        note="simulated (make_sim_data.py, seed 20240614): 400 groups of 1-4 rows "
        "(singletons included), 992 rows",
        source="simulated",
        kind="many groups, few rows",
    ),
)

CASES: tuple[Case, ...] = _REFERENCES + _MORE
CASE_BY_NAME: dict[str, Case] = {c.name: c for c in CASES}
assert len(CASES) == 20 and len(CASE_BY_NAME) == 20

"""Largest deviations of REML inference from lme4 1.1-31 / lmerTest 3.1-3, as a Markdown table.

Run: ``python -m validation.inference_errors``.  Profile and Wald ends as a fraction of
lme4's interval width; Satterthwaite and Kenward–Roger df and p as relative errors (at
bayeslmm's REML optimum, and Satterthwaite's df also at lme4's θ̂, σ̂); anova χ² as an
absolute error.  The references: tests/reference/inference/lme4_inference.json (and lme4's
θ̂, σ̂ in tests/reference/<case>.json).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayeslmm as blm
from bayeslmm.reml.ddf import Marginal, satterthwaite_df
from bayeslmm.reml.dense import DenseDeviance

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "reference"
REF = json.loads((REFERENCE / "inference" / "lme4_inference.json").read_text())
CASES = ["ss_slope", "ss_int", "dyestuff", "penicillin", "pastes"]


def lme4_labels(design: blm.Design) -> dict[str, str]:
    """lme4's ``confint`` row names -> compare()'s labels."""
    out = {n: f"fixef[{n}]" for n in design.fixef_names}
    for t in design.terms:
        for i, ci in enumerate(t.cnames):
            out[f"sd_{ci}|{t.group}"] = f"sd_{t.group}[{ci}]"
            for j in range(i):
                out[f"cor_{ci}.{t.cnames[j]}|{t.group}"] = f"corr_{t.group}[{t.cnames[j]}, {ci}]"
    out["sigma"] = "sigma"
    return out


def _width_error(ci: pd.DataFrame, ref: dict, labels: dict[str, str]) -> float:
    errs = []
    for n, lo, hi in zip(ref["names"], ref["lower"], ref["upper"], strict=True):
        if lo == "NA":
            continue
        errs.append(np.max(np.abs(ci.loc[labels[n]].to_numpy() - [lo, hi])) / (hi - lo))
    return float(max(errs))


def _rel(a: object, b: object) -> float:
    x, y = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(x / y - 1)))


def main() -> None:
    print(
        "| case | profile (of width) | Wald (of width) | Satt. df | Satt. p "
        "| Satt. df at lme4's θ̂ | KR df | KR p |\n|---|---|---|---|---|---|---|---|"
    )
    for case in CASES:
        r = REF[case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = blm.lmer(r["formula"], blm.load_dataset(r["dataset"]))
        labels = lme4_labels(fit.design)
        sat, kr = fit.fixef_table(), fit.fixef_table("kenward-roger")
        lme4 = json.loads((REFERENCE / f"{case}.json").read_text())
        mg = Marginal(DenseDeviance(fit.design), np.asarray(lme4["theta"]))
        s = lme4["sigma"]
        df_at_lme4 = satterthwaite_df(mg, s, True, s**2 * mg.Minv)
        cells = [
            _width_error(fit.confint(), r["profile"], labels),
            _width_error(fit.confint("wald"), r["wald"], labels),
            _rel(sat["df"], r["satterthwaite"]["df"]),
            _rel(sat["p"], r["satterthwaite"]["p"]),
            _rel(df_at_lme4, r["satterthwaite"]["df"]),
            _rel(kr["df"], r["kenward_roger"]["df"]),
            _rel(kr["p"], r["kenward_roger"]["p"]),
        ]
        print(f"| {case} | " + " | ".join(f"{c:.1e}" for c in cells) + " |")
    errors = []
    for a in REF["anova"]:
        data = blm.load_dataset(a["dataset"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = blm.anova(blm.lmer(a["formula0"], data), blm.lmer(a["formula1"], data))
        errors.append(abs(table["Chisq"].iloc[1] - a["chisq"]))
    print(f"\nanova χ², largest absolute error: {max(errors):.1e}")


if __name__ == "__main__":
    main()

"""Coverage of the parametric-bootstrap percentile intervals (``fit.confint("boot")``).

Repeat ``nrep`` times on one fixed design: draw y from the model at known parameters, fit
it by REML, compute the 95 % bootstrap percentile interval of every parameter (``nsim``
refits) and its profile interval, and record whether each covers the truth.  A correct
95 % interval covers with probability 0.95, so over ``nrep`` data sets its coverage lies
within 0.95 ± 1.96·sqrt(0.95·0.05/nrep) with probability 0.95.

Designs (``--design``):

* ``intercept``: 30 groups x 8 rows, ``y ~ x + (1 | g)``, x ~ N(0, 1) drawn once,
  β = (1, 0.5), sd_g = 1, σ = 1;
* ``sleepstudy``: its 18 subjects x days 0..9, ``Reaction ~ Days + (Days | Subject)`` at
  lme4's REML estimates (β = (251.4, 10.47), sd = (24.74, 5.92), ρ = 0.066, σ = 25.59).

Run (writes ``validation/results/boot_coverage_<design>.{json,md}`` and prints the
table of docs/validation.md)::

    python -m validation.boot_coverage --design intercept --nrep 1000 --nsim 399 --seed 2026
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import bayeslmm as blm

RESULTS = Path(__file__).parent / "results"
LEVEL = 0.95
METHODS = ("boot", "profile")


@dataclass(frozen=True)
class Design:
    """A formula, a data frame (its response is replaced by each simulation) and the true
    parameter values, by compare()'s labels."""

    formula: str
    data: pd.DataFrame
    truth: dict[str, float]


def design(name: str, rng: np.random.Generator) -> Design:
    if name == "intercept":
        g = np.repeat(np.arange(30), 8)
        data = pd.DataFrame({"g": g.astype(str), "x": rng.standard_normal(len(g)), "y": 0.0})
        truth = {"fixef[(Intercept)]": 1.0, "fixef[x]": 0.5, "sd_g[(Intercept)]": 1.0, "sigma": 1.0}
        return Design("y ~ x + (1 | g)", data, truth)
    if name == "sleepstudy":
        truth = {
            "fixef[(Intercept)]": 251.405105,
            "fixef[Days]": 10.467286,
            "sd_Subject[(Intercept)]": 24.740448,
            "sd_Subject[Days]": 5.922133,
            "corr_Subject[(Intercept), Days]": 0.065551,
            "sigma": 25.591796,
        }
        return Design("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"), truth)
    raise SystemExit(f"unknown design {name!r}")


def simulate(d: Design, rng: np.random.Generator) -> np.ndarray:
    """y = Xβ + Zb + ε at the true parameters."""
    t = d.truth
    if "fixef[x]" in t:
        codes = d.data["g"].astype(int).to_numpy()
        b = rng.normal(0, t["sd_g[(Intercept)]"], size=codes.max() + 1)
        mean = t["fixef[(Intercept)]"] + t["fixef[x]"] * d.data["x"].to_numpy()
        return mean + b[codes] + rng.normal(0, t["sigma"], len(codes))
    sd0, sd1 = t["sd_Subject[(Intercept)]"], t["sd_Subject[Days]"]
    rho = t["corr_Subject[(Intercept), Days]"]
    cov = np.array([[sd0**2, rho * sd0 * sd1], [rho * sd0 * sd1, sd1**2]])
    codes = d.data["Subject"].cat.codes.to_numpy()
    b2 = rng.multivariate_normal(np.zeros(2), cov, size=codes.max() + 1)
    days = d.data["Days"].to_numpy()
    mean = t["fixef[(Intercept)]"] + t["fixef[Days]"] * days
    return mean + b2[codes, 0] + b2[codes, 1] * days + rng.normal(0, t["sigma"], len(days))


@dataclass(frozen=True)
class CoverageRun:
    """Coverage and median width of each method's intervals, per parameter."""

    design: str
    formula: str
    truth: dict[str, float]
    nrep: int
    nsim: int
    seed: int
    seconds: float
    coverage: dict[str, dict[str, float]]
    median_width: dict[str, dict[str, float]]

    def report(self) -> str:
        half = 1.96 * np.sqrt(LEVEL * (1 - LEVEL) / self.nrep)
        lines = [
            f"Design `{self.formula}` ({self.design}), {self.nrep} data sets x {self.nsim} "
            f"bootstrap refits, seed {self.seed}, {self.seconds:.0f} s.  Nominal {LEVEL:.2f}; "
            f"a correct interval's coverage lies in {LEVEL - half:.3f}-{LEVEL + half:.3f} "
            "with probability 0.95.",
            "",
            "| parameter | boot coverage | profile coverage | boot median width | "
            "profile median width |",
            "| --- | --- | --- | --- | --- |",
        ]
        for k in self.truth:
            cov, width = self.coverage, self.median_width
            lines.append(
                f"| {k} | {cov['boot'][k]:.3f} | {cov['profile'][k]:.3f} "
                f"| {width['boot'][k]:.4g} | {width['profile'][k]:.4g} |"
            )
        return "\n".join(lines)


def run(name: str, nrep: int, nsim: int, seed: int) -> CoverageRun:
    rng = np.random.default_rng(seed)
    d = design(name, rng)
    response = d.formula.split("~")[0].strip()
    labels = list(d.truth)
    truth = np.array([d.truth[k] for k in labels])
    hits = {m: np.zeros((nrep, len(labels)), dtype=bool) for m in METHODS}
    widths = {m: np.zeros((nrep, len(labels))) for m in METHODS}
    data = d.data.copy()
    start = time.perf_counter()
    for r in range(nrep):
        data[response] = simulate(d, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = blm.lmer(d.formula, data)
            cis = {
                "boot": fit.confint("boot", LEVEL, nsim=nsim, seed=rng, progress=False),
                "profile": fit.confint("profile", LEVEL),
            }
        for m, ci in cis.items():
            lo, hi = ci.loc[labels, "lower"].to_numpy(), ci.loc[labels, "upper"].to_numpy()
            hits[m][r] = (lo <= truth) & (truth <= hi)
            widths[m][r] = hi - lo
    return CoverageRun(
        design=name,
        formula=d.formula,
        truth=d.truth,
        nrep=nrep,
        nsim=nsim,
        seed=seed,
        seconds=time.perf_counter() - start,
        coverage={
            m: dict(zip(labels, h.mean(axis=0).tolist(), strict=True)) for m, h in hits.items()
        },
        median_width={
            m: dict(zip(labels, np.median(w, axis=0).tolist(), strict=True))
            for m, w in widths.items()
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--design", default="intercept", choices=["intercept", "sleepstudy"])
    ap.add_argument("--nrep", type=int, default=1000)
    ap.add_argument("--nsim", type=int, default=399)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    res = run(args.design, args.nrep, args.nsim, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"boot_coverage_{args.design}"
    stem.with_suffix(".json").write_text(json.dumps(asdict(res), indent=1))
    stem.with_suffix(".md").write_text(res.report() + "\n")
    print(res.report())


if __name__ == "__main__":
    main()

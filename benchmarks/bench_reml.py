"""Benchmark bayeslmm's REML/ML fits beside Python peers (run: python benchmarks/bench_reml.py).

Times the whole fit, formula processing included, for every bundled lme4 reference case and
a simulated InstEval-like crossed design (73,000 rows; ~2,972 students, ~1,128 instructors,
14 departments).  Tools run interleaved (one round = every tool once) and the table reports
medians over rounds, the ratio to bayeslmm, and each tool's criterion minus lme4's.

Peers: mixedlm (PyPI, lme4-style, Rust core) and statsmodels MixedLM (only for models with
one grouping factor, which it can express).  lme4's own times come from the references
(``fit_seconds_median``, lme4 1.1-31) and, for the crossed design, the measurement quoted in
docs/benchmarks.md; they were not taken in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import bayeslmm as blm

sys.path.insert(0, str(Path(__file__).parent))
from _report import replace_section
from _sim import simulate_insteval

REFERENCES = Path(__file__).parent.parent / "tests" / "reference"
CROSSED = "y ~ service + (1|s) + (1|d) + (1|dept)"
LME4_CROSSED_SECONDS = 20.0  # lme4 on the real InstEval model, same kind of 2-core machine


def _bayeslmm(formula, data, reml):
    fit = blm.lmer(formula, data, reml=reml)
    return fit.reml_criterion if reml else fit.deviance


def _mixedlm(formula, data, reml):
    import mixedlm

    fit = mixedlm.lmer(formula, data, REML=reml)
    crit = fit.REMLcrit if reml else fit.deviance
    return float(crit() if callable(crit) else crit)


def _statsmodels(formula, data, reml):
    """MixedLM for ``y ~ x + (r | g)`` with a single grouping factor; None otherwise."""
    import statsmodels.formula.api as smf

    for col in [c for c in data.columns if "." in c]:  # patsy cannot parse dotted names
        formula = formula.replace(col, col.replace(".", "_"))
        data = data.rename(columns={col: col.replace(".", "_")})
    bars = formula.split("(")[1:]
    if len(bars) != 1 or "||" in formula or "/" in formula or ":" in bars[0]:
        return None
    lhs, group = (s.strip() for s in bars[0].rstrip(") ").split("|"))
    fixed = formula.split("+ (")[0]
    re_formula = "1" if lhs in ("1", "1 ") else f"~{lhs}"
    model = smf.mixedlm(fixed, data, groups=data[group], re_formula=re_formula)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=reml)
    return -2.0 * fit.llf


TOOLS = {"bayeslmm": _bayeslmm, "mixedlm": _mixedlm, "statsmodels": _statsmodels}


def _cases(big: bool):
    for path in sorted(REFERENCES.glob("*.json")):
        ref = json.loads(path.read_text())
        crit = ref["reml_criterion"] if ref["REML"] else ref["deviance"]
        yield (
            ref["case"],
            ref["formula"],
            blm.load_dataset(ref["dataset"]),
            ref["REML"],
            crit,
            ref["fit_seconds_median"],
        )
    if big:
        yield "crossed 73k", CROSSED, simulate_insteval(), True, None, LME4_CROSSED_SECONDS


def run(repeats: int, big_repeats: int, big: bool) -> list[dict]:
    rows = []
    for name, formula, data, reml, lme4_crit, lme4_s in _cases(big):
        n_rep = big_repeats if name.startswith("crossed") else repeats
        times = {t: [] for t in TOOLS}
        crits = {}
        for tool, fn in TOOLS.items():  # warm-up (imports, first-call costs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crits[tool] = fn(formula, data, reml)
        for _ in range(n_rep):
            for tool, fn in TOOLS.items():
                if crits[tool] is None:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    fn(formula, data, reml)
                    times[tool].append(time.perf_counter() - t0)
        med = {t: statistics.median(v) if v else None for t, v in times.items()}
        ref_crit = lme4_crit if lme4_crit is not None else crits["bayeslmm"]
        rows.append(
            {
                "case": name,
                "nobs": len(data),
                "formula": formula + ("" if reml else " (ML)"),
                "repeats": n_rep,
                "lme4_s": lme4_s,
                "seconds": med,
                "crit_minus_lme4": {
                    t: None if c is None else c - ref_crit for t, c in crits.items()
                },
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def _line(row) -> str:
    s = row["seconds"]
    base = s["bayeslmm"]

    def timed(tool):
        return "n/a" if s[tool] is None else f"{s[tool]:.4f} ({s[tool] / base:.1f}x)"

    d = row["crit_minus_lme4"]
    return (
        f"| {row['case']} | {row['nobs']} | {base:.4f} | {timed('mixedlm')} "
        f"| {timed('statsmodels')} | {row['lme4_s']:.3f} ({row['lme4_s'] / base:.1f}x) "
        f"| {_fmt(d['bayeslmm'], '.1e')} | {_fmt(d['mixedlm'], '.1e')} "
        f"| {_fmt(d['statsmodels'], '.1e')} |"
    )


HEADER = (
    "| case | n | bayeslmm s | mixedlm s (ratio) | statsmodels s (ratio) | lme4 s (ratio)* "
    "| Δcrit bayeslmm | Δcrit mixedlm | Δcrit statsmodels |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


NOTES = """\
Timings are whole fits (formula processing included), medians over interleaved rounds (one
round = every tool once, after one warm-up fit each); the ratio is the tool's time over
bayeslmm's (> 1: bayeslmm is faster).  Δcrit is the tool's REML criterion (ML deviance for
`(ML)`) minus lme4's: negative means a better optimum than lme4's.  statsmodels MixedLM is
run only where it can express the model (one grouping factor, no `||`).

\\* lme4 1.1-31 times were not measured in this run: they are the references'
`fit_seconds_median` (tests/reference/*.json) and, for the crossed design, lme4 on the real
InstEval model on the same kind of 2-core machine (20 s; mixedlm took 2.8 s there).
The crossed design is simulated (benchmarks/_sim.py: 73,000 rows, 2,972 students, 1,128
instructors nested in 14 departments, binary service; lme4's InstEval variance components);
its Δcrit is relative to bayeslmm.  The interleaving keeps the ratios fair when other jobs
share the machine; the load averages in the header say how busy it was.
"""


def write_section(path: Path, rows: list[dict], header: str) -> None:
    """Replace (or append) the REML section of docs/benchmarks.md, between markers."""
    replace_section(
        path,
        "REML",
        [
            "## REML / ML: `bayeslmm.lmer` vs mixedlm, statsmodels and lme4",
            "",
            header,
            "",
            HEADER,
            *[_line(r) for r in rows],
            "",
            NOTES,
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--big-repeats", type=int, default=3)
    parser.add_argument("--no-big", action="store_true", help="skip the 73k crossed design")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--write", type=Path, help="update the REML section of this markdown")
    args = parser.parse_args()
    import mixedlm
    import statsmodels

    header = (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on a 2-core machine "
        f"({platform.machine()}, shared), `python benchmarks/bench_reml.py --repeats "
        f"{args.repeats} --big-repeats {args.big_repeats}`; Python "
        f"{platform.python_version()}, numpy {np.__version__}, bayeslmm {blm.__version__}, "
        f"mixedlm {mixedlm.__version__}, statsmodels {statsmodels.__version__}."
    )
    print(header + "\n")
    print(HEADER)
    load_before = os.getloadavg()[0]
    rows = run(args.repeats, args.big_repeats, not args.no_big)
    header += (
        f" 1-minute load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after"
        " the run (the benchmark itself adds about 1)."
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.write:
        write_section(args.write, rows, header)


if __name__ == "__main__":
    main()

"""The 20-model battery of issue 13, target 1 (run: python benchmarks/bench_battery.py).

Each case of ``benchmarks/battery/cases.py`` (8 lme4 references and 12 textbook models of
the same kinds) is fitted as a new user fits it: ``Model(formula, data)``, ``fit_reml()``,
then ``model.sample(seed=1)`` (``--seed``) with every default (4 chains x 1000 draws after
1000 tune).
A case passes when its posterior has 0 divergences, R-hat <= 1.01 and bulk ESS >= 400 over
every parameter and every ranef (``post.diagnostics``), and every fixed effect's posterior
mean lies within one posterior SD of REML's (ML's where lme4's reference fit is ML).

By default all cases run in this one process, one after the other (the "20 fits together"
of the target: imports and compiled code are loaded once); ``--fresh`` runs each in a new
process (imports and compile-cache loading paid per case).  Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "battery"))
from cases import CASE_BY_NAME, CASES

MAX_R_HAT, MIN_ESS, MAX_STD_DIFF = 1.01, 400.0, 1.0
MAX_TOTAL_S = 150.0

HEADER = (
    "| case | kind | rows | parameterisation | sample s | sampling s | divergences "
    "| max R-hat | min ESS bulk | worst \\|mean − REML\\|/SD | pass |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def run_case(name: str, seed: int = 1) -> dict:
    """Fit one case (``model.sample(seed=seed)``); its timings and target-1 checks."""
    import bayeslmm as blm

    case = CASE_BY_NAME[name]
    data = case.load()
    model = blm.Model(case.formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit_reml(reml=case.reml)
        t0 = time.perf_counter()
        post = model.sample(seed=seed, progressbar=False)
        wall = time.perf_counter() - t0
    d = post.diagnostics
    summary = post.fixef
    std_diff = ((summary["mean"] - fit.fixef) / summary["sd"]).abs()
    ok = (
        d.divergences == 0
        and d.max_r_hat <= MAX_R_HAT
        and d.min_ess_bulk >= MIN_ESS
        and float(std_diff.max()) <= MAX_STD_DIFF
    )
    return {
        "case": name,
        "kind": case.kind,
        "rows": len(data),
        "parameterisation": ", ".join(f"{g}: {p}" for g, p in post.parameterization.items()),
        "sample_s": wall,
        "sampling_s": d.sampling_time,
        "divergences": d.divergences,
        "max_r_hat": d.max_r_hat,
        "min_ess_bulk": d.min_ess_bulk,
        "std_diff": float(std_diff.max()),
        "pass": ok,
    }


def run_fresh(name: str, seed: int) -> dict:
    """:func:`run_case` in a new Python process."""
    code = (
        f"import bench_battery, json; print(json.dumps(bench_battery.run_case({name!r}, {seed})))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(r: dict) -> str:
    return (
        f"| {r['case']} | {r['kind'].replace('|', '\\|')} | {r['rows']} | {r['parameterisation']} "
        f"| {r['sample_s']:.1f} | {r['sampling_s']:.1f} | {r['divergences']} "
        f"| {r['max_r_hat']:.3f} | {r['min_ess_bulk']:.0f} | {r['std_diff']:.2f} "
        f"| {'yes' if r['pass'] else '**no**'} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", help="comma-separated case names (default: all 20)")
    p.add_argument("--fresh", action="store_true", help="each case in a new process")
    p.add_argument("--seed", type=int, default=1, help="model.sample(seed=...)")
    args = p.parse_args()
    names = args.cases.split(",") if args.cases else [c.name for c in CASES]
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, "
        f"{'fresh process per case' if args.fresh else 'one process'}, seed {args.seed}"
        f"\n\n{HEADER}",
        flush=True,
    )
    t0 = time.perf_counter()
    rows = []
    for name in names:
        rows.append(run_fresh(name, args.seed) if args.fresh else run_case(name, args.seed))
        print(row(rows[-1]), flush=True)
    total = sum(r["sample_s"] for r in rows)
    passed = sum(r["pass"] for r in rows)
    print(
        f"\n{passed} of {len(rows)} pass; model.sample total {total:.1f} s "
        f"(target <= {MAX_TOTAL_S:.0f} s for 20), wall {time.perf_counter() - t0:.1f} s; "
        f"load at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

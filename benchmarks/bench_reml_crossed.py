"""REML of crossed and nested designs (issue 20): this package against an earlier one.

Run: ``python benchmarks/bench_reml_crossed.py [--baseline DIR] [--write docs/benchmarks.md]``.

Cases (simulated, deterministic seeds: ``_sim_crossed.py``, ``_sim.py``): the KB07-shaped
reduced and maximal models (56 subjects x 32 items), the InstEval shape (73,000 rows),
``rt ~ cond + (1 + cond | subj) + (1 + cond | item)`` at 40 x 40, 100 x 100 and 200 x 100,
and ``y ~ 1 + (1 | a) + (1 | a:b)`` with 300 x 4 levels.  ``--kb07 PATH`` and
``--insteval PATH`` add the real data sets (CSV or Arrow files with lme4's column names;
they are not bundled: InstEval is GPL (lme4), KB07 is Kronmüller & Barr's).

Each case is fitted once to warm up, then ``--repeats`` times (median).  ``--baseline DIR``
names a directory holding an earlier ``bayeslmm`` package (e.g. ``git archive <commit>
bayeslmm | tar -x -C DIR``): the same fits run there in a subprocess, with the same
repeats and a time limit, for the ratio and the criterion difference.  lme4 and
MixedModels.jl were not run (no R or Julia here); their figures are quoted from issue 20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _report import replace_section
from _sim import simulate_insteval
from _sim_crossed import (
    INSTEVAL,
    KB07_MAXIMAL,
    KB07_REDUCED,
    NESTED,
    TWO_CONDITION,
    simulate_kb07,
    simulate_nested,
    simulate_two_condition,
)

#: name -> (formula, data maker, figures quoted from issue 20 for lme4 / the old fit)
CASES = {
    "KB07-shaped reduced": (KB07_REDUCED, simulate_kb07, "lme4 5.0 s"),
    "KB07-shaped maximal": (KB07_MAXIMAL, simulate_kb07, "lme4 438 s; old > 600 s"),
    "InstEval-shaped": (INSTEVAL, simulate_insteval, "MixedModels.jl ~1-2 s"),
    "2-condition 40 x 40": (TWO_CONDITION, lambda: simulate_two_condition(40, 40), ""),
    "2-condition 100 x 100": (TWO_CONDITION, lambda: simulate_two_condition(100, 100), ""),
    "2-condition 200 x 100": (TWO_CONDITION, lambda: simulate_two_condition(200, 100), ""),
    "nested 300 x 4": (NESTED, simulate_nested, ""),
}

_CHILD = """
import json, statistics, sys, time, warnings
import pandas as pd
import bayeslmm as blm
warnings.simplefilter("ignore")
formula, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = pd.read_pickle(path)
times, cpu = [], []
for i in range(repeats + 1):
    t0, c0 = time.perf_counter(), time.process_time()
    fit = blm.lmer(formula, data)
    if i:
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
print(json.dumps({"seconds": statistics.median(times), "crit": fit.reml_criterion,
                  "cpu": statistics.median(cpu),
                  "evals": fit.optinfo["n_evals"], "file": blm.__file__}))
"""


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".arrow":
        import pyarrow.feather as feather

        return feather.read_table(path).to_pandas()
    return pd.read_csv(path)


def time_fit(formula: str, data: pd.DataFrame, repeats: int) -> dict:
    """Median seconds over ``repeats`` whole fits (after one warm-up), criterion, evals."""
    import bayeslmm as blm

    times, cpu = [], []
    for i in range(repeats + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            fit = blm.lmer(formula, data)
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return {
        "seconds": statistics.median(times),
        "cpu": statistics.median(cpu),
        "crit": fit.reml_criterion,
        "evals": fit.optinfo["n_evals"],
        "optimizer": fit.optinfo["optimizer"].split(" ")[0],
        "singular": fit.is_singular,
    }


def time_baseline(
    baseline: Path, formula: str, data: pd.DataFrame, repeats: int, limit: float
) -> dict | None:
    """The same fits with the package in ``baseline`` (subprocess); None past ``limit`` s."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_crossed_{os.getpid()}.pkl"
    data.to_pickle(path)
    env = dict(os.environ, PYTHONPATH=str(baseline))
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, formula, str(path), str(repeats)],
            capture_output=True, text=True, env=env, timeout=limit, check=True, cwd=baseline,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    finally:
        path.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


HEADER = (
    "| case | rows | θ | wall s (median) | CPU s | evals | optimizer | singular "
    "| earlier wall s (ratio) | earlier CPU s (ratio) | Δcrit vs earlier | quoted |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


NOTES = """\
Whole `blm.lmer` fits (formula processing included), medians over the repeats after one
warm-up fit; "earlier" is the package before issue 20 (commit 245b50c, `--baseline`) run
in a subprocess right after, with the same repeats: the ratio is earlier / now, Δcrit is the
REML criterion now minus earlier (negative: a better optimum).  The machine was shared with
other jobs (load averages above): wall times are inflated by the load (2-5x), so the CPU
time of the fitting process is given beside them; fits run one BLAS thread, so CPU time
is close to what an idle machine's wall time would be.  lme4 and MixedModels.jl
were not run here (no R or Julia); their figures are those quoted in issue 20 (lme4 on this
machine: 5.0 s reduced, 438 s maximal; InstEval 2.5-3.4 s before, MixedModels.jl about
1-2 s).  The KB07-shaped maximal model was not rerun on the earlier package (over 10
minutes in issue 20); lme4's BOBYQA path on the new objective needed 5,563 evaluations
(90 s at load 4-5) and ended 0.018 above the criterion BFGS reaches (the slow test in
`tests/test_reml_crossed.py` checks BFGS's is no worse).

Two factorisations, chosen by the coupling of the terms (`reml.crossed.dense_coupling`):

* **Dense coupling (crossed designs: KB07, 2-condition).** MixedModels.jl's blocked
  Cholesky with typed blocks: per-level k x k Choleskys of term 1, K = Λ₂ᵀA₂₁Λ₁L₁⁻ᵀ by one
  batched product, `syrk` + `potrf` for block 2, and the exact gradient of the profiled
  criterion from the same factor (`reml/crossed.py`: the level-diagonal blocks of Ω⁻¹ΛᵀA
  need S⁻¹ by `potri` and one product S⁻¹K).  BFGS starts from a scaled identity and stops
  at max|∇| ≤ 1e-4, so 20-72 θ cost 68-157 evaluations (a finite-difference Hessian start
  cost 350; BOBYQA 890 on the reduced and 5,563 on the maximal model).  Per evaluation on
  the maximal model (q₂ = 256, q₁ = 448): the objective about 3.7 ms (syrk 1.1, A₂₁Λ₁L₁⁻ᵀ
  0.9, Λ₂ scaling 0.8, potrf 0.4), the gradient adds about 5 ms (potri 1.6, S⁻¹K 1.6,
  Λ₂ᵀA₂₁ 0.9); Python overhead is most of the reduced model's 1.6 ms.
* **Sparse pairs (nested, InstEval).** The products of A₂₁'s non-zeros that meet in one
  level of term 1 (as before), now with the exact gradient where block 2 holds scalar terms
  (`reml/pairs.py`: Pᵀ on S⁻¹'s entries at the pairs).  BFGS from a finite-difference
  Hessian needs 12 evaluations where BOBYQA needed 110 (InstEval) or 46 (nested).  On the
  InstEval shape (q₂ = 1,142 dense) an evaluation is potrf (about 25-35 ms here) and potri
  (45-65 ms) plus about 30 ms of pair sums; the rest of the fit is the design (0.23 s,
  mostly the rank check of X), the pairs' set-up (0.16-0.4 s) and the solution.
  Two BLAS threads would halve potrf/potri on an idle machine but made them 3-20x slower
  on this shared one, so fits keep one thread.  InstEval's Δcrit of 3e-8 (1e-13 relative)
  is where BFGS stops; the tests accept 1e-6.

The real KB07 and InstEval data could not be fetched here (MixedModelsDatasets.jl keeps
them on OSF, out of reach); `--kb07 PATH` and `--insteval PATH` time them where a user
has them (they are not bundled: InstEval is GPL, from lme4).
"""


def _line(row: dict) -> str:
    new, old = row["new"], row["old"]
    if old is None:
        earlier, earlier_cpu, delta = row["old_note"], "n/a", "n/a"
    else:
        earlier = f"{old['seconds']:.3f} ({old['seconds'] / new['seconds']:.1f}x)"
        earlier_cpu = f"{old['cpu']:.3f} ({old['cpu'] / new['cpu']:.1f}x)"
        delta = f"{new['crit'] - old['crit']:.1e}"
    return (
        f"| {row['case']} | {row['rows']} | {row['ntheta']} | {new['seconds']:.3f} "
        f"| {new['cpu']:.3f} | {new['evals']} | {new['optimizer']} "
        f"| {'yes' if new['singular'] else 'no'} | {earlier} | {earlier_cpu} | {delta} "
        f"| {row['quoted']} |"
    )


def run(args: argparse.Namespace) -> list[dict]:
    import bayeslmm as blm

    cases = dict(CASES)
    if args.kb07:
        data = _read(args.kb07)
        for name, f in (("KB07 reduced", KB07_REDUCED), ("KB07 maximal", KB07_MAXIMAL)):
            cases[name] = (f.replace("rt ~", "rt_trunc ~"), lambda d=data: d, "real data")
    if args.insteval:
        data = _read(args.insteval)
        cases["InstEval"] = (INSTEVAL, lambda d=data: d, "real data")
    rows = []
    for name, (formula, make, quoted) in cases.items():
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        data = make()
        ntheta = len(blm.Model(formula, data).design.theta_start)
        new = time_fit(formula, data, args.repeats)
        old, note = None, "not run"
        if args.baseline is not None:
            if "maximal" in name and not args.baseline_maximal:
                note = "not run (issue 20: > 600 s)"
            else:
                old = time_baseline(args.baseline, formula, data, args.repeats, args.limit)
                note = f"> {args.limit:.0f} s" if old is None else note
        row = {"case": name, "rows": len(data), "ntheta": ntheta, "new": new, "old": old}
        rows.append({**row, "old_note": note, "quoted": quoted})
        print(_line(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="directory holding an earlier bayeslmm")
    parser.add_argument("--baseline-maximal", action="store_true")
    parser.add_argument("--limit", type=float, default=300.0, help="baseline seconds per case")
    parser.add_argument("--kb07", type=Path, help="the real kb07 data (CSV or Arrow)")
    parser.add_argument("--insteval", type=Path, help="the real InstEval data (CSV or Arrow)")
    parser.add_argument("--only", nargs="*", help="cases whose names contain these")
    parser.add_argument("--write", type=Path, help="update this markdown's section")
    args = parser.parse_args()
    import bayeslmm as blm

    header = (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on a shared 2-core "
        f"{platform.machine()} machine, `python benchmarks/bench_reml_crossed.py --repeats "
        f"{args.repeats}{' --baseline DIR' if args.baseline else ''}`; Python "
        f"{platform.python_version()}, numpy {np.__version__}, bayeslmm {blm.__version__}; "
        f"1-minute load average {os.getloadavg()[0]:.2f} at the start"
    )
    print(header + "\n\n" + HEADER)
    rows = run(args)
    header += f" and {os.getloadavg()[0]:.2f} at the end."
    if args.write:
        replace_section(
            args.write,
            "REML-crossed",
            ["## REML of crossed and nested designs (issue 20)", "", header, "", HEADER]
            + [_line(r) for r in rows]
            + ["", NOTES],
        )


if __name__ == "__main__":
    main()

"""Scaling of REML and NUTS time with rows and groups (run: python benchmarks/bench_scaling.py).

Model ``y ~ 1 + x + (1 + x | g)`` on simulated data (benchmarks/_sim.py: simulate_slopes).
REML: the whole ``bayeslmm.lmer`` fit (formula processing included) beside mixedlm in the same
run, interleaved, median over repeats (fewer repeats for the biggest cases); the "design" column
is ``Model(formula, data)`` alone (formula parsing + design building).  NUTS: one
``model.sample(seed=1)`` per case with the package defaults (4 chains x (1000 tune + 1000
draws), the marginalised compiled sampler; ``--sampler pymc`` or ``nutpie`` for PyMC's
samplers on the same model), after a warm-up fit that loads the compiled code: "chains" is
the sampler's own timer, "rest" the start (mode, Laplace metric), the exact draws of β and b
and the diagnostics of every parameter and ranef.  The issue-13 targets are two extra rows:
1e6 rows x 200 groups and 1e5 rows x 1e4 groups.  ``--crossed``: NUTS on fully crossed
``rt ~ cond + (1 + cond | subject) + (1 | item)`` designs (simulate_crossed) instead, the
"groups" column then giving subjects x items.  Prints markdown tables; ``--quick`` shrinks
the grids.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import bayeslmm as blm

sys.path.insert(0, str(Path(__file__).parent))
from _sim import simulate_crossed, simulate_slopes

FORMULA = "y ~ 1 + x + (1 + x | g)"
CROSSED_FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"
#: (subjects, items), parameterization: auto, then the latent forms at 100 x 100
CROSSED_CASES = [
    ((30, 20), "auto"),
    ((60, 40), "auto"),
    ((100, 100), "auto"),
    ((100, 100), "noncentered"),
    ((100, 100), "centered"),
]


def _mixedlm(data):
    import mixedlm

    return mixedlm.lmer(FORMULA, data, REML=True)


def _timed(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t0, out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reml_case(n, groups, repeats):
    data = simulate_slopes(n, groups)
    _timed(blm.lmer, FORMULA, data)  # warm-up
    _timed(_mixedlm, data)
    t = {"design": [], "bayeslmm": [], "mixedlm": []}
    for _ in range(repeats):
        t["design"].append(_timed(blm.Model, FORMULA, data)[0])
        t["bayeslmm"].append(_timed(blm.lmer, FORMULA, data)[0])
        t["mixedlm"].append(_timed(_mixedlm, data)[0])
    med = {k: statistics.median(v) for k, v in t.items()}
    b, m = med["bayeslmm"], med["mixedlm"]
    return (
        f"| {n:,} | {groups:,} | {repeats} | {med['design']:.3f} | {b:.3f} "
        f"| {m:.3f} ({m / b:.1f}x) | {_rss_mb():.0f} |"
    )


REML_HEADER = (
    "| rows | groups | repeats | design s | bayeslmm fit s | mixedlm s (ratio) | peak RSS MB |\n"
    "|---|---|---|---|---|---|---|"
)


def nuts_case(n, groups, args, crossed=None, parameterization="auto"):
    """One NUTS row: ``y ~ 1 + x + (1 + x | g)`` on n rows and ``groups`` groups, or with
    ``crossed=(subjects, items)`` the fully crossed ``CROSSED_FORMULA``."""
    if crossed is None:
        formula, data = FORMULA, simulate_slopes(n, groups)
    else:
        formula, data = CROSSED_FORMULA, simulate_crossed(*crossed)
        n, groups = len(data), crossed[0] * crossed[1]
    design_s, model = _timed(blm.Model, formula, data)
    wall, post = _timed(
        lambda: model.sample(
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            seed=1,
            nuts_sampler=args.sampler,
            parameterization=parameterization,
        )
    )
    d = post.diagnostics
    sampling = d.sampling_time
    if sampling != sampling:
        sampling = float(post.idata["sample_stats"].attrs.get("sampling_time", float("nan")))
    param = ", ".join(f"{g}: {p}" for g, p in post.parameterization.items())
    size = f"{groups:,}" if crossed is None else f"{crossed[0]} x {crossed[1]}"
    return (
        f"| {n:,} | {size} | {param} | {design_s:.1f} | {wall:.1f} | {sampling:.1f} "
        f"| {wall - sampling:.1f} "
        f"| {d.divergences} | {d.max_r_hat:.3f} | {d.min_ess_bulk:.0f} "
        f"| {d.min_ess_bulk / wall:.0f} | {_rss_mb():.0f} |"
    )


NUTS_HEADER = (
    "| rows | groups | parameterisation | Model s | sample s | chains s | rest s | divergences "
    "| max r_hat | min ESS bulk (incl. ranef) | ESS/s (sample) | peak RSS MB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _grid(rows, groups, fixed_groups, fixed_rows):
    cases = [(n, fixed_groups) for n in rows] + [(fixed_rows, g) for g in groups]
    return list(dict.fromkeys(cases))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small grids (smoke test)")
    p.add_argument("--repeats", type=int, default=5, help="REML repeats (rows <= 1e4)")
    p.add_argument("--big-repeats", type=int, default=2, help="REML repeats (rows > 1e4)")
    p.add_argument("--skip-reml", action="store_true")
    p.add_argument("--skip-nuts", action="store_true")
    p.add_argument("--nuts-max-rows", type=int, default=1_000_000)
    p.add_argument("--nuts-max-groups", type=int, default=10_000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--sampler", default=None, choices=["bayeslmm", "pymc", "nutpie"])
    p.add_argument(
        "--crossed",
        action="store_true",
        help="NUTS on fully crossed subjects x items designs instead (auto, and the latent "
        "forms at 100 x 100)",
    )
    args = p.parse_args()
    if args.quick:
        rows, groups, fixed_rows = [1_000, 10_000], [10, 100], 10_000
    else:
        rows, groups, fixed_rows = (
            [1_000, 10_000, 100_000, 1_000_000],
            [10, 100, 1_000, 10_000],
            100_000,
        )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, "
        f"python {platform.python_version()}",
        flush=True,
    )
    if not args.skip_reml:
        print("\n" + REML_HEADER, flush=True)
        for n, g in _grid(rows, groups, 100, fixed_rows):
            rep = args.repeats if n <= 10_000 else args.big_repeats
            print(reml_case(n, g, rep), flush=True)
    if not args.skip_nuts:
        print(
            f"\nNUTS ({args.sampler or 'default sampler'}, {args.chains} chains x "
            f"({args.tune} tune + {args.draws} draws))\n\n" + NUTS_HEADER,
            flush=True,
        )
        nuts_case(1_000, 10, args)  # warm-up: load the compiled code
        if args.crossed:
            for size, form in CROSSED_CASES:
                print(nuts_case(0, 0, args, crossed=size, parameterization=form), flush=True)
            print(f"\n# load at end {os.getloadavg()[0]:.2f}", flush=True)
            return
        nrows = [n for n in rows if n <= args.nuts_max_rows]
        ngroups = [g for g in groups if g <= args.nuts_max_groups]
        cases = _grid(nrows, ngroups, 100, min(fixed_rows, args.nuts_max_rows))
        if not args.quick:
            cases += [(1_000_000, 200), (100_000, 10_000)]
        for n, g in list(dict.fromkeys(cases)):
            print(nuts_case(n, g, args), flush=True)
    print(f"\n# load at end {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()

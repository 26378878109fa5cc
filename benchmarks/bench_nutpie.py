"""Whose NUTS? nutpie (PyMC's Rust sampler) against the package's compiled NUTS, both on the
package's own marginal kernels (issue 19).  Run: python benchmarks/bench_nutpie.py.

Each sampler draws θ only (the parameters NUTS moves; the exact draws of b afterwards are
the same for both and left out), 4 chains x 1000 draws after 1000 tune, from the same
starts (``marginal.initial_points``):

* ``bayeslmm``: :func:`bayeslmm.bayes.nuts.runner.run_chains` from the Laplace metric;
* ``nutpie``: ``nutpie.compiled_pyfunc.from_pyfunc`` around the compiled kernel (a Python
  callback per gradient: nutpie's C entry needs the data behind a void pointer, which the
  kernels' NamedTuples are not), nutpie's defaults (diagonal mass matrix adaptation).

Time (warm: caches loaded, second call in the process), min bulk ESS over θ (the package's
``diagnose``), ESS/s, divergences and gradient evaluations per draw.  ``--cold`` times the
first call in this (fresh) process: run it with an empty ``NUMBA_CACHE_DIR`` and
``--sampler`` (one sampler per process, so that neither inherits the other's compiled
kernel).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "battery"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DRAWS, TUNE, CHAINS = 1000, 1000, 4


def _model(name: str):
    import bayeslmm as blm

    if name == "large":  # 1e5 rows x 1e4 groups, (1 + x | g)
        from _sim import simulate_slopes

        return blm.Model("y ~ 1 + x + (1 + x | g)", simulate_slopes(100_000, 10_000))
    from cases import CASE_BY_NAME

    case = CASE_BY_NAME[name]
    return blm.Model(case.formula, case.load())


def _kernel(data):
    from bayeslmm.bayes import compiled as nb

    return {
        nb.OneFactor: nb.logp_grad_one_factor,
        nb.OneFactorFixef: nb.logp_grad_one_factor_fixef,
        nb.KernelData: nb.logp_grad,
    }[type(data)]


def run_ours(mm, start, seed):
    from bayeslmm.bayes.nuts.runner import run_chains

    run = run_chains(
        mm.data, start.points, start.metric, draws=DRAWS, tune=TUNE, seed=seed,
        target_accept=0.8, cores=2,
    )  # fmt: skip
    s = run.stats[:, TUNE:]
    return run.theta, int(s["diverging"].sum()), float(s["n_steps"].mean())


def run_nutpie(mm, start, seed):
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    kernel, data, dim = _kernel(mm.data), mm.data, mm.dim

    def make_logp_fn():
        grad = np.empty(dim)

        def logp(x, **_):
            lp = kernel(x, data, grad)
            return lp, grad.copy()

        return logp

    def make_expand_fn(*_args, **_kwargs):
        return lambda x, **_: {"theta": x}

    points = iter(np.tile(start.points, (8, 1)))
    model = from_pyfunc(
        dim, make_logp_fn, make_expand_fn, [np.dtype("float64")], [(dim,)], ["theta"],
        make_initial_point_fn=lambda _seed: next(points).copy(),
    )  # fmt: skip
    trace = nutpie.sample(
        model, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=seed, cores=2, progress_bar=False
    )
    theta = trace["posterior"]["theta"].transpose("chain", "draw", ...).to_numpy()
    stats = trace["sample_stats"]
    return theta, int(stats["diverging"].sum()), float(stats["n_steps"].mean())


def measure(name: str, sampler: str, seed: int = 1, repeat: int = 2) -> dict:
    from bayeslmm.bayes import marginal
    from bayeslmm.bayes.summary import diagnose

    model = _model(name)
    mm = marginal.build(model.design, model._priors())
    start = marginal.initial_points(mm, CHAINS, np.random.default_rng(seed))
    fn = run_ours if sampler == "bayeslmm" else run_nutpie
    times = []
    from threadpoolctl import threadpool_limits

    for _ in range(repeat):  # the first call compiles (cold), the last one is warm
        t0 = time.perf_counter()
        with threadpool_limits(limits=1):  # as model.sample runs: chains in threads
            theta, div, steps = fn(mm, start, seed)
        times.append(time.perf_counter() - t0)
    _, ess, _ = diagnose(theta)
    ess_min = float(np.nanmin(ess))
    return dict(case=name, sampler=sampler, first=times[0], warm=times[-1], ess=ess_min,
                ess_s=ess_min / times[-1], div=div, steps=steps)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", help="comma-separated battery cases (default: all) or 'large'")
    p.add_argument("--cold", action="store_true", help="one call per sampler (a fresh process)")
    p.add_argument("--sampler", choices=("bayeslmm", "nutpie"), help="only this one")
    args = p.parse_args()
    from cases import CASES

    names = args.cases.split(",") if args.cases else [c.name for c in CASES]
    print("| case | sampler | first call s | warm s | min ESS θ | ESS/s | divergences | "
          "grad evals / draw |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            for sampler in [args.sampler] if args.sampler else ["bayeslmm", "nutpie"]:
                r = measure(name, sampler, repeat=1 if args.cold else 2)
                rows.append(r)
                print(f"| {r['case']} | {sampler} | {r['first']:.2f} | {r['warm']:.2f} | "
                      f"{r['ess']:.0f} | {r['ess_s']:.0f} | {r['div']} | {r['steps']:.1f} |",
                      flush=True)  # fmt: skip
    for sampler in ("bayeslmm", "nutpie"):
        mine = [r for r in rows if r["sampler"] == sampler]
        print(f"\n{sampler}: total warm {sum(r['warm'] for r in mine):.1f} s, median ESS/s "
              f"{np.median([r['ess_s'] for r in mine]):.0f}, divergences "
              f"{sum(r['div'] for r in mine)}")  # fmt: skip
    print(f"load average at start: {load}")


if __name__ == "__main__":
    main()

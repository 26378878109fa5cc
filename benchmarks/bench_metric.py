"""The metric from short windows (issue 19): a window with fewer than ``ROBUST_MIN``·d
draws gives a diagonal metric (``ROBUST_MIN = 2``), against the window's dense covariance
whatever its length (``ROBUST_MIN = 0``, the sampler before).  Run:
python benchmarks/bench_metric.py.

Maximal models ``y ~ 1 + x1..x{k-1} + (1 + x1..x{k-1} | g)`` (k = 4, 6, 8: 11, 22 and 37
sampled parameters against windows of 25, 50, 100, 200, 500 draws), 40 groups x 25 rows,
simulated with correlated effects; θ only, 4 chains x 1000 after 1000 tune, seeds 1-3.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd


def simulate(k: int, groups: int = 40, per: int = 25, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = groups * per
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    g = np.repeat(np.arange(groups), per)
    A = rng.normal(size=(k, k)) * 0.5
    b = rng.multivariate_normal(np.zeros(k), A @ A.T + 0.2 * np.eye(k), size=groups)
    y = X @ rng.normal(size=k) + np.einsum("ij,ij->i", X, b[g]) + rng.normal(size=n)
    data = pd.DataFrame(X[:, 1:], columns=[f"x{i}" for i in range(1, k)])
    return data.assign(y=y, g=[f"g{i}" for i in g])


def main() -> None:
    import bayeslmm as blm
    from bayeslmm.bayes import marginal
    from bayeslmm.bayes.nuts import runner
    from bayeslmm.bayes.summary import diagnose

    print("| k | dim | ROBUST_MIN | seed | warm s | min ESS θ | ESS/s | grad evals / draw | "
          "divergences |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    warnings.simplefilter("ignore")
    import sys

    ks = [int(k) for k in sys.argv[1].split(",")] if len(sys.argv) > 1 else [4, 6, 8]
    seeds = (1, 2) if len(sys.argv) > 1 else (1, 2, 3)
    for k in ks:
        xs = " + ".join(f"x{i}" for i in range(1, k))
        model = blm.Model(f"y ~ 1 + {xs} + (1 + {xs} | g)", simulate(k))
        mm = marginal.build(model.design, model._priors())
        for robust in (0.0, 2.0):
            runner.ROBUST_MIN = robust
            for seed in seeds:
                start = marginal.initial_points(mm, 4, np.random.default_rng(seed))
                t0 = time.perf_counter()
                run = runner.run_chains(
                    mm.data, start.points, start.metric, draws=1000, tune=1000, seed=seed,
                    target_accept=0.95, cores=2,
                )  # fmt: skip
                wall = time.perf_counter() - t0
                ess = float(np.nanmin(diagnose(run.theta)[1]))
                s = run.stats[:, 1000:]
                print(f"| {k} | {mm.dim} | {robust:g} | {seed} | {wall:.2f} | {ess:.0f} | "
                      f"{ess / wall:.0f} | {s['n_steps'].mean():.1f} | "
                      f"{int(s['diverging'].sum())} |", flush=True)  # fmt: skip
    with open("/proc/loadavg") as f:
        print("load average at the end:", f.read().split()[0])


if __name__ == "__main__":
    main()

"""Benchmark the breadth features of issue 22 on the REML path: type III F tests and
estimated marginal means (Kenward–Roger and Satterthwaite) at large N, and fits with
weights, offsets and residual groups beside the plain fit of the same data.

Run: ``python benchmarks/bench_breadth.py [--n 50000] [--groups 200] [--repeats 3]``.
Prints one table: the median wall time of each call over ``--repeats`` (after one
warm-up call), with the plain fit's time as the peer for the fits' ratio column.

``--bayes [--seeds 3]``: the 20-model battery's criteria (0 divergences, R-hat <= 1.01,
bulk ESS >= 400 over every parameter and ranef, every fixed effect's posterior mean within
one posterior SD of REML's) on weighted, offset and heteroscedastic (``sigma=``) variants
of sleepstudy and Orthodont, ``model.sample(seed=s)`` with every default, and the median
sampling time over the seeds beside the plain model's (same data, same run).
The data: y = 1 + 0.5 x + effect(trt, 3 levels) + b0_g + b1_g x + ε, ``--groups`` groups,
N rows, a residual SD that doubles in the second of two sites (for ``sigma=``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import pandas as pd

from bayeslmm import Model, load_dataset


def simulate(n: int, groups: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    trt = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    site = np.where(rng.random(n) < 0.5, "s1", "s2")
    b0, b1 = rng.normal(size=groups), 0.3 * rng.normal(size=groups)
    sd = np.where(site == "s1", 1.0, 2.0)
    effect = pd.Series({"A": 0.0, "B": 0.4, "C": -0.2})[trt].to_numpy()
    y = 1 + 0.5 * x + effect + b0[g] + b1[g] * x + sd * rng.normal(size=n)
    w = 1.0 + (np.arange(n) % 3)
    return pd.DataFrame({"y": y, "x": x, "trt": trt, "g": g, "site": site, "w": w})


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (imports, first-call costs)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bayes_cases() -> list[tuple[str, str, str, pd.DataFrame, dict]]:
    """(case, variant, formula, data, Model options): plain first per data set."""
    from pathlib import Path

    sleep = load_dataset("sleepstudy")
    ortho = pd.read_csv(Path(__file__).parent.parent / "tests/reference/breadth/orthodont.csv")
    ortho["Sex"] = pd.Categorical(ortho["Sex"], categories=["Male", "Female"])
    ss, od = "Reaction ~ Days + (Days | Subject)", "distance ~ age + Sex + (age | Subject)"
    return [
        ("sleepstudy", "plain", ss, sleep, {}),
        ("sleepstudy", "weights", ss, sleep, {"weights": 1 + sleep["Days"] % 3}),
        ("sleepstudy", "offset", ss + " + offset(0.5 * Days)", sleep, {}),
        ("sleepstudy", "sigma", ss, sleep, {"sigma": "~ 1 | half"}),
        ("orthodont", "plain", od, ortho, {}),
        ("orthodont", "weights", od, ortho, {"weights": 1 + (ortho["age"] > 10)}),
        ("orthodont", "sigma", od, ortho, {"sigma": "~ 1 | Sex"}),
    ]


def run_bayes(seeds: int) -> None:
    from bayeslmm import BayesLMMError

    rows, plain = [], {}
    for case, variant, formula, data, kw in bayes_cases():
        if variant == "sigma" and "half" in kw.get("sigma", ""):
            data = data.assign(half=np.where(data["Days"] < 5, "early", "late"))
        model = Model(formula, data, **kw)
        fit = model.fit_reml()
        times, ok, worst = [], True, 0.0
        try:
            for seed in range(1, seeds + 1):
                post = model.sample(seed=seed, progressbar=False)
                times.append(float(post.idata["sample_stats"].attrs["sampling_time"]))
                d = post.diagnostics
                z = ((post.fixef["mean"] - fit.fixef) / post.fixef["sd"]).abs().max()
                worst = max(worst, float(z))
                ok &= d.divergences == 0 and d.max_r_hat <= 1.01 and d.min_ess_bulk >= 400
                ok &= z <= 1.0
        except BayesLMMError as exc:
            rows.append((case, variant, "not on this path: " + str(exc)[:40], "", "", ""))
            continue
        t = statistics.median(times)
        if variant == "plain":
            plain[case] = t
        ratio = t / plain[case]
        rows.append((case, variant, f"{t:.2f}", f"{ratio:.2f}", f"{worst:.2f}", str(bool(ok))))
    print(f"load average {os.getloadavg()[0]:.2f}; {seeds} seeds per case")
    print("| data | variant | sampling s (median) | x plain | worst |mean-REML|/SD | pass |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bayes", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.bayes:
        run_bayes(args.seeds)
        return
    d = simulate(args.n, args.groups)
    formula = "y ~ x + trt + (x | g)"
    rows = []
    plain_t, fit = timed(lambda: Model(formula, d).fit_reml(), args.repeats)
    rows.append(("fit, plain", plain_t, 1.0))
    for label, kw in [
        ("fit, weights=", {"weights": "w"}),
        ("fit, offset()", {}),
        ("fit, sigma='~ 1 | site'", {"sigma": "~ 1 | site"}),
    ]:
        f = formula + " + offset(0.1 * x)" if label == "fit, offset()" else formula
        t, _ = timed(lambda f=f, kw=kw: Model(f, d, **kw).fit_reml(), args.repeats)
        rows.append((label, t, t / plain_t))
    for label, call in [
        ("anova(type=3), Satterthwaite", lambda: fit.anova(3)),
        ("anova(type=3), Kenward-Roger", lambda: fit.anova(3, ddf="kenward-roger")),
        ("emmeans('trt'), Kenward-Roger", lambda: fit.emmeans("trt")),
        ("emmeans('trt').pairs(), KR", lambda: fit.emmeans("trt").pairs()),
        ("emmeans('trt'), Satterthwaite", lambda: fit.emmeans("trt", ddf="satterthwaite")),
    ]:
        t, _ = timed(call, args.repeats)
        rows.append((label, t, t / plain_t))
    load = os.getloadavg()[0]
    print(f"N = {args.n}, {args.groups} groups, q = {2 * args.groups}; load average {load:.2f}")
    print(f"{'call':34s} {'median s':>9s} {'x plain fit':>12s}")
    for label, t, r in rows:
        print(f"{label:34s} {t:9.3f} {r:12.2f}")


if __name__ == "__main__":
    main()

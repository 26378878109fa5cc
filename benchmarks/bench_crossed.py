"""Crossed, partially crossed and nested designs (issue 20): the default Bayesian fit
(``model.sample(seed=1)``, parameterization="auto") beside a peer in the same run.

For each design: wall time of ``sample()``, sampling time, the form "auto" chose, the
estimated ms per iteration of each option, divergences, max R-hat and min bulk ESS over
every parameter and every ranef, and the worst |posterior mean − REML| / posterior SD of
the fixed effects.  The peer (``--peer``, default "marginal": every effect integrated out,
the form "auto" chose before partial marginalisation) runs on the designs where it takes
under ``--peer-max`` estimated seconds.  Designs (simulated, ``_crossed.py``): the
2-condition ``rt ~ cond + (1 + cond | subj) + (1 + cond | item)`` at 40 x 40, 100 x 100 and
200 x 100; KB07-shaped (56 x 32, 2x2x2 within) reduced and maximal; InstEval-shaped
(``_sim.simulate_insteval``); partially crossed (120 x 80, 20 items each); nested
``(1 | a) + (1 | a:b)`` 300 x 4 and its one-factor peer with 1,200 levels.

    python benchmarks/bench_crossed.py [--only NAME ...] [--peer marginal|none]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _crossed as sims
from _sim import simulate_insteval

TWO = "rt ~ cond + (1 + cond | subj) + (1 + cond | item)"
KB07_FIXED = "rt ~ spkr * prec * load"
DESIGNS = {
    "2cond_40x40": (TWO, lambda: sims.two_condition(40, 40), 3.0),
    "2cond_100x100": (TWO, lambda: sims.two_condition(100, 100), 10.0),
    "2cond_200x100": (TWO, lambda: sims.two_condition(200, 100), 20.0),
    "kb07_reduced": (
        KB07_FIXED + " + (1 + spkr + prec + load | subj) + (1 + spkr + prec + load | item)",
        sims.kb07,
        15.0,
    ),
    "kb07_maximal": (
        KB07_FIXED + " + (1 + spkr * prec * load | subj) + (1 + spkr * prec * load | item)",
        sims.kb07,
        60.0,
    ),
    "insteval": (
        "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
        lambda: simulate_insteval(n=73_421),
        120.0,
    ),
    "partially_crossed": (
        "rt ~ cond + (1 + cond | subj) + (1 | item)",
        sims.partially_crossed,
        None,
    ),
    "nested_300x4": ("y ~ 1 + (1 | a) + (1 | a:b)", sims.nested, None),
    "one_factor_1200": ("y ~ 1 + (1 | g)", sims.one_factor, None),
}


def fit(name: str, form: str) -> dict:
    """``sample(seed=1, parameterization=form)`` on design ``name``; its checks."""
    import bayeslmm as blm
    from bayeslmm.bayes.parameterization import auto_choice

    formula, make, target = DESIGNS[name]
    model = blm.Model(formula, make())
    choice = auto_choice(model.design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reml = model.fit_reml()
        t0 = time.perf_counter()
        post = model.sample(seed=1, parameterization=form, progressbar=False)
        wall = time.perf_counter() - t0
    d = post.diagnostics
    std_diff = ((post.fixef["mean"] - reml.fixef) / post.fixef["sd"]).abs().max()
    forms = sorted(set(post.parameterization.values()))
    clean = d.divergences == 0 and d.max_r_hat <= 1.01 and d.min_ess_bulk >= 400
    return {
        "design": name,
        "rows": len(model.design.y),
        "form": form,
        "chose": "/".join(forms),
        "est_ms_iter": f"{choice.ms_marginal:.2f} / {choice.ms_partial or float('nan'):.2f}",
        "sample_s": wall,
        "sampling_s": d.sampling_time,
        "div": d.divergences,
        "rhat": d.max_r_hat,
        "ess": d.min_ess_bulk,
        "fixef_sd": float(std_diff),
        "target": target,
        "clean": clean and std_diff <= 1.0,
    }


def warm_up() -> None:
    """Tiny fits with every kernel the table uses, so that its times are warm (numba
    compiles once per machine; the first line of the output gives that cost)."""
    import bayeslmm as blm

    small = sims.two_condition(6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for form in ("partial", "marginal"):
            blm.Model(TWO, small).sample(
                draws=20, tune=20, chains=1, parameterization=form, progressbar=False
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=list(DESIGNS))
    parser.add_argument("--peer", default="marginal", choices=["marginal", "none"])
    parser.add_argument(
        "--peer-max", type=float, default=300.0, help="skip peers estimated above (s)"
    )
    args = parser.parse_args()
    from bayeslmm.bayes.parameterization import auto_choice

    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)", flush=True)
    t0 = time.perf_counter()
    warm_up()
    print(f"compile / cache load (tiny fits of each kernel): {time.perf_counter() - t0:.1f} s")
    print(
        "| design | rows | form | chose | est. ms/iter (marginal / partial) | sample s "
        "| sampling s | div | max R-hat | min ESS | worst fixef dev / SD | target s | clean |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        forms = ["auto"]
        if args.peer != "none":
            import bayeslmm as blm

            formula, make, _ = DESIGNS[name]
            choice = auto_choice(blm.Model(formula, make()).design)
            peer_s = choice.ms_marginal * 8000 / 2 / 1000
            if set(choice.form.values()) != {"marginal"} and peer_s <= args.peer_max:
                forms.append(args.peer)
        for form in forms:
            r = fit(name, form)
            print(
                f"| {r['design']} | {r['rows']:,} | {r['form']} | {r['chose']} "
                f"| {r['est_ms_iter']} | {r['sample_s']:.1f} | {r['sampling_s']:.1f} "
                f"| {r['div']} | {r['rhat']:.3f} | {r['ess']:.0f} | {r['fixef_sd']:.2f} "
                f"| {r['target'] or '–'} | {'yes' if r['clean'] else 'no'} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

"""NUTS on sleepstudy ``Reaction ~ Days + (Days | Subject)``: time to a trustworthy posterior.

Configurations (``model.sample(seed, ...)``, 4 chains x (1000 tune + 1000 draws),
target_accept 0.95 (the package default, passed to every configuration), cores=2):

* ``marginal / bayeslmm``: the default, b (and β, Normal priors) integrated out, the
  package's compiled NUTS;
* ``marginal / pymc``, ``marginal / nutpie``, ``marginal / numpyro``: the marginal PyMC
  model (β sampled) through ``pm.sample`` (b drawn exactly afterwards); PyTensor's default
  backend (numba) for PyMC's sampler (its C backend cannot compile this model where
  PyTensor finds no BLAS to link: "Gemv cannot produce C code"); numpyro compiles through
  JAX (where jax and numpyro are installed);
* ``latent / pymc``, ``latent / nutpie``: the latent non-centred model (the first default);
* bambi (``(1|Subject) + (0 + Days|Subject)``: no correlated effects) where installed.

Each repeat runs three fits in a fresh process: "cold" with empty compile caches (a
temporary ``NUMBA_CACHE_DIR`` and PyTensor ``compiledir``: what a first run on a new
machine pays), then, in a second fresh process with the caches the first one wrote,
"process" (the whole process: interpreter start, imports, model and ``sample``) and
"warm" (a second ``sample`` in that process).  The first-run overhead (compiling and
writing the caches) is cold minus warm.  Divergences, max r_hat and min bulk ESS are over
every parameter and every ranef (``post.diagnostics``).

Usage: ``python benchmarks/bench_nuts.py [--repeats 3] [--configs ...] [--write FILE]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import replace_section

FORMULA = "Reaction ~ Days + (Days | Subject)"
BAMBI_FORMULA = "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)"
#: configuration -> (parameterization, nuts_sampler)
CONFIGS = {
    "marginal / bayeslmm": ("auto", None),
    "marginal / pymc": ("marginal", "pymc"),
    "marginal / nutpie": ("marginal", "nutpie"),
    "marginal / numpyro": ("marginal", "numpyro"),
    "latent / pymc": ("noncentered", "pymc"),
    "latent / nutpie": ("noncentered", "nutpie"),
    "bambi": (None, None),
}
TARGET_ACCEPT = 0.95


def _bayeslmm_fit(config: str, seed: int) -> dict:
    import bayeslmm as blm

    parameterization, sampler = CONFIGS[config]
    model = blm.Model(FORMULA, blm.load_dataset("sleepstudy"))
    t0 = time.perf_counter()
    post = model.sample(
        seed=seed,
        cores=2,
        target_accept=TARGET_ACCEPT,
        parameterization=parameterization,
        nuts_sampler=sampler,
        progressbar=False,
    )
    wall = time.perf_counter() - t0
    d = post.diagnostics
    return {
        "wall": wall,
        "sampling": d.sampling_time,
        "divergences": d.divergences,
        "max_r_hat": d.max_r_hat,
        "min_ess_bulk": d.min_ess_bulk,
    }


def _bambi_fit(seed: int) -> dict:
    import bambi as bmb

    import bayeslmm as blm
    from bayeslmm.bayes.summary import diagnose

    data = blm.load_dataset("sleepstudy")
    data["Subject"] = data["Subject"].astype(str)
    t0 = time.perf_counter()
    model = bmb.Model(BAMBI_FORMULA, data)
    idata = model.fit(
        draws=1000,
        tune=1000,
        chains=4,
        cores=2,
        target_accept=TARGET_ACCEPT,
        random_seed=seed,
        progressbar=False,
    )
    wall = time.perf_counter() - t0
    post = idata["posterior"].to_dataset()
    names = [v for v in post.data_vars if not v.endswith("_offset") and v != "mu"]
    values = [post[v].transpose("chain", "draw", ...).to_numpy() for v in names]
    flat = [v.reshape(v.shape[0], v.shape[1], -1) for v in values]
    import numpy as np

    rhat, ess, _ = diagnose(np.concatenate(flat, axis=2))
    return {
        "wall": wall,
        "sampling": float(idata["sample_stats"].attrs.get("sampling_time", float("nan"))),
        "divergences": int(idata["sample_stats"]["diverging"].sum()),
        "max_r_hat": float(np.nanmax(rhat)),
        "min_ess_bulk": float(np.nanmin(ess)),
    }


def _worker(config: str, seed: int, fits: int) -> None:
    warnings.simplefilter("ignore")
    start = float(os.environ["BENCH_START"])
    out = []
    for i in range(fits):
        out.append(_bambi_fit(seed + i) if config == "bambi" else _bayeslmm_fit(config, seed + i))
        out[-1]["process"] = time.time() - start  # interpreter start to the end of this fit
    print(json.dumps(out))


def _process(config: str, seed: int, fits: int, caches: Path) -> list[dict]:
    env = dict(
        os.environ,
        NUMBA_CACHE_DIR=str(caches / "numba"),
        PYTENSOR_FLAGS=f"compiledir={caches / 'pytensor'}",
        BENCH_START=repr(time.time()),
    )
    cmd = [sys.executable, __file__, "--worker", config, "--seed", str(seed), "--fits", str(fits)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _repeat(config: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (cold,) = _process(config, seed, 1, Path(tmp))
        process, warm = _process(config, seed + 10, 2, Path(tmp))
    return {"cold": cold, "process": process, "warm": warm}


def _table(results: dict[str, list[dict]]) -> str:
    lines = [
        "| configuration | cold sample (s) | warm sample (s) | first-run overhead: cold − warm "
        "(s) | fresh process, warm caches (s) | divergences | max r_hat | min bulk ESS | min "
        "ESS / s (warm) |",
        "|" + "---|" * 9,
    ]
    for config, runs in results.items():

        def med(phase: str, key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[phase][key] for r in runs)

        cold, warm = med("cold", "wall"), med("warm", "wall")
        lines.append(
            f"| {config} | {cold:.1f} | {warm:.1f} | {cold - warm:.1f} "
            f"| {med('process', 'process'):.1f} "
            f"| {max(r[p]['divergences'] for r in runs for p in ('cold', 'warm'))} "
            f"| {med('cold', 'max_r_hat'):.3f} | {med('cold', 'min_ess_bulk'):.0f} "
            f"| {med('warm', 'min_ess_bulk') / warm:.0f} |"
        )
    return "\n".join(lines)


def _write(path: Path, table: str, repeats: int) -> None:
    load = os.getloadavg()[0]
    replace_section(
        path,
        "NUTS",
        [
            "## NUTS: sleepstudy `Reaction ~ Days + (Days | Subject)`",
            "",
            f"Run {dt.date.today().isoformat()} on a 2-core machine (1-minute load {load:.1f} "
            f"at the end), `python benchmarks/bench_nuts.py`; medians of {repeats} repeats. "
            "Cold: a fresh process with empty numba and PyTensor caches; fresh process, warm "
            "caches: interpreter start, imports, model and `sample()` in a new process once "
            "the caches exist; warm sample: a second `sample()` in that process. 4 chains x "
            f"(1000 tune + 1000 draws), target_accept {TARGET_ACCEPT}, cores=2; ESS and "
            "r_hat over every parameter and every ranef.",
            "",
            table,
            "",
            "The default (b and β integrated out, the package's compiled NUTS on the 4 "
            "variance parameters, (β, b) drawn exactly afterwards) needs neither PyMC nor a "
            "PyTensor compile: numba compiles its code once per machine (the cold column; the "
            "sampler, the kernels and the diagnostics, whatever the model) and loads it from "
            "its cache afterwards. The PyMC configurations sample the marginal model with β "
            "(7 parameters) or the latent model (22 + 18 parameters) and compile once per "
            "model structure. PyTensor's C backend cannot compile the marginal model here "
            "(pip's PyTensor finds no BLAS to link: `Gemv cannot produce C code`); numpyro "
            "(JAX) recompiles on every call. bambi fits the uncorrelated model "
            "`(1|Subject) + (0 + Days|Subject)` (it has no correlated terms).",
            "",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="re-render saved results")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--fits", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.seed, args.fits)
        return
    configs = args.configs or [
        c
        for c in CONFIGS
        if ("nutpie" not in c or importlib.util.find_spec("nutpie"))
        and ("numpyro" not in c or importlib.util.find_spec("numpyro"))
        and (c != "bambi" or importlib.util.find_spec("bambi"))
    ]
    if args.from_json:
        results = json.loads(args.from_json.read_text().splitlines()[0])
    else:
        results = {c: [_repeat(c, 100 + 20 * r) for r in range(args.repeats)] for c in configs}
        print(json.dumps(results))
    table = _table(results)
    print(table)
    if args.write:
        _write(args.write, table, args.repeats)


if __name__ == "__main__":
    main()

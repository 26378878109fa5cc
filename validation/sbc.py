"""Simulation-based calibration (SBC, Talts et al. 2018) of bayeslmm's NUTS path.

Repeat ``nrep`` times on one fixed design (``y ~ 1 + x + (1 + x | g)``, 8 groups x 5
observations, ``x ~ N(0, 1)``):

1. draw θ* from the prior and y* ~ p(y | θ*) with ``model.simulate(None, ...)``;
2. fit y* with NUTS: by default (``sampler="marginal"``) the package's marginalised
   sampler, as ``model.sample()`` runs it (b integrated out, the compiled NUTS, its default
   ``target_accept``); or (``sampler="latent"``, the first protocol) PyMC's NUTS on the
   latent PyMC model, compiled once: the observed ``y`` is swapped for a shared variable
   (``pm.observe``) set per replication, and one ``pm.NUTS`` step is reused;
3. thin the draws to ``L`` and record, per parameter, the rank ``#{draws < θ*}``.

If the sampler draws from the exact posterior of the model that generated the data, each
rank is uniform on ``{0, ..., L}``.  The default priors are data-scaled (``sd(y)``);
SBC needs priors that do not depend on the data, so they are frozen at the values they
take on a reference data set (the same for simulation and for every fit).

Also recorded per replication: whether the central 94 % interval of the (unthinned)
draws covers θ*, and the number of divergent transitions.

Run in full (writes ``validation/results/run/sbc_*.csv``, ``docs/img/sbc_ranks.png``
and prints the tables for ``docs/validation.md``); ``--report`` pools saved runs::

    python -m validation.sbc --nrep 200 --seed 2026 --out validation/results/run1
    python -m validation.sbc --report validation/results/run1 validation/results/run2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayeslmm import Model
from bayeslmm.bayes import marginal
from bayeslmm.bayes.nuts.runner import run_chains
from bayeslmm.bayes.priors import resolve_priors
from bayeslmm.design import Design

FORMULA = "y ~ 1 + x + (1 + x | g)"
#: probability of the central intervals whose coverage is checked
CI_PROB = 0.94
ROOT = Path(__file__).resolve().parent.parent


def reference_model(ngroups: int = 8, nper: int = 5, seed: int = 0) -> Model:
    """The SBC design: ``ngroups`` x ``nper`` rows, ``x ~ N(0, 1)``, y from a fixed truth.

    Its y only sets the data-scaled default priors, which then stay fixed.
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ngroups), nper)
    x = rng.standard_normal(len(g))
    b0, b1 = rng.normal(0, 1, ngroups), rng.normal(0, 0.5, ngroups)
    y = 1.0 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(0, 1, len(g))
    frame = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    return Model(FORMULA, frame)


def parameter_names(design: Design) -> list[str]:
    """Ranked parameters: fixed effects, group SDs, correlations, residual SD."""
    names = [f"fixef[{n}]" for n in design.fixef_names]
    for t in design.terms:
        names += [f"sd_{t.group}[{c}]" for c in t.cnames]
    for t in design.terms:
        names += [
            f"corr_{t.group}[{t.cnames[j]},{t.cnames[i]}]"
            for j in range(t.nc)
            for i in range(j + 1, t.nc)
        ]
    return [*names, "sigma"]


def true_parameters(model: Model, sim) -> pd.DataFrame:
    """θ* per simulation (rows) from a :class:`~bayeslmm.simulate.Simulation`."""
    design = model.design
    cols = [sim.fixef.to_numpy()]
    corrs = []
    for t in design.terms:
        cov = sim.Sigma[t.group].to_numpy().reshape(-1, t.nc, t.nc)
        sd = np.sqrt(np.einsum("sii->si", cov))
        cols.append(sd)
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        corrs += [corr[:, i, j][:, None] for j in range(t.nc) for i in range(j + 1, t.nc)]
    cols += [*corrs, sim.sigma.to_numpy()[:, None]]
    return pd.DataFrame(np.hstack(cols), columns=parameter_names(design))


def posterior_parameters(design: Design, posterior: Mapping[str, np.ndarray]) -> np.ndarray:
    """Draws (chains stacked) x parameters, in :func:`parameter_names` order, from arrays
    (chain, draw, ...) by PyMC name."""

    def flat(name: str) -> np.ndarray:
        values = np.asarray(posterior[name])
        return values.reshape(-1, *values.shape[2:])

    cols = [flat("fixef")]
    cols += [flat(f"sd_{t.group}") for t in design.terms]
    for t in design.terms:
        if t.nc > 1:
            corr = flat(f"corr_{t.group}")
            cols += [corr[:, i, j][:, None] for j in range(t.nc) for i in range(j + 1, t.nc)]
    cols.append(flat("sigma")[:, None])
    return np.hstack(cols)


def ranks(truth: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per parameter: the number of draws (rows of ``draws``) below ``truth``, in 0..L."""
    return (np.asarray(draws) < np.asarray(truth)[None, :]).sum(axis=0)


def covers(truth: np.ndarray, draws: np.ndarray, prob: float = CI_PROB) -> np.ndarray:
    """Per parameter: does the central ``prob`` interval of ``draws`` contain ``truth``?"""
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return (lo <= truth) & (truth <= hi)


@dataclass
class SBCResult:
    """Per replication (rows) and parameter (columns): ranks, truths, posterior means
    and coverage of the central 94 % intervals."""

    ranks: pd.DataFrame
    truth: pd.DataFrame
    means: pd.DataFrame
    covered: pd.DataFrame
    divergences: pd.Series
    L: int
    settings: dict
    seconds: float


class _Latent:
    """The first protocol: PyMC's NUTS on the latent PyMC model, compiled once (``y``
    observes a shared variable set per fit; one NUTS step re-tuned by every ``pm.sample``)."""

    def __init__(self, model: Model, target_accept: float):
        import pymc as pm
        import pytensor

        self.pm = pm
        self.y = pytensor.shared(model.design.y.copy(), name="y_sbc")
        self.model = pm.observe(model.pymc_model(parameterization="noncentered"), {"y": self.y})
        self.step = pm.NUTS(model=self.model, target_accept=target_accept)
        self.design = model.design

    def fit(self, y: np.ndarray, draws: int, tune: int, seed: int) -> tuple[np.ndarray, int]:
        self.y.set_value(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = self.pm.sample(
                draws=draws,
                tune=tune,
                chains=1,
                step=self.step,
                model=self.model,
                random_seed=seed,
                progressbar=False,
                compute_convergence_checks=False,
            )
        arrays = {
            name: var.transpose("chain", "draw", ...).to_numpy()
            for name, var in idata["posterior"].data_vars.items()
        }
        return posterior_parameters(self.design, arrays), int(
            idata["sample_stats"]["diverging"].sum()
        )


class _Marginal:
    """The marginalised sampler as ``model.sample()`` runs it, on each replication's y."""

    def __init__(self, model: Model, target_accept: float):
        self.design = model.design
        self.priors = resolve_priors(model.design)  # frozen at the reference data's scale
        self.target_accept = target_accept

    def fit(self, y: np.ndarray, draws: int, tune: int, seed: int) -> tuple[np.ndarray, int]:
        mm = marginal.build(dataclasses.replace(self.design, y=np.asarray(y)), self.priors)
        start = marginal.initial_points(mm, 1, np.random.default_rng(seed))
        run = run_chains(
            mm.data,
            start.points,
            start.metric,
            draws=draws,
            tune=tune,
            seed=seed,
            target_accept=self.target_accept,
            cores=1,
            progressbar=False,
        )
        beta = marginal.draw_effects(mm, run.theta, seed, 1).beta
        post = posterior_parameters(self.design, marginal.constrained(mm, run.theta, beta))
        return post, int(run.stats[0, tune:]["diverging"].sum())


def run_sbc(
    nrep: int,
    *,
    model: Model | None = None,
    sampler: str = "marginal",
    draws: int = 500,
    tune: int = 500,
    thin: int = 5,
    target_accept: float | None = None,
    seed: int = 2026,
    checkpoint: Path | None = None,
) -> SBCResult:
    """``nrep`` SBC replications (see the module docstring); ``L = draws // thin``.
    ``target_accept``: 0.95 (the package default; the first protocol's too)."""
    start = time.perf_counter()
    model = model or reference_model()
    design = model.design
    names = parameter_names(design)
    sim = model.simulate(None, seed=seed, nsim=nrep, return_components=True)
    truth = true_parameters(model, sim)
    if target_accept is None:
        target_accept = 0.95
    fitter = (_Marginal if sampler == "marginal" else _Latent)(model, target_accept)
    rank_rows, mean_rows, cover_rows, divergences = [], [], [], []
    for rep in range(nrep):
        post, ndiv = fitter.fit(sim.y[rep], draws, tune, seed + 1 + rep)
        theta = truth.iloc[rep].to_numpy()
        rank_rows.append(ranks(theta, post[::thin]))
        mean_rows.append(post.mean(axis=0))
        cover_rows.append(covers(theta, post))
        divergences.append(ndiv)
        if checkpoint is not None:
            partial = pd.concat(
                [
                    pd.DataFrame(rank_rows, columns=names).add_prefix("rank:"),
                    pd.DataFrame(cover_rows, columns=names).add_prefix("covered:"),
                    pd.Series(divergences, name="divergences"),
                ],
                axis=1,
            )
            partial.to_csv(checkpoint, index_label="rep")
    reps = pd.RangeIndex(nrep, name="rep")
    return SBCResult(
        ranks=pd.DataFrame(rank_rows, reps, names),
        truth=truth.set_axis(reps),
        means=pd.DataFrame(mean_rows, reps, names),
        covered=pd.DataFrame(cover_rows, reps, names),
        divergences=pd.Series(divergences, reps, name="divergences"),
        L=len(range(0, draws, thin)),
        settings={
            "formula": FORMULA,
            "nobs": design.nobs,
            "ngroups": design.ngroups,
            "draws": draws,
            "tune": tune,
            "thin": thin,
            "chains": 1,
            "target_accept": target_accept,
            "seed": seed,
            "sampler": sampler,
            "parameterization": {
                t.group: "marginal" if sampler == "marginal" else "noncentered"
                for t in design.terms
            },
        },
        seconds=time.perf_counter() - start,
    )


def _binned(r: np.ndarray, L: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ranks 0..L in ``bins`` bins (rank r goes to bin r * bins // (L + 1)), and
    the expected counts under uniformity (proportional to the ranks each bin holds)."""
    width = np.bincount(np.arange(L + 1) * bins // (L + 1), minlength=bins)
    return np.bincount(r * bins // (L + 1), minlength=bins), width * len(r) / (L + 1)


def uniformity(rank_table: pd.DataFrame, L: int, bins: int = 20) -> pd.DataFrame:
    """Per parameter: χ² test of the ranks 0..L in ``bins`` bins, and KS test of the
    normalised ranks ``(r + U) / (L + 1)`` (randomised to be continuous) against U(0, 1)."""
    rng = np.random.default_rng(0)
    rows = {}
    for name, r in rank_table.items():
        r = r.to_numpy()
        chi2 = stats.chisquare(*_binned(r, L, bins))
        ks = stats.kstest((r + rng.uniform(size=len(r))) / (L + 1), "uniform")
        rows[name] = {
            "chi2": chi2.statistic,
            "chi2_p": chi2.pvalue,
            "ks": ks.statistic,
            "ks_p": ks.pvalue,
        }
    return pd.DataFrame(rows).T


def coverage(covered: pd.DataFrame, prob: float = CI_PROB) -> pd.DataFrame:
    """Per parameter: coverage rate, its binomial MC standard error at the nominal rate,
    and the exact binomial test p-value against ``prob``."""
    n = len(covered)
    hits = covered.sum()
    return pd.DataFrame(
        {
            "coverage": hits / n,
            "mc_se": np.sqrt(prob * (1 - prob) / n),
            "binom_p": [stats.binomtest(int(k), n, prob).pvalue for k in hits],
        }
    )


def plot_ranks(rank_table: pd.DataFrame, L: int, path: Path, bins: int = 20) -> Path:
    """Rank histograms, one panel per parameter (the bins of :func:`uniformity`), with the
    expected count and its 99 % band under uniformity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rank_table.columns)
    ncol = 3
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    n = len(rank_table)
    edges = np.arange(bins + 1)
    for ax, name in zip(axes.flat, names, strict=False):  # the grid may have spare axes
        counts, expected = _binned(rank_table[name].to_numpy(), L, bins)
        lo, hi = stats.binom.ppf([[0.005], [0.995]], n, expected / n)
        ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post",
                        color="0.85", zorder=0)  # fmt: skip
        ax.bar(edges[:-1], counts, width=1.0, align="edge", color="C0")
        ax.stairs(expected, edges, color="0.2", lw=1, zorder=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"rank bin ({bins} bins of the ranks 0..{L})")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"SBC rank histograms: {FORMULA}, {n} replications "
        "(line: uniform expectation, grey: its 99% band)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(df: pd.DataFrame, fmt: str = "{:.3f}") -> str:
    head = "| parameter | " + " | ".join(df.columns) + " |"
    rule = "|---" * (len(df.columns) + 1) + "|"
    body = [
        f"| `{i}` | " + " | ".join(fmt.format(v) for v in row) + " |"
        for i, row in zip(df.index, df.to_numpy(), strict=True)
    ]
    return "\n".join([head, rule, *body])


def save(result: SBCResult, out: Path) -> None:
    """Write the tables as CSV and the settings (with L and the run time) as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ranks", "truth", "means", "covered", "divergences"):
        getattr(result, name).to_csv(out / f"sbc_{name}.csv")
    meta = {**result.settings, "L": result.L, "nrep": len(result.ranks), "seconds": result.seconds}
    (out / "sbc_settings.json").write_text(json.dumps(meta, indent=1))


def report(dirs: list[Path], figure: Path) -> str:
    """Pool saved runs (same design and L): figure, and the text of the result tables."""
    metas = [json.loads((d / "sbc_settings.json").read_text()) for d in dirs]
    if len({m["L"] for m in metas}) != 1:
        raise ValueError(f"runs with different L cannot be pooled: {[m['L'] for m in metas]}")
    L = metas[0]["L"]

    def pooled(name: str) -> pd.DataFrame:
        return pd.concat([pd.read_csv(d / f"sbc_{name}.csv", index_col=0) for d in dirs])

    ranks, covered, div = pooled("ranks"), pooled("covered"), pooled("divergences").iloc[:, 0]
    plot_ranks(ranks, L, figure)
    lines = [
        f"runs: {', '.join(f'seed {m['seed']}: {m['nrep']} reps, {m['seconds'] / 60:.1f} min'
                           for m in metas)}; L = {L}",
        f"divergences: {int((div > 0).sum())} of {len(div)} fits, total {int(div.sum())}",
        _markdown(uniformity(ranks, L)),
        "",
        _markdown(coverage(covered)),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run an SBC and report it, or (``--report DIR ...``) pool and report saved runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nrep", type=int, default=200)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--thin", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sampler", choices=["marginal", "latent"], default="marginal")
    parser.add_argument("--out", type=Path, default=ROOT / "validation" / "results" / "run")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "img" / "sbc_ranks.png")
    parser.add_argument("--report", type=Path, nargs="+", metavar="DIR")
    args = parser.parse_args(argv)
    if not args.report:
        args.out.mkdir(parents=True, exist_ok=True)
        result = run_sbc(
            args.nrep,
            draws=args.draws,
            tune=args.tune,
            thin=args.thin,
            seed=args.seed,
            sampler=args.sampler,
            checkpoint=args.out / "sbc_partial.csv",
        )
        save(result, args.out)
    print(report(args.report or [args.out], args.figure))


if __name__ == "__main__":
    main()

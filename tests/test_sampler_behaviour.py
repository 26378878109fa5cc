"""Behaviour of the compiled NUTS that a sampler ignoring it would fail: the warm-up does
not depend on how the iterations are cut into chunks; known targets are recovered."""

from __future__ import annotations

import numpy as np
import pytest
from nuts_helpers import gaussian, one_chain

from bayeslmm.bayes import compiled
from bayeslmm.bayes.nuts import runner
from bayeslmm.bayes.nuts.adaptation import windows


@pytest.mark.parametrize(("tune", "draws"), [(200, 100), (500, 500)])
def test_run_chains_equals_one_call(tune, draws):
    """run_chains cuts a chain into chunks (here of 15 or 50 iterations, so that every
    metric-window end falls on a chunk boundary): its draws and statistics must equal
    one run over the same iterations.  The step-size re-initialisation after each window
    used to live in a local variable and was lost at a boundary."""
    target = gaussian()
    init = np.array([0.3, -0.2])
    run = runner.run_chains(
        target, init[None], np.eye(2), draws=draws, tune=tune, seed=5, target_accept=0.8
    )
    seed = int(np.random.SeedSequence(5).spawn(1)[0].generate_state(1)[0])
    out, stats, _ = one_chain(target, init, tune, draws, seed)
    np.testing.assert_array_equal(run.stats[0], stats)
    np.testing.assert_array_equal(run.theta[0], out)
    # and any other cut, one falling inside a window, one right after a window's end
    cut, _, _ = one_chain(target, init, tune, draws, seed, chunks=[1, 76, 101, 137])
    np.testing.assert_array_equal(cut, out)


@pytest.mark.parametrize("dense", [True, False])
def test_nuts_recovers_a_correlated_gaussian(dense):
    """Means, SDs and correlations of N(μ, Σ) (d = 5, correlations up to 0.9, scales
    from 0.1 to 10) within Monte Carlo error; no divergence; the draws do not depend on
    the number of threads."""
    rng = np.random.default_rng(0)
    d = 5
    A = rng.normal(size=(d, d))
    cov = A @ A.T + np.diag(np.linspace(0.01, 10, d))
    mean = rng.normal(size=d) * 3
    target = compiled.GaussianTarget(mean, np.linalg.inv(cov))
    inits = rng.uniform(-2, 2, size=(4, d))
    run = runner.run_chains(
        target, inits, np.eye(d), draws=2000, tune=1000, seed=11, target_accept=0.8, cores=2
    )
    x = run.theta.reshape(-1, d)
    sd = np.sqrt(np.diag(cov))
    assert run.stats[:, 1000:]["diverging"].sum() == 0
    # ESS per parameter is > 1000 here: the mean's MC error is < sd/30
    np.testing.assert_allclose((x.mean(0) - mean) / sd, 0, atol=5 / 30)
    np.testing.assert_allclose(x.std(0) / sd, 1, atol=0.06)
    np.testing.assert_allclose(np.corrcoef(x.T), cov / np.outer(sd, sd), atol=0.05)
    again = runner.run_chains(
        target, inits, np.eye(d), draws=2000, tune=1000, seed=11, target_accept=0.8, cores=1
    )
    np.testing.assert_array_equal(run.theta, again.theta)


def test_windows_follow_stan():
    """Stan's schedule for 1000 warm-up iterations: buffer 75, windows 25, 50, 100, 200,
    500 (the last stretched to the terminal buffer of 50)."""
    assert list(windows(1000)) == [75, 100, 150, 250, 450, 950]
    assert list(windows(100)) == [15, 90]  # 15 % / 75 % / 10 %
    assert list(windows(10)) == [0]  # too short: no metric adaptation


# --------------------------------------------------------------------------------------
# diagnostics that must fire, and adaptation that must reach its target
# --------------------------------------------------------------------------------------


def test_neals_funnel_reports_divergences():
    """Neal's funnel (v ~ N(0, 3²), 9 x's of variance eᵛ): no step size fits both the
    neck and the mouth, so NUTS must report divergent transitions (and they reach the
    warning).  A sampler that never flags a divergence fails here."""
    from bayeslmm.bayes.health import sampler_health
    from bayeslmm.bayes.nuts.record import sample_stats
    from bayeslmm.bayes.nuts.targets import Funnel

    run = runner.run_chains(
        Funnel(3.0), np.zeros((2, 10)) + 0.1, np.eye(10), draws=500, tune=500, seed=1,
        target_accept=0.8, cores=2,
    )  # fmt: skip
    n_div = int(run.stats[:, 500:]["diverging"].sum())
    assert n_div > 0
    health = sampler_health(sample_stats(run, {"chain": [0, 1], "draw": np.arange(500)}))
    assert health.divergences == n_div


def test_acceptance_after_adaptation_is_near_target():
    """Dual averaging drives the acceptance statistic of its own iterates to
    target_accept: over the last slow window and the terminal buffer it averages within
    0.05 of the target.  The sampling phase runs at exp(x̄), the iterates' average, a
    smaller step: its acceptance is above the target (as in Stan: 0.91 at 0.8 on this
    Gaussian), never below, and rises with it."""
    sampled = []
    for target_accept in (0.6, 0.8, 0.95):
        run = runner.run_chains(
            gaussian(5, seed=4), np.zeros((2, 5)), np.eye(5), draws=500, tune=1000, seed=2,
            target_accept=target_accept, cores=2,
        )  # fmt: skip
        adapting = run.stats[:, 500:1000]["acceptance_rate"].mean()
        assert abs(adapting - target_accept) < 0.05
        sampled.append(run.stats[:, 1000:]["acceptance_rate"].mean())
        assert sampled[-1] > target_accept - 0.03
    assert sampled[0] < sampled[1] < sampled[2]


def test_prior_only_model_recovers_the_priors():
    """With the data removed (n = 0, no cross-products: the likelihood is 1), the sampler
    must return the priors through every transform and Jacobian: half-t SDs (log scale),
    the LKJ(2) correlation ((r + 1)/2 ~ Beta(2, 2), PyMC's spiral transform) and a
    Student-t slope.  ECDF at the true deciles within 0.04 (ESS > 2000)."""
    from scipy import stats as st

    import bayeslmm as blm
    from bayeslmm.bayes import marginal

    model = blm.Model(
        "Reaction ~ Days + (Days | Subject)",
        blm.load_dataset("sleepstudy"),
        priors={
            "Intercept": "StudentT(nu=5, mu=0, sigma=10)",
            "fixef": "StudentT(nu=5, mu=0, sigma=2)",
            "sd_Subject": "HalfStudentT(nu=3, sigma=2)",
            "corr_Subject": "LKJ(eta=2)",
            "sigma": "HalfStudentT(nu=4, sigma=1.5)",
        },
    )
    mm = marginal.build(model.design, model._priors())
    d = mm.data
    assert isinstance(d, compiled.OneFactor)  # β sampled, not integrated out
    zero = {k: np.zeros_like(getattr(d, k)) for k in ("Xte", "XtX", "beta_ols", "A11", "Zte1")}
    no_data = d._replace(n=0.0, ete=1e-300, ZtX1=np.zeros_like(d.ZtX1), **zero)
    run = runner.run_chains(
        no_data, np.zeros((4, mm.dim)), np.eye(mm.dim), draws=2000, tune=1000, seed=1,
        target_accept=0.9, cores=2,
    )  # fmt: skip
    v = marginal.constrained(mm, run.theta)
    deciles = np.linspace(0.1, 0.9, 9)
    truth = {
        "sd0": (v["sd_Subject"][..., 0], 2 * st.t(3).ppf((1 + deciles) / 2)),
        "sd1": (v["sd_Subject"][..., 1], 2 * st.t(3).ppf((1 + deciles) / 2)),
        "sigma": (v["sigma"], 1.5 * st.t(4).ppf((1 + deciles) / 2)),
        "corr": (v["corr_Subject"][..., 0, 1], 2 * st.beta(2, 2).ppf(deciles) - 1),
        "slope": (v["fixef"][..., 1], 2 * st.t(5).ppf(deciles)),
    }
    for name, (draws, quantiles) in truth.items():
        ecdf = (draws.ravel()[:, None] <= quantiles).mean(axis=0)
        np.testing.assert_allclose(ecdf, deciles, atol=0.04, err_msg=name)


def test_a_start_outside_the_support_moves_or_fails_clearly():
    """A start whose log density is not finite (the funnel at v = −800: e⁸⁰⁰ overflows)
    moves towards the starts' centre and samples; a target that is nowhere finite raises
    a SamplingError that says so, instead of NaN draws."""
    from bayeslmm.bayes.nuts.targets import Funnel
    from bayeslmm.errors import SamplingError

    starts = np.full((2, 3), 0.1)
    starts[0, 0] = -800.0
    run = runner.run_chains(
        Funnel(3.0), starts, np.eye(3), draws=20, tune=20, seed=1, target_accept=0.8
    )
    assert np.isfinite(run.theta).all() and np.isfinite(run.stats["lp"]).all()
    nowhere = compiled.GaussianTarget(np.full(2, np.nan), np.eye(2))
    with pytest.raises(SamplingError, match="log density is not finite at chain 0's start"):
        runner.run_chains(nowhere, np.zeros((1, 2)), np.eye(2), draws=5, tune=5, seed=1,
                          target_accept=0.8)  # fmt: skip
    with pytest.raises(SamplingError, match="initial metric is not positive definite"):
        runner.run_chains(nowhere, np.zeros((1, 2)), -np.eye(2), draws=5, tune=5, seed=1,
                          target_accept=0.8)  # fmt: skip


@pytest.mark.slow
def test_nutpie_cross_check():
    """An independent NUTS (nutpie's, in Rust, its own adaptation) on the same kernel:
    θ's means and SDs of sleepstudy's (Days | Subject) agree with the compiled sampler's
    within 5 Monte Carlo standard errors (ESS > 2000 each)."""
    nutpie = pytest.importorskip("nutpie")
    from nutpie.compiled_pyfunc import from_pyfunc

    import bayeslmm as blm
    from bayeslmm.bayes import marginal

    model = blm.Model("Reaction ~ Days + (Days | Subject)", blm.load_dataset("sleepstudy"))
    mm = marginal.build(model.design, model._priors())
    start = marginal.initial_points(mm, 4, np.random.default_rng(1))
    ours = runner.run_chains(
        mm.data, start.points, start.metric, draws=1000, tune=1000, seed=1, target_accept=0.9
    ).theta.reshape(-1, mm.dim)

    def make_logp_fn():
        return lambda x, **_: marginal.logp(mm, x)

    points = iter(np.tile(start.points, (4, 1)))
    pymodel = from_pyfunc(
        mm.dim, make_logp_fn, lambda *a, **k: (lambda x, **_: {"theta": x}),
        [np.dtype("float64")], [(mm.dim,)], ["theta"],
        make_initial_point_fn=lambda _seed: next(points).copy(),
    )  # fmt: skip
    trace = nutpie.sample(pymodel, draws=1000, tune=1000, chains=4, seed=2, progress_bar=False)
    theirs = trace["posterior"]["theta"].to_numpy().reshape(-1, mm.dim)
    sd = ours.std(0)
    mcse = sd * np.sqrt(1 / 2000 + 1 / 2000)
    np.testing.assert_array_less(np.abs(ours.mean(0) - theirs.mean(0)), 5 * mcse)
    np.testing.assert_allclose(theirs.std(0), sd, rtol=0.1)

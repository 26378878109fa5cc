"""REML / ML fits against lme4 1.1-31 (tests/reference/*.json), closed forms and dense algebra."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayeslmm as blm
from bayeslmm.errors import DataError, DataWarning, SingularFitWarning
from bayeslmm.reml import optimize
from bayeslmm.reml.blocked import BlockedDeviance
from bayeslmm.reml.dense import DenseDeviance
from bayeslmm.reml.fit import make_deviance


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------------------
# Every reference case, REML and ML
# --------------------------------------------------------------------------------------


def test_criterion_matches_lme4(reference_fit):
    ref, fit = reference_fit
    if ref["REML"]:
        crit, refc = fit.reml_criterion, ref["reml_criterion"]
        assert fit.deviance is None
    else:
        crit, refc = fit.deviance, ref["deviance"]
        assert fit.reml_criterion is None
    assert abs(crit - refc) <= 1e-6 * abs(refc)
    # lower than lme4's only by a genuinely better optimum, never by much
    assert crit - refc > -1e-7
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert fit.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert fit.df == ref["df"]
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.is_singular == ref["is_singular"]
    assert fit.converged


def test_fixed_effects_match_lme4(reference_fit):
    ref, fit = reference_fit
    assert list(fit.fixef.index) == ref["fixef_names"]
    assert _rel(fit.fixef, list(ref["fixef"].values())) < 1e-4
    assert _rel(fit.fixef_se, list(ref["fixef_se"].values())) < 1e-4
    V = np.asarray(ref["vcov_fixef"])
    np.testing.assert_allclose(fit.vcov.to_numpy(), V, rtol=0, atol=2e-4 * np.abs(V).max())


def test_variance_components_match_lme4(reference_fit):
    ref, fit = reference_fit
    assert list(fit.theta.index) == ref["theta_names"]
    np.testing.assert_allclose(fit.theta, ref["theta"], rtol=1e-3, atol=1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    vc = fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc.iloc[-1]["grp"] == "Residual" and vc.iloc[-1]["var1"] is None
    for block in ref["varcorr"]:
        rows = vc[vc["grp"] == block["group"]]
        sds = rows[rows["var2"].isna()]
        assert list(sds["var1"]) == block["terms"]
        np.testing.assert_allclose(sds["sdcor"], block["sd"], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(sds["vcov"], block["var"], rtol=1e-3, atol=1e-4)
        k = len(block["terms"])
        corr = rows[rows["var2"].notna()]
        expected = [block["corr"][r][c] for c in range(k) for r in range(c + 1, k)]
        assert list(corr["var1"]) == [block["terms"][c] for c in range(k) for _ in range(c + 1, k)]
        np.testing.assert_allclose(corr["sdcor"], expected, atol=1e-3)


def test_ranef_and_conditional_sd_match_lme4(reference_fit):
    ref, fit = reference_fit
    for factor, r in ref["ranef"].items():
        got, sd = fit.ranef[factor], fit.conditional_sd[factor]
        assert list(got.index) == r["levels"] and list(got.columns) == r["terms"]
        values, condsd = np.asarray(r["values"]), np.asarray(r["condsd"])
        np.testing.assert_allclose(got.to_numpy(), values, atol=1e-3 * np.abs(values).max())
        np.testing.assert_allclose(sd.to_numpy(), condsd, atol=1e-3 * np.abs(condsd).max())
    for factor, c in ref["coef"].items():
        got = fit.coef[factor]
        assert list(got.columns) == c["columns"]
        values = np.asarray(c["values"])
        np.testing.assert_allclose(got.to_numpy(), values, atol=1e-3 * np.abs(values).max())


def test_fitted_and_residuals_match_lme4(reference_fit):
    ref, fit = reference_fit
    scale = np.abs(fit.design.y).max()
    np.testing.assert_allclose(fit.fitted[:10], ref["fitted_first10"], atol=1e-5 * scale)
    np.testing.assert_allclose(fit.residuals[:10], ref["residuals_first10"], atol=1e-5 * scale)
    np.testing.assert_allclose(fit.fitted + fit.residuals, fit.design.y, rtol=1e-12)


_NUMBER = re.compile(r"-?\d+\.?\d*")


def test_summary_text_matches_lme4(reference_fit):
    """Same lines and words; printed numbers agree to their last digit (flat optima)."""
    ref, fit = reference_fit
    expected = [ln for ln in ref["summary_text"].splitlines() if not ln.startswith("   Data:")]
    got = fit.summary().splitlines()
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert _NUMBER.sub("#", mine) == _NUMBER.sub("#", theirs)
        for a, b in zip(_NUMBER.findall(mine), _NUMBER.findall(theirs), strict=True):
            ulp = 10.0 ** -len(b.split(".")[1]) if "." in b else 1.0
            assert abs(float(a) - float(b)) <= max(1.01 * ulp, 1e-3 * abs(float(b)))
    assert repr(fit) == fit.summary()


@pytest.mark.parametrize("name", ["dyestuff", "iris_seed", "pastes", "ss_int", "ss_uncorr"])
def test_summary_text_is_verbatim_where_the_optimum_is_sharp(reference_fits, name):
    ref, fit = reference_fits[name]
    expected = "\n".join(
        ln for ln in ref["summary_text"].splitlines() if not ln.startswith("   Data:")
    )
    assert fit.summary() == expected


# --------------------------------------------------------------------------------------
# Closed forms and optimizer-free checks
# --------------------------------------------------------------------------------------


def test_dyestuff_criterion_at_fixed_theta():
    design = blm.Model("Yield ~ 1 + (1|Batch)", blm.load_dataset("dyestuff")).design
    dev = make_deviance(design, reml=True)
    assert dev(np.array([1.0])) == pytest.approx(319.7923890420018, abs=1e-9)
    assert dev(np.array([0.0])) == pytest.approx(326.0232321558786, abs=1e-9)


def test_dyestuff_ml_deviance_and_condsd_closed_form():
    fit = blm.lmer("Yield ~ 1 + (1|Batch)", blm.load_dataset("dyestuff"), reml=False)
    assert fit.deviance == pytest.approx(327.327059881135, abs=1e-7)
    reml = blm.lmer("Yield ~ 1 + (1|Batch)", blm.load_dataset("dyestuff"))
    th, sigma = reml.theta.iloc[0], reml.sigma
    expected = sigma * np.sqrt(th**2 / (5 * th**2 + 1))
    np.testing.assert_allclose(reml.conditional_sd["Batch"]["(Intercept)"], expected, rtol=1e-12)
    assert expected == pytest.approx(19.5865700901945, rel=1e-6)


def test_iris_and_sleepstudy_verbatim():
    iris = blm.lmer(
        "Petal.Width ~ Sepal.Width + Sepal.Length + (1 + Sepal.Length | Species)",
        blm.load_dataset("iris"),
    )
    assert round(iris.reml_criterion, 1) == -66.7
    np.testing.assert_allclose(
        iris.coef["Species"].loc["setosa"], [-0.1400153, 0.2727164, -0.10956019], rtol=1e-4
    )
    ss = blm.lmer("Reaction ~ Days + (1|Subject)", blm.load_dataset("sleepstudy"))
    np.testing.assert_allclose(ss.fixef, [251.40510, 10.46729], atol=5e-6)  # 5 decimals
    assert ss.ranef["Subject"].loc["308", "(Intercept)"] == pytest.approx(40.783710, rel=1e-6)


def _simulated(n=600, seed=3):
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 40, n)
    g2 = rng.integers(0, 12, n)
    g3 = rng.integers(0, 4, n)
    g4 = rng.integers(0, 30, n)
    x = rng.normal(size=n)
    y = (
        1.0
        + 0.5 * x
        + rng.normal(0, 0.7, 40)[g1]
        + rng.normal(0, 0.3, 40)[g1] * x
        + rng.normal(0, 0.5, 12)[g2]
        + rng.normal(0, 0.4, 12)[g2] * x
        + rng.normal(0, 0.3, 4)[g3]
        + rng.normal(0, 0.4, 30)[g4] * x
        + rng.normal(0, 0.6, 30)[g4]
        + rng.normal(0, 1.0, n)
    )
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "g1": [f"a{i}" for i in g1],
            "g2": [f"b{i}" for i in g2],
            "g3": g3,
            "g4": [f"c{i}" for i in g4],
        }
    )


def _dense(design, theta, reml):
    """Criterion, u and Var(u|y)/σ² from one dense Cholesky of the augmented system."""
    Z = design.Z().toarray()
    blocks = []
    for t, sl in zip(design.terms, design.theta_slices, strict=True):
        T = np.zeros((t.nc, t.nc))
        r, c = np.triu_indices(t.nc)
        T[c, r] = theta[sl]
        blocks.append(np.kron(np.eye(t.nl), T))
    from scipy.linalg import block_diag, cho_solve, cholesky

    Lam = block_diag(*blocks)
    ZL = Z @ Lam
    q, p, n = Z.shape[1], design.p, design.nobs
    W = np.column_stack([ZL, design.X, design.y])
    A = W.T @ W
    A[:q, :q] += np.eye(q)
    L = cholesky(A, lower=True)
    d = np.log(np.diag(L))
    r2 = L[-1, -1] ** 2
    if reml:
        crit = 2 * d[: q + p].sum() + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    else:
        crit = 2 * d[:q].sum() + n * (1 + np.log(2 * np.pi * r2 / n))
    sol = cho_solve((L[:-1, :-1], True), A[:-1, -1])
    M = ZL.T @ ZL + np.eye(q)
    return crit, sol[:q], np.linalg.inv(M)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1|g1) + (1|g2) + (1|g3)",  # scalar crossed blocks
        "y ~ x + (x|g1) + (1|g2)",  # vector-valued first block
        "y ~ x + (1|g1) + (x|g2) + (1|g3)",  # vector-valued dense block
        "y ~ x + (1|g1) + (x|g4)",  # the largest block is lme4's second term
    ],
)
@pytest.mark.parametrize("reml", [True, False])
def test_blocked_algebra_equals_dense(formula, reml):
    design = blm.Model(formula, _simulated()).design
    blocked = BlockedDeviance(design, reml=reml)
    dense = DenseDeviance(design, reml=reml)
    # the blocked gradient: one term, or scalar terms in block 2 (reml.pairs)
    assert dense.has_gradient and blocked.has_gradient == blocked.b2.scalar
    rng = np.random.default_rng(0)
    theta = design.theta_start + rng.uniform(0.1, 0.9, len(design.theta_start))
    crit, u, V = _dense(design, theta, reml)
    assert blocked.objective(blocked.factor(theta)) == pytest.approx(crit, rel=1e-11)
    assert blocked(theta) == pytest.approx(crit, rel=1e-11)
    assert dense(theta) == pytest.approx(crit, rel=1e-11)
    # both paths report the same solution at θ
    r_blocked, r_dense = blocked.solution(theta), dense.solution(theta)
    for key in ("fval", "beta", "r2", "Rx", "u"):
        np.testing.assert_allclose(
            getattr(r_blocked, key), getattr(r_dense, key), rtol=1e-9, atol=1e-12
        )
    for vb, vd in zip(r_blocked.V, r_dense.V, strict=True):
        np.testing.assert_allclose(vb, vd, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r_dense.u, u, rtol=1e-9, atol=1e-12)
    # û and the conditional variance blocks at the optimum
    fit = blm.Model(formula, _simulated()).fit_reml(reml=reml)
    crit, u, V = _dense(design, fit.theta.to_numpy(), reml)
    assert (fit.reml_criterion if reml else fit.deviance) == pytest.approx(crit, rel=1e-11)
    np.testing.assert_allclose(fit.u, u, atol=1e-8 * np.abs(u).max())
    np.testing.assert_allclose(fit.b, fit.Lambda @ u, atol=1e-8 * np.abs(u).max())
    LVL = fit.Lambda @ V @ fit.Lambda.T
    sd = fit.sigma * np.sqrt(np.clip(np.diag(LVL), 0, None))
    got = np.concatenate(
        [fit.conditional_sd[t.factor][list(t.cnames)].to_numpy().ravel() for t in design.terms]
    )
    np.testing.assert_allclose(got, sd, rtol=1e-8)


# --------------------------------------------------------------------------------------
# Prediction, warnings
# --------------------------------------------------------------------------------------


def test_predict(sleep_fit):
    data = blm.load_dataset("sleepstudy")
    np.testing.assert_allclose(sleep_fit.predict(data), sleep_fit.fitted, rtol=1e-12)
    np.testing.assert_allclose(sleep_fit.predict(), sleep_fit.fitted)
    new = pd.DataFrame({"Days": [0.0, 3.0, 5.0], "Subject": ["308", "new", "308"]})
    beta = sleep_fit.fixef.to_numpy()
    b308 = sleep_fit.ranef["Subject"].loc["308"].to_numpy()
    expected = [
        beta[0] + b308[0],
        beta[0] + 3 * beta[1],
        beta[0] + b308[0] + 5 * (beta[1] + b308[1]),
    ]
    np.testing.assert_allclose(sleep_fit.predict(new), expected, rtol=1e-12)
    np.testing.assert_allclose(
        sleep_fit.predict(new, random_effects=False), beta[0] + beta[1] * new["Days"], rtol=1e-12
    )
    with pytest.raises(DataError, match="Days"):
        sleep_fit.predict(pd.DataFrame({"Subject": ["308"]}))


def test_singular_fit_warns():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(list("abcdef"), 5), "y": rng.normal(size=30)})
    df["y"] += 5.0 - df.groupby("g")["y"].transform("mean")  # no between-group variation
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit"):
        fit = blm.lmer("y ~ 1 + (1|g)", df)
    assert fit.is_singular and fit.theta.iloc[0] < 1e-5
    assert fit.conditional_sd["g"].to_numpy().max() < 1e-3 * fit.sigma
    assert fit.fixef.iloc[0] == pytest.approx(5.0)
    assert "boundary (singular) fit: see help('isSingular')" in fit.summary()


def test_rank_deficient_fixed_effects_are_dropped(reference_fits):
    data = blm.load_dataset("sleepstudy").assign(Days2=lambda d: 2.0 * d["Days"])
    with pytest.warns(DataWarning, match="rank deficient"):
        fit = blm.lmer("Reaction ~ Days + Days2 + (1|Subject)", data)
    ref, ss = reference_fits["ss_int"]
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    np.testing.assert_allclose(fit.fixef, ss.fixef, rtol=1e-10)
    assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-9)


def test_no_warnings_on_clean_fits(sleep_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blm.lmer("Reaction ~ Days + (Days|Subject)", blm.load_dataset("sleepstudy"))
    assert sleep_fit.optinfo["n_evals"] > 0 and sleep_fit.optinfo["messages"] == []


def test_blocked_path_fits_like_the_dense_path(reference_fits, monkeypatch):
    """Large models optimise on the blocked factor: force it on the crossed Penicillin."""
    import bayeslmm.reml.fit as fit_module

    ref, dense = reference_fits["penicillin"]
    monkeypatch.setattr(fit_module, "DENSE_MAX", 0)
    model = blm.Model(ref["formula"], blm.load_dataset(ref["dataset"]))
    assert isinstance(make_deviance(model.design), BlockedDeviance)
    blocked = model.fit_reml()
    assert blocked.reml_criterion == pytest.approx(dense.reml_criterion, rel=1e-9)
    np.testing.assert_allclose(blocked.theta, dense.theta, rtol=1e-4)
    np.testing.assert_allclose(blocked.fixef, dense.fixef, rtol=1e-8)


# --------------------------------------------------------------------------------------
# The exact gradient and the optimizers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula, dense",
    [
        ("y ~ x + (1|g1) + (1|g2) + (1|g3)", True),
        ("y ~ x + (x|g1) + (1|g2)", True),
        ("y ~ x + (1|g1) + (x|g2) + (1|g3)", True),
        ("y ~ x + (x||g2)", True),
        ("y ~ x + (x|g1)", True),
        ("y ~ x + (x|g1)", False),  # one term: the blocked gradient
        ("y ~ x + (1|g4)", False),
        ("y ~ x + (1 + x + I(x**2)|g2)", False),
    ],
)
@pytest.mark.parametrize("reml", [True, False])
def test_exact_gradient_matches_finite_differences(formula, dense, reml):
    design = blm.Model(formula, _simulated()).design
    dev = (DenseDeviance if dense else BlockedDeviance)(design, reml=reml)
    assert dev.has_gradient
    rng = np.random.default_rng(1)
    theta = np.maximum(design.theta_start + rng.uniform(-0.4, 0.9, len(design.theta_start)), 0)
    f, g = dev.value_and_grad(theta)
    assert f == pytest.approx(dev(theta), rel=1e-12)
    h = 1e-6
    numeric = [(dev(theta + h * e) - dev(theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())


def test_bobyqa_fallback_fits_like_the_quasi_newton_path(reference_fits, monkeypatch):
    """Where BFGS gives up, lme4's BOBYQA path gives the same fit."""
    ref, bfgs = reference_fits["ss_slope"]
    assert bfgs.optinfo["optimizer"] == "BFGS (exact gradient)"
    monkeypatch.setattr(optimize, "quasi_newton", lambda *args: None)
    bobyqa = blm.lmer(ref["formula"], blm.load_dataset(ref["dataset"]))
    assert bobyqa.optinfo["optimizer"] == "nloptwrap (NLopt LN_BOBYQA)"
    assert bobyqa.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-9)
    np.testing.assert_allclose(bobyqa.theta, bfgs.theta, rtol=1e-4)
    np.testing.assert_allclose(bobyqa.fixef, bfgs.fixef, rtol=1e-7)


def test_convergence_check_flags_a_point_that_is_not_an_optimum(sleep_fit):
    """lme4's checkConv on the exact gradient agrees with its finite-difference version."""
    design = sleep_fit.design
    dev = make_deviance(design)
    theta = np.array([0.9, 0.05, 0.3])  # near the optimum (0.967, 0.015, 0.231), not at it
    f, g = dev.value_and_grad(theta)
    finite = optimize.check_convergence(dev, theta, f)  # lme4's deriv12
    exact = optimize.check_convergence(dev, theta, f, (g, optimize.hessian(dev.gradient, theta, g)))
    assert len(exact) == len(finite) == 1
    assert exact[0].startswith("Model failed to converge with max|grad| = ")
    grad = [float(m.split("= ")[1].split(" ")[0]) for m in (exact[0], finite[0])]
    assert grad[0] == pytest.approx(grad[1], rel=1e-4) and grad[0] > 1
    theta_hat = sleep_fit.theta.to_numpy()
    f, g = dev.value_and_grad(theta_hat)
    assert np.abs(g).max() < 1e-3
    derivs = (g, optimize.hessian(dev.gradient, theta_hat, g))
    assert optimize.check_convergence(dev, theta_hat, f, derivs) == []


@pytest.mark.parametrize("seed", range(4))
def test_bfgs_reaches_bobyqas_optimum_on_singular_and_regular_fits(monkeypatch, seed):
    """No boundary traps: for a scalar term θ = 0 is always stationary, and a bounded
    Newton-type search that steps onto it stays there; BFGS searches θ unbounded (the
    criterion depends on TTᵀ only) and must never end above lme4's BOBYQA path."""
    rng = np.random.default_rng(seed)
    formulas = [
        "y ~ x + (x|g)",
        "y ~ x + (1|g) + (1|h)",
        "y ~ x + (x||g)",
        "y ~ x + (x|g) + (1|h)",
        "y ~ 1 + (1|g/h)",
        "y ~ x + (1 + x + z|g)",
        "y ~ x + (0 + x|g) + (1|h)",
    ]
    fits = []
    for formula in formulas:
        n, ng, nh = int(rng.integers(40, 300)), int(rng.integers(3, 15)), int(rng.integers(2, 6))
        g, h = rng.integers(0, ng, n), rng.integers(0, nh, n)
        x, z = rng.normal(size=n), rng.normal(size=n)
        sd = rng.choice([0.0, 0.05, 0.5, 2.0], size=3)  # zeros give singular fits
        y = (
            1
            + x
            + rng.normal(0, sd[0], ng)[g]
            + rng.normal(0, sd[1], ng)[g] * x
            + rng.normal(0, sd[2], nh)[h]
            + rng.normal(size=n)
        )
        data = pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{v}" for v in g], "h": h})
        fits.append((formula, data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SingularFitWarning, blm.ConvergenceWarning))
        bfgs = [blm.lmer(f, d) for f, d in fits]
        monkeypatch.setattr(optimize, "quasi_newton", lambda *args: None)
        bobyqa = [blm.lmer(f, d) for f, d in fits]
    for a, b in zip(bfgs, bobyqa, strict=True):
        assert a.optinfo["optimizer"] == "BFGS (exact gradient)"
        assert a.reml_criterion <= b.reml_criterion + 1e-9 * abs(b.reml_criterion)
        assert (a.theta.to_numpy()[a.design.theta_lower == 0] >= 0).all()
    assert sum(f.is_singular for f in bfgs) >= 2  # the boundary cases are exercised

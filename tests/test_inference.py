"""confint, fixef_table, bootstrap and anova against lme4 1.1-31 / lmerTest 3.1-3
(tests/reference/inference/lme4_inference.json), closed forms of balanced designs and
independent computations (the package's own criterion with another optimiser, pbkrtest's
n x n algebra, finite differences)."""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference
from scipy import optimize, stats

import bayeslmm as blm
import bayeslmm.reml.bootstrap as boot_module
from bayeslmm.reml import inference
from bayeslmm.reml.bootstrap import percentile
from bayeslmm.reml.ddf import (
    Marginal,
    kenward_roger,
    lb_ddf,
    satterthwaite_df,
    varpar_hessian,
    vcov_jacobian,
)
from bayeslmm.reml.dense import DenseDeviance
from bayeslmm.reml.fit import fit_lmer
from bayeslmm.reml.inference import InferenceError, MLRefitWarning
from bayeslmm.reml.profile import _SCALES, _root

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from validation.inference_errors import lme4_labels  # noqa: E402

REFERENCE = Path(__file__).parent / "reference"
REF = json.loads((REFERENCE / "inference" / "lme4_inference.json").read_text())
CASES = ["ss_slope", "ss_int", "dyestuff", "penicillin", "pastes"]
Z975 = float(stats.norm.ppf(0.975))
_FITS: dict[tuple[str, bool], blm.LmerFit] = {}


def _lmer(formula: str, data: pd.DataFrame, reml: bool = True) -> blm.LmerFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return blm.lmer(formula, data, reml)


def _fit(case: str, reml: bool = True) -> blm.LmerFit:
    if (case, reml) not in _FITS:
        ref = REF[case]
        _FITS[case, reml] = _lmer(ref["formula"], blm.load_dataset(ref["dataset"]), reml)
    return _FITS[case, reml]


def _reference_table(case: str, method: str) -> pd.DataFrame:
    r = REF[case][method]
    labels = lme4_labels(_fit(case).design)
    lower = [np.nan if v == "NA" else v for v in r["lower"]]
    upper = [np.nan if v == "NA" else v for v in r["upper"]]
    return pd.DataFrame(
        {"lower": lower, "upper": upper}, index=[labels[n] for n in r["names"]], dtype=float
    )


def _as_array(v) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, dtype=float))


# --------------------------------------------------------------------------------------
# Simulated designs: uncentred correlated slopes, a between-subject factor interacting
# with a slope, nested factors, singular fits
# --------------------------------------------------------------------------------------


def orthodont_like(seed: int = 1) -> pd.DataFrame:
    """27 subjects (16 boys, 11 girls) x ages 8, 10, 12, 14 from Orthodont's REML fit:
    β = (17.7, 0.66, −2.3), sd = (2.4, 0.18), ρ = −0.61, σ = 1.31 (age uncentred)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[2.4**2, -0.61 * 2.4 * 0.18], [-0.61 * 2.4 * 0.18, 0.18**2]])
    rows = []
    for s in range(27):
        b = rng.multivariate_normal([0.0, 0.0], cov)
        female = s >= 16
        for age in (8.0, 10.0, 12.0, 14.0):
            y = 17.7 + b[0] + (0.66 + b[1]) * age - 2.3 * female + rng.normal(0, 1.31)
            rows.append((f"S{s:02d}", age, "Female" if female else "Male", y))
    data = pd.DataFrame(rows, columns=["Subject", "age", "Sex", "distance"])
    data["Sex"] = pd.Categorical(data["Sex"], categories=["Male", "Female"])
    return data


def sleepstudy_groups(seed: int = 3) -> pd.DataFrame:
    """sleepstudy with a simulated between-subject factor: 9 subjects in group A, 9 in B."""
    data = blm.load_dataset("sleepstudy")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(["A"] * 9 + ["B"] * 9)
    group = dict(zip(data["Subject"].cat.categories, labels, strict=True))
    data["group"] = data["Subject"].astype(str).map(group)
    return data


def singular_data(seed: int = 2) -> pd.DataFrame:
    """8 groups x 6 rows without any group effect: (1 | g) fits a zero SD, (x | g) ρ = −1."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 6)
    x = np.tile(np.arange(6.0), 8)
    return pd.DataFrame({"y": 1 + 0.5 * x + rng.normal(0, 1, len(g)), "x": x, "g": g.astype(str)})


OTHER = {
    "orthodont": ("distance ~ age + Sex + (age | Subject)", orthodont_like),
    "groups": ("Reaction ~ Days * group + (Days | Subject)", sleepstudy_groups),
    "nested": ("strength ~ 1 + (1 | batch/cask)", lambda: blm.load_dataset("pastes")),
    "singular_int": ("y ~ x + (1 | g)", singular_data),
    "singular_slope": ("y ~ x + (x | g)", singular_data),
}


def _other(name: str, reml: bool = True) -> blm.LmerFit:
    key = (f"other:{name}", reml)
    if key not in _FITS:
        formula, data = OTHER[name]
        _FITS[key] = _lmer(formula, data(), reml)
    return _FITS[key]


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES + [f"other:{n}" for n in OTHER])
def test_rows_are_compares_labels(name):
    fit = _other(name[6:]) if name.startswith("other:") else _fit(name)
    labels = list(blm.compare(fit, None, reml_ci=None).index)
    assert list(fit.confint("wald").index) == labels
    assert [t.label for t in inference.targets(fit.design)] == labels
    assert list(fit.bootstrap(nsim=1, seed=0).columns) == labels


# --------------------------------------------------------------------------------------
# Profile intervals
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_profile_matches_lme4(case):
    """Every end within 0.5 % of lme4's interval width (the bar); in fact within 1.1e-4
    (the upper end of pastes' cask:batch SD) and below 3e-5 elsewhere: lme4 interpolates a
    spline through its profile, we solve for the root."""
    ref = _reference_table(case, "profile")
    ci = _fit(case).confint()
    assert list(ci.columns) == ["lower", "upper"]
    assert set(ci.index) == set(ref.index)
    ci = ci.loc[ref.index]
    width = (ref["upper"] - ref["lower"]).to_numpy()[:, None]
    err = np.abs(ci.to_numpy() - ref.to_numpy()) / width
    assert err.max() < (1.2e-4 if case == "pastes" else 3e-5), err


def test_profile_ends_of_sleepstudy():
    """The numbers themselves (lme4: 14.381, 37.716 / −0.4815, 0.6850 / ...)."""
    ci = _fit("ss_slope").confint()
    expected = {
        "sd_Subject[(Intercept)]": (14.3814181607732, 37.7159953182866),
        "corr_Subject[(Intercept), Days]": (-0.481500758280773, 0.684986273295485),
        "sd_Subject[Days]": (3.8011640532591, 8.75338075305527),
        "sigma": (22.8982668820808, 28.8579965114253),
        "fixef[(Intercept)]": (237.680695505234, 265.129514680174),
        "fixef[Days]": (7.35865327511699, 13.5759187517082),
    }
    for label, (lo, hi) in expected.items():
        assert ci.loc[label].to_numpy() == pytest.approx([lo, hi], abs=3e-5 * (hi - lo))


def test_profile_pastes_batch_sd_reaches_zero():
    """lme4: the batch SD's profile stays below z down to 0, so its lower end is 0."""
    ci = _fit("pastes").confint()
    assert ci.loc["sd_batch[(Intercept)]", "lower"] == 0.0
    assert ci.loc["sd_batch[(Intercept)]", "upper"] == pytest.approx(2.94659109690393, rel=2e-4)


def test_root_finder_stops_where_the_profile_meets_its_target():
    """A profile that reaches ζ = z to within 1e-6 without crossing it ends there (the
    sleepstudy coverage run met one at replicate 106: the secant step then fell below t's
    resolution)."""

    class Flat:  # ζ(x) = z·(1 − 1e-8) beyond x̂ = 1: the target met, never crossed
        x_hat, se, probe = 1.0, 0.5, 0.5

        def zeta(self, x: float) -> float:
            return Z975 * (1 - 1e-8) if x > 1 else 0.0

    end = _root(Flat(), _SCALES["sd"], Z975)  # type: ignore[arg-type]
    assert end == pytest.approx(math.exp(Z975 * 0.5), rel=1e-6)  # the first step, on log sd


def test_profile_same_for_reml_and_ml_fits():
    """lme4 profiles the ML deviance whatever the fit (devfun2 calls refitML)."""
    a, b = _fit("ss_slope").confint(), _fit("ss_slope", reml=False).confint()
    width = (a["upper"] - a["lower"]).to_numpy()[:, None]
    assert np.abs(a.to_numpy() - b.to_numpy()).max() / width.min() < 1e-5


def test_profile_level_and_parm():
    fit = _fit("ss_int")
    wide, narrow = fit.confint(level=0.99), fit.confint(level=0.8)
    assert ((wide["lower"] < narrow["lower"]) & (wide["upper"] > narrow["upper"])).all()
    one = fit.confint(parm="sigma")
    assert list(one.index) == ["sigma"]
    assert one.loc["sigma"].to_numpy() == pytest.approx(
        fit.confint().loc["sigma"].to_numpy(), rel=1e-6
    )
    two = fit.confint(parm=["sigma", "fixef[Days]"])
    assert list(two.index) == ["fixef[Days]", "sigma"]  # table order


def _ml_deviance(design: blm.Design):
    """D(θ, σ) = log|Ω| + r²/σ² + n log(2πσ²) from the fit's own criterion (``solution``:
    the profiled ML deviance and r² give log|Ω|)."""
    dev = DenseDeviance(design, reml=False)
    n = design.nobs

    def D(theta: np.ndarray, sigma: float) -> float:
        sol = dev.solution(theta)
        logdet = sol.fval - n * (1 + math.log(2 * math.pi * sol.r2 / n))
        return logdet + sol.r2 / sigma**2 + n * math.log(2 * math.pi * sigma**2)

    return D


@pytest.mark.parametrize("case", ["ss_int", "dyestuff", "penicillin", "pastes"])
def test_profile_ends_solve_the_likelihood_ratio_equation(case):
    """Independent check of every end: the minimum over the other parameters of the ML
    deviance (Nelder–Mead on log SDs and log σ; for β_j the package's ML fit with the
    offset x·X_j) is D̂ + z² at an interior end, and below it at a bound."""
    fit = _fit(case)
    design = fit.design
    D = _ml_deviance(design)
    ml = fit_lmer(design, reml=False)
    assert ml.deviance is not None
    base = ml.deviance
    start = np.log(np.r_[ml.theta.to_numpy() * ml.sigma, ml.sigma])
    ci = fit.confint()
    sds = [t.label for t in inference.targets(design) if t.kind == "sd"]
    for label, (lo, hi) in ci.iterrows():
        for end in (lo, hi):
            if label.startswith("fixef["):
                j = design.fixef_names.index(label[6:-1])
                keep = [c for c in range(design.p) if c != j]
                reduced = replace(
                    design,
                    y=design.y - end * design.X[:, j],
                    X=design.X[:, keep],
                    fixef_names=tuple(design.fixef_names[c] for c in keep),
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fmin = fit_lmer(reduced, reml=False).deviance
                assert fmin is not None
            else:  # natural parameters: log SDs of every (scalar) term and log σ
                w = sds.index(label) if label != "sigma" else len(sds)
                free = [i for i in range(len(start)) if i != w]

                def f(v, end=end, w=w, free=free):
                    x = start.copy()
                    x[free] = v
                    nat = np.exp(x)
                    nat[w] = end
                    return D(nat[:-1] / nat[-1], nat[-1])

                res = optimize.minimize(
                    f,
                    start[free],
                    method="Nelder-Mead",
                    options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 5000},
                )
                fmin = res.fun
            if end == 0.0:  # the bound: the profile stays below z² down to it
                assert fmin - base < Z975**2
            else:
                assert fmin - base == pytest.approx(Z975**2, abs=2e-4), (label, end)


@pytest.mark.parametrize("case", CASES)
def test_profile_takes_under_a_tenth_of_lme4s_time(case):
    """lme4's ``confint(m)`` times are the references' (same kind of 2-core machine)."""
    fit = _fit(case)
    fit.confint()  # warm: first calls
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fit.confint()
        times.append(time.perf_counter() - start)
    assert statistics.median(times) <= REF[case]["profile_seconds"] / 10


# --------------------------------------------------------------------------------------
# Wald intervals
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_wald_is_lme4s(case):
    fit = _fit(case)
    ci = fit.confint("wald")
    beta, se = fit.fixef.to_numpy(), fit.fixef_se.to_numpy()
    fixed = [f"fixef[{n}]" for n in fit.fixef.index]
    assert ci.loc[fixed, "lower"].to_numpy() == pytest.approx(beta - Z975 * se, rel=1e-15)
    assert ci.loc[fixed, "upper"].to_numpy() == pytest.approx(beta + Z975 * se, rel=1e-15)
    assert ci.drop(fixed).isna().all().all()  # NA for variance parameters, as lme4
    ref = _reference_table(case, "wald").loc[fixed]
    width = (ref["upper"] - ref["lower"]).to_numpy()[:, None]
    # the SEs differ from lme4's by up to 1.4e-5 (penicillin: θ̂ 1e-4 apart, see below)
    assert (np.abs(ci.loc[fixed].to_numpy() - ref.to_numpy()) / width).max() < 2e-5


def test_wald_level():
    fit = _fit("ss_slope")
    ci = fit.confint("wald", level=0.9)
    z = stats.norm.ppf(0.95)
    assert ci.loc["fixef[Days]", "upper"] == pytest.approx(
        fit.fixef["Days"] + z * fit.fixef_se["Days"], rel=1e-14
    )


# --------------------------------------------------------------------------------------
# Satterthwaite and Kenward-Roger
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_satterthwaite_matches_lmerTest(case):
    """df within 1e-4 relative (the bar: 1 %), p within 1e-3 relative, except
    penicillin's p (1.2e-3): lme4's optimum there sits 1e-4 off the REML optimum in θ (its
    REML criterion is 8e-9 above ours), which moves df by 9e-5 relative and, at t = 28,
    p by 1.2e-3.  At lme4's θ̂ the df agree to 3e-8 (test_satterthwaite_at_lme4s_theta):
    the difference is the optimum's, not the algorithm's."""
    ref = REF[case]["satterthwaite"]
    tab = _fit(case).fixef_table("satterthwaite")
    assert list(tab.columns) == ["estimate", "se", "df", "t", "p"]
    assert list(tab.index) == list(_fit(case).fixef.index)
    assert tab["df"].to_numpy() == pytest.approx(_as_array(ref["df"]), rel=1e-4)
    assert tab["t"].to_numpy() == pytest.approx(_as_array(ref["t"]), rel=5e-5)
    assert tab["p"].to_numpy() == pytest.approx(
        _as_array(ref["p"]), rel=1.3e-3 if case == "penicillin" else 1e-3
    )


def _marginal_at(fit: blm.LmerFit, theta) -> Marginal:
    return Marginal(DenseDeviance(fit.design), np.asarray(theta, dtype=float))


@pytest.mark.parametrize("case", CASES)
def test_satterthwaite_at_lme4s_theta(case):
    """The algorithm itself: at lme4's (θ̂, σ̂), lmerTest's df to 1e-7 relative."""
    lme4 = load_reference(case)
    mg = _marginal_at(_fit(case), lme4["theta"])
    sigma = lme4["sigma"]
    df = satterthwaite_df(mg, sigma, True, sigma**2 * mg.Minv)
    assert df == pytest.approx(_as_array(REF[case]["satterthwaite"]["df"]), rel=1e-7)


def test_satterthwaite_closed_forms():
    """Balanced designs: the one-way intercept has df = a − 1 (Dyestuff: 5); a
    within-subject slope N − 1 (sleepstudy 17, Orthodont-like 26); a between-subject
    factor N − 2 (Orthodont-like Sex: 25; sleepstudy x group: 16)."""
    assert _fit("dyestuff").fixef_table()["df"].iloc[0] == pytest.approx(5, rel=1e-7)
    assert _fit("ss_slope").fixef_table()["df"].to_numpy() == pytest.approx([17, 17], rel=2e-6)
    ortho = _other("orthodont").fixef_table()
    assert ortho.loc[["age", "SexFemale"], "df"].to_numpy() == pytest.approx([26, 25], rel=1e-6)
    groups = _other("groups").fixef_table()
    assert list(groups.index) == ["(Intercept)", "Days", "groupB", "Days:groupB"]
    assert groups["df"].to_numpy() == pytest.approx([16] * 4, rel=1e-6)
    kr = _other("orthodont").fixef_table("kenward-roger")
    assert kr.loc[["age", "SexFemale"], "df"].to_numpy() == pytest.approx([26, 25], rel=1e-9)


def _reml_deviance(design: blm.Design):
    """lmerTest's devfun_vp, REML: D(θ, σ) and diag vcov(β̂) from the fit's ``solution``."""
    dev = DenseDeviance(design, reml=True)
    n, p = design.nobs, design.p

    def D(v: np.ndarray) -> float:
        sol = dev.solution(v[:-1])
        logdet = sol.fval - (n - p) * (1 + math.log(2 * math.pi * sol.r2 / (n - p)))
        return logdet + sol.r2 / v[-1] ** 2 + (n - p) * math.log(2 * math.pi * v[-1] ** 2)

    def vcov(v: np.ndarray) -> np.ndarray:
        Ri = np.linalg.inv(dev.solution(v[:-1]).Rx)
        return v[-1] ** 2 * np.diag(Ri.T @ Ri)

    return D, vcov


@pytest.mark.parametrize("case", ["ss_slope", "penicillin", "pastes"])
def test_varpar_hessian_and_jacobian_are_exact(case):
    """The analytic Hessian of the deviance and Jacobian of vcov(β̂) in (θ, σ) against
    central differences of the fit's own REML criterion and vcov."""
    fit = _fit(case)
    v0 = np.r_[fit.theta.to_numpy(), fit.sigma]
    D, vcov = _reml_deviance(fit.design)
    h = 3e-4 * np.maximum(np.abs(v0), 1.0)
    m = len(v0)
    Hfd = np.empty((m, m))
    for i in range(m):
        for j in range(m):
            e_i, e_j = np.eye(m)[i] * h[i], np.eye(m)[j] * h[j]
            Hfd[i, j] = (
                D(v0 + e_i + e_j) - D(v0 + e_i - e_j) - D(v0 - e_i + e_j) + D(v0 - e_i - e_j)
            ) / (4 * h[i] * h[j])
    mg = _marginal_at(fit, v0[:-1])
    H = varpar_hessian(mg, fit.sigma, True)
    assert pytest.approx(Hfd, rel=1e-5, abs=1e-6 * np.abs(H).max()) == H
    Jfd = np.array(
        [
            (vcov(v0 + np.eye(m)[i] * h[i]) - vcov(v0 - np.eye(m)[i] * h[i])) / (2 * h[i])
            for i in range(m)
        ]
    )
    J = vcov_jacobian(mg, fit.sigma)
    assert pytest.approx(Jfd, rel=1e-6, abs=1e-9 * np.abs(J).max()) == J


@pytest.mark.parametrize("case", CASES)
def test_kenward_roger_matches_lmerTest(case):
    ref = REF[case]["kenward_roger"]
    tab = _fit(case).fixef_table("kenward-roger")
    assert tab["df"].to_numpy() == pytest.approx(_as_array(ref["df"]), rel=1e-5)
    assert tab["p"].to_numpy() == pytest.approx(_as_array(ref["p"]), rel=1e-3)


def _kr_dense(fit: blm.LmerFit) -> tuple[np.ndarray, list, np.ndarray]:
    """pbkrtest's vcovAdj as written, with n x n matrices: Σ = Σ_r γ_r G_r + σ²I."""
    d = fit.design
    theta, s2 = fit.theta.to_numpy(), fit.sigma**2
    G, gamma = [], []
    for t, sl in zip(d.terms, d.theta_slices, strict=True):
        k = t.nc
        T = np.zeros((k, k))
        rows, cols = np.triu_indices(k)
        T[cols, rows] = theta[sl]
        S = s2 * T @ T.T
        Zt = t.Z().toarray()
        for c in range(k):
            for r in range(c, k):
                E = np.zeros((k, k))
                E[r, c] = E[c, r] = 1
                G.append(Zt @ np.kron(np.eye(t.nl), E) @ Zt.T)
                gamma.append(S[r, c])
    G.append(np.eye(d.nobs))
    gamma.append(s2)
    Sigma = sum(g * Gr for g, Gr in zip(gamma, G, strict=True))
    Si = np.linalg.inv(Sigma)
    X = d.X
    Phi = fit.vcov.to_numpy()
    H = [Gr @ Si for Gr in G]
    HX = [h @ X for h in H]
    m = len(G)
    P = [-(o.T @ Si @ X) for o in HX]
    Q = {(r, s): HX[r].T @ Si @ HX[s] for r in range(m) for s in range(m)}
    K = np.array([[np.trace(H[r] @ H[s]) for s in range(m)] for r in range(m)])
    info = np.array(
        [
            [
                K[r, s] - 2 * np.sum(Phi * Q[r, s]) + np.trace(Phi @ P[r] @ Phi @ P[s])
                for s in range(m)
            ]
            for r in range(m)
        ]
    )
    W = 2 * np.linalg.inv(info)
    U = sum(W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s]) for r in range(m) for s in range(m))
    return Phi + 2 * Phi @ U @ Phi, P, W


@pytest.mark.parametrize("case", ["dyestuff", "ss_slope", "penicillin"])
def test_kenward_roger_q_space_equals_pbkrtests_n_space_algebra(case):
    fit = _fit(case)
    PhiA, P, W = _kr_dense(fit)
    mg = _marginal_at(fit, fit.theta.to_numpy())
    ours, df = kenward_roger(mg, fit.sigma, fit.vcov.to_numpy())
    assert ours == pytest.approx(PhiA, rel=1e-8, abs=1e-12 * np.abs(PhiA).max())
    p = fit.design.p
    dense_df = [lb_ddf(np.eye(p)[j], fit.vcov.to_numpy(), P, W) for j in range(p)]
    assert df == pytest.approx(dense_df, rel=1e-8)


def test_kenward_roger_needs_a_reml_fit():
    with pytest.raises(InferenceError, match="ddf='kenward-roger' needs a REML fit"):
        _fit("ss_slope", reml=False).fixef_table("kenward-roger")


def test_satterthwaite_of_an_ml_fit_uses_the_ml_deviance():
    """lmerTest's devfun_vp with reml = FALSE: the Hessian of the ML deviance."""
    fit = _fit("ss_slope", reml=False)
    H = varpar_hessian(_marginal_at(fit, fit.theta.to_numpy()), fit.sigma, False)
    D = _ml_deviance(fit.design)
    v0 = np.r_[fit.theta.to_numpy(), fit.sigma]
    h = 1e-4
    e = h * np.eye(len(v0))[0]

    def Dv(v):
        return D(v[:-1], v[-1])

    fd = (Dv(v0 + 2 * e) - 2 * Dv(v0) + Dv(v0 - 2 * e)) / (4 * h * h)
    assert H[0, 0] == pytest.approx(fd, rel=1e-5)
    tab = fit.fixef_table()
    assert (tab["df"] > 16).all() and (tab["df"] < 18.5).all()


def test_summary_with_satterthwaite_is_lmerTests():
    """lmerTest's printed table for sleepstudy (its documentation's example), and its
    header; lme4's summary is unchanged without ``ddf``."""
    fit = _fit("ss_slope")
    text = fit.summary(ddf="satterthwaite")
    assert text.splitlines()[0] == (
        "Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmerModLmerTest']"
    )
    table = text.split("Fixed effects:\n")[1].split("\n\n")[0]
    assert table == (
        "            Estimate Std. Error      df t value Pr(>|t|)    \n"
        "(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***\n"
        "Days          10.467      1.546  17.000   6.771 3.26e-06 ***\n"
        "---\n"
        "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"
    )
    assert text.endswith("Correlation of Fixed Effects:\n     (Intr)\nDays -0.138")
    plain = fit.summary()
    assert plain.splitlines()[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert "Pr(>|t|)" not in plain
    kr = fit.summary(ddf="Kenward-Roger")
    assert "t-tests use Kenward-Roger's method" in kr.splitlines()[0]


def test_summary_follows_printCoefmats_rules():
    """R's printCoefmat (digits 4) by hand: estimate, SE and df share their decimals
    (enough for 4 significant digits of the smallest); p below machine epsilon prints
    "< 2e-16", below 1e-3 in scientific notation, else fixed; no stars or legend when
    every p >= 0.1."""
    text = _other("orthodont").summary(ddf="satterthwaite")
    assert text.split("Fixed effects:\n")[1].split("\n\n")[0].splitlines()[:4] == [
        "            Estimate Std. Error       df t value Pr(>|t|)    ",
        "(Intercept) 17.14911    0.84426 30.04753  20.313  < 2e-16 ***",
        "age          0.68553    0.06778 26.00000  10.114 1.67e-10 ***",
        "SexFemale   -2.77931    0.67749 25.00001  -4.102 3.81e-04 ***",
    ]
    data = singular_data()
    data["z"] = np.sin(np.arange(len(data)))  # unrelated to y
    data["y"] -= data["y"].mean()
    text = _lmer("y ~ z + (1 | g)", data).summary(ddf="satterthwaite")
    assert text.split("Fixed effects:\n")[1].split("\n\n")[0] == (
        "             Estimate Std. Error        df t value Pr(>|t|)\n"
        "(Intercept) -0.003209   0.201515 46.000000  -0.016    0.987\n"
        "z            0.081706   0.287713 46.000000   0.284    0.778"
    )


# --------------------------------------------------------------------------------------
# Parametric bootstrap
# --------------------------------------------------------------------------------------


def test_boot_is_reproducible_with_a_seed():
    fit = _fit("dyestuff")
    a = fit.bootstrap(nsim=40, seed=7, progress=False)
    b = fit.bootstrap(nsim=40, seed=7, progress=False)
    c = fit.bootstrap(nsim=40, seed=8, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    boot = fit.confint("boot", nsim=40, seed=7)
    assert boot.equals(fit.confint("boot", nsim=40, seed=7))
    alpha = np.array([0.025, 0.975])
    assert boot.loc["sigma"].to_numpy() == pytest.approx(percentile(a["sigma"].to_numpy(), alpha))


def test_boot_refits_match_the_package_fit():
    """A refit on the reused cross-products equals a fresh fit of the same response, up to
    where the two optimisers stop (BFGS from θ̂ and from lme4's start, each when the
    predicted fall of the criterion is below 1e-10 of it: 1e-5 relative in σ)."""
    fit = _fit("ss_slope")
    draws = fit.bootstrap(nsim=3, seed=11, progress=False)
    design = fit.design
    rng = np.random.default_rng(11)  # the same draws as bootstrap(): u then e per replicate
    lam = fit.Lambda
    for s in range(3):
        u = rng.standard_normal(design.q)
        e = rng.standard_normal(design.nobs)
        y = design.X @ fit.fixef.to_numpy() + fit.sigma * (design.Z() @ (lam @ u) + e)
        ref = fit_lmer(replace(design, y=y), reml=True)
        assert draws.loc[s, "fixef[Days]"] == pytest.approx(ref.fixef["Days"], rel=1e-6)
        assert draws.loc[s, "sigma"] == pytest.approx(ref.sigma, rel=1e-5)
        sd = ref.varcorr["sdcor"].to_numpy()
        assert draws.loc[s, "sd_Subject[Days]"] == pytest.approx(sd[1], rel=1e-4)
        assert draws.loc[s, "corr_Subject[(Intercept), Days]"] == pytest.approx(sd[2], abs=1e-4)


def test_boot_distribution_has_the_wald_spread():
    """The refitted slopes' SD estimates SE(β̂_Days) (Monte Carlo error ~4 % at 400)."""
    fit = _fit("ss_int")
    draws = fit.bootstrap(nsim=400, seed=3, progress=False)
    assert draws["fixef[Days]"].std() == pytest.approx(fit.fixef_se["Days"], rel=0.12)
    assert draws["fixef[Days]"].mean() == pytest.approx(fit.fixef["Days"], abs=0.2 * 0.8)


def test_percentile_is_boots_norm_inter():
    t = np.arange(1.0, 501.0)[::-1]
    alpha = np.array([0.025, 0.975])
    rk = 501 * alpha  # 12.525, 488.475: interpolate on the normal scale
    out = percentile(t, alpha)
    for a, r, o in zip(alpha, rk, out, strict=True):
        k = int(r)
        q = stats.norm.ppf([a, k / 501, (k + 1) / 501])
        assert o == pytest.approx(k + (q[0] - q[1]) / (q[2] - q[1]), rel=1e-14)
    assert percentile(np.arange(1.0, 1000.0), alpha) == pytest.approx([25, 975])  # integer
    assert percentile(np.array([3.0, 1.0, np.nan]), alpha) == pytest.approx([1, 3])  # extremes


def test_progress_bar(capsys, monkeypatch):
    """A bar on stderr by default in a terminal or a notebook (bayeslmm.progress), or
    when asked."""
    fit = _fit("dyestuff")
    monkeypatch.setattr(boot_module, "interactive", lambda: False)
    fit.bootstrap(nsim=5, seed=1)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(boot_module, "interactive", lambda: True)
    fit.bootstrap(nsim=5, seed=1)
    err = capsys.readouterr().err
    assert err.startswith("\rbootstrap [") and re.search(r"\] 5/5, \d+\.\d s\n$", err)
    fit.bootstrap(nsim=5, seed=1, progress=False)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------
# Other designs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_designs(name):
    """Ordered intervals around the ML estimates inside the parameters' ranges; profile
    ≈ Wald for the fixed effects; the bootstrap roughly agrees with the profile."""
    fit, ml = _other(name), _other(name, reml=False)
    est = blm.compare(ml, None, reml_ci=None)["ml"]
    prof = fit.confint()
    wald = fit.confint("wald")
    boot = fit.confint("boot", nsim=200, seed=1)
    assert np.isfinite(prof.to_numpy()).all()
    assert (prof["lower"] <= prof["upper"]).all()
    assert ((prof["lower"] <= est + 1e-9) & (est - 1e-9 <= prof["upper"])).all()
    for t in inference.targets(fit.design):
        lo, hi = prof.loc[t.label]
        width = hi - lo
        if t.kind == "fixef":
            assert np.abs(wald.loc[t.label].to_numpy() - [lo, hi]).max() < 0.1 * width
            assert np.abs(boot.loc[t.label].to_numpy() - [lo, hi]).max() < 0.2 * width
        elif t.kind == "corr" and est[t.label] == -1.0:  # not identified: see below
            assert (lo, hi) == (-1.0, 1.0)
        elif est[t.label] > 1e-6:
            assert np.abs(boot.loc[t.label].to_numpy() - [lo, hi]).max() < 0.5 * width
        else:  # an SD estimated at 0: most refits are at 0 too
            assert boot.loc[t.label, "lower"] < 1e-6
        if t.kind == "sd":
            assert lo >= 0
        if t.kind == "corr":
            assert -1 <= lo <= hi <= 1


def test_singular_fits():
    """A zero SD: lower end 0, finite upper; ρ = −1 with an SD that can be 0 inside the
    region: the whole [−1, 1], as the profile over the other parameters allows."""
    ci = _other("singular_int").confint()
    lo, hi = ci.loc["sd_g[(Intercept)]"]
    assert lo == 0.0 and 0 < hi < 1
    fit = _other("singular_slope")
    assert fit.varcorr["sdcor"].iloc[2] == pytest.approx(-1.0)
    ci = fit.confint()
    assert tuple(ci.loc["corr_g[(Intercept), x]"]) == (-1.0, 1.0)
    assert ci.loc["sd_g[x]", "lower"] == 0.0


def test_model_without_fixed_effects():
    """ML fit of y ~ 0 + (1 | g): no fixed-effect rows, an empty t-table; Dyestuff centred
    at its (balanced) mean has the variance profile of the model with the intercept."""
    data = blm.load_dataset("dyestuff")
    data["Yield"] = data["Yield"] - data["Yield"].mean()
    fit = _lmer("Yield ~ 0 + (1 | Batch)", data, reml=False)
    ci = fit.confint()
    assert list(ci.index) == ["sd_Batch[(Intercept)]", "sigma"]
    ref = _fit("dyestuff").confint().loc[ci.index]
    assert ci.to_numpy() == pytest.approx(ref.to_numpy(), rel=1e-6)
    assert fit.fixef_table().empty


def test_dense_limit(monkeypatch):
    monkeypatch.setattr(inference, "DENSE_LIMIT", 10)
    fit = _fit("ss_slope")
    with pytest.raises(InferenceError, match=r"the profile .* q \+ p \+ 1 = 39 > 10"):
        fit.confint()
    with pytest.raises(InferenceError, match="the bootstrap"):
        fit.confint("boot", nsim=2)
    with pytest.raises(InferenceError, match="ddf='satterthwaite'"):
        fit.fixef_table()
    assert fit.confint("wald").loc["fixef[Days]"].notna().all()


def test_a_saved_fit_gives_the_same_intervals(tmp_path):
    fit = _fit("ss_int")
    fit.save(tmp_path / "fit.json")
    loaded = blm.load_fit(tmp_path / "fit.json")
    pd.testing.assert_frame_equal(loaded.confint(), fit.confint(), rtol=1e-9)
    pd.testing.assert_frame_equal(loaded.fixef_table(), fit.fixef_table(), rtol=1e-9)


# --------------------------------------------------------------------------------------
# anova
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_anova_matches_lme4(index):
    ref = REF["anova"][index]
    data = blm.load_dataset(ref["dataset"])
    f0, f1 = _lmer(ref["formula0"], data), _lmer(ref["formula1"], data)
    with pytest.warns(MLRefitWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        tab = blm.anova(f1, f0)  # rows come back in order of npar
    assert list(tab.index) == [ref["formula0"], ref["formula1"]]
    columns = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert list(tab.columns) == columns
    assert abs(tab["Chisq"].iloc[1] - ref["chisq"]) < 1e-9
    assert tab["Df"].iloc[1] == ref["df"]
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"], rel=1e-8)
    for col, key in [
        ("AIC", "aic"),
        ("BIC", "bic"),
        ("logLik", "loglik"),
        ("deviance", "deviance"),
    ]:
        assert tab[col].to_numpy() == pytest.approx(ref[key], rel=1e-11)
    assert np.isnan(tab["Chisq"].iloc[0]) and np.isnan(tab["Pr(>Chisq)"].iloc[0])


def test_anova_of_ml_fits_needs_no_refit():
    data = blm.load_dataset("sleepstudy")
    f0 = _lmer("Reaction ~ Days + (1 | Subject)", data, reml=False)
    f1 = _lmer("Reaction ~ Days + (Days | Subject)", data, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tab = blm.anova(f0, f1, names=["m0", "m1"])
    assert list(tab.index) == ["m0", "m1"]
    assert abs(tab["Chisq"].iloc[1] - REF["anova"][0]["chisq"]) < 1e-9


def test_anova_of_three_models_and_of_a_model_with_itself():
    data = blm.load_dataset("sleepstudy")
    fits = [
        _lmer(f, data)
        for f in (
            "Reaction ~ Days + (Days | Subject)",
            "Reaction ~ 1 + (1 | Subject)",
            "Reaction ~ Days + (1 | Subject)",
        )
    ]
    with pytest.warns(MLRefitWarning):
        tab = blm.anova(*fits)
    assert list(tab["npar"]) == [3, 4, 6]
    assert list(tab["Df"].iloc[1:]) == [1, 2]
    assert tab["Chisq"].iloc[2] == pytest.approx(REF["anova"][0]["chisq"], abs=1e-9)
    f = _fit("ss_int")
    with pytest.warns(MLRefitWarning):
        tab = blm.anova(f, f)
    assert list(tab.index) == ["MODEL1", "MODEL2"]
    assert tab["Chisq"].iloc[1] == 0 and tab["Df"].iloc[1] == 0
    assert np.isnan(tab["Pr(>Chisq)"].iloc[1])


def test_anova_nested_random_terms():
    """(1 | S) + (0 + Days | S) is nested in (Days | S): the uncorrelated model."""
    data = blm.load_dataset("sleepstudy")
    small = _lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", data)
    big = _lmer("Reaction ~ Days + (Days | Subject)", data)
    with pytest.warns(MLRefitWarning):
        tab = blm.anova(big, small)
    assert list(tab["npar"]) == [5, 6]
    ml_small, ml_big = fit_lmer(small.design, reml=False), fit_lmer(big.design, reml=False)
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (ml_big.loglik - ml_small.loglik))


def test_anova_rejects_other_data():
    data = blm.load_dataset("sleepstudy")
    f1 = _lmer("Reaction ~ Days + (Days | Subject)", data)
    fewer = _lmer("Reaction ~ Days + (1 | Subject)", data.iloc[:170])
    with pytest.raises(InferenceError, match=r"numbers of observations differ \(170, 180\)"):
        blm.anova(fewer, f1)
    other = data.assign(Reaction=data["Reaction"] + np.arange(len(data)) % 3)
    f0 = _lmer("Reaction ~ Days + (1 | Subject)", other)
    with pytest.raises(InferenceError, match="not all fitted to the same data: the responses"):
        blm.anova(f0, f1)


def test_anova_rejects_models_that_are_not_nested():
    """Checked before any ML refit (no MLRefitWarning)."""
    data = blm.load_dataset("sleepstudy")
    a = _lmer("Reaction ~ Days + (1 | Subject)", data)  # npar 4
    b = _lmer("Reaction ~ 1 + (1 | Subject) + (0 + Days | Subject)", data)  # npar 4
    c = _lmer("Reaction ~ 1 + (Days | Subject)", data)  # npar 5, lacks Days
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InferenceError, match="'Reaction ~ Days \\+ \\(1 \\| Subject\\)' is"):
            blm.anova(a, b)
        with pytest.raises(InferenceError, match="is not nested in 'Reaction ~ 1 \\+ \\(Days"):
            blm.anova(a, c)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"parm": "sd_Subject[Dayz]"}, r"unknown parm 'sd_Subject\[Dayz\]'; this model's"),
        ({"parm": ["sigma", "beta"]}, "unknown parm 'beta'"),
        ({"parm": 3}, "parm must be a parameter label or a list of them, got 3"),
        ({"level": 0}, r"level must be a probability in \(0, 1\), got 0"),
        ({"level": 1.5}, "level must be a probability in"),
        ({"level": "0.9"}, r"level must be a probability in \(0, 1\), got '0.9'"),
        ({"level": True}, "level must be a probability"),
        ({"method": "spline"}, "method must be 'profile', 'wald' or 'boot', got 'spline'"),
        ({"method": "boot", "nsim": 0}, "nsim must be a positive integer, got 0"),
        ({"method": "boot", "nsim": 2.5}, "nsim must be a positive integer, got 2.5"),
        ({"method": "boot", "seed": "a"}, "seed must be an integer or a numpy Generator"),
    ],
)
def test_confint_bad_input(kwargs, match):
    with pytest.raises(InferenceError, match=match):
        _fit("ss_slope").confint(**kwargs)


def test_other_bad_input():
    fit = _fit("ss_slope")
    with pytest.raises(InferenceError, match="ddf must be 'satterthwaite' or 'kenward-roger'"):
        fit.fixef_table(ddf="lme4")
    with pytest.raises(InferenceError, match="ddf must be"):
        fit.summary(ddf="KR")
    with pytest.raises(InferenceError, match="anova needs at least two fits, got 1"):
        blm.anova(fit)
    with pytest.raises(InferenceError, match="anova compares LmerFit objects, got NoneType"):
        blm.anova(fit, None)
    with pytest.raises(InferenceError, match=r"one distinct name per fit \(2\), got \['a'\]"):
        blm.anova(fit, _fit("ss_int"), names=["a"])
    assert isinstance(InferenceError("x"), blm.BayesLMMError)
    assert isinstance(InferenceError("x"), ValueError)
    # ddf spelled as lmerTest spells it works too
    assert _fit("dyestuff").fixef_table("Kenward-Roger")["df"].iloc[0] == pytest.approx(5)


# --------------------------------------------------------------------------------------
# Coverage of the bootstrap (the full run: validation/boot_coverage.py)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_boot_coverage_is_near_nominal():
    """100 data sets x 199 refits of the 30-group design: every coverage within the
    99 % Monte Carlo band of 0.95 (±0.056) widened by 0.02 for the bootstrap's own
    small-sample error (validation/results/boot_coverage_intercept.md: 0.927-0.951 at
    1000 data sets)."""
    from validation.boot_coverage import run

    res = run("intercept", nrep=100, nsim=199, seed=5)
    half = 2.58 * math.sqrt(0.95 * 0.05 / 100)
    for label, cov in res.coverage["boot"].items():
        assert abs(cov - 0.95) < half + 0.02, (label, cov)

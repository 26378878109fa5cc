"""The marginalised sampler: the compiled kernel against the PyMC model (the spec), its
transforms against closed forms, NUTS against a known target, exact draws of b against
lme4's conditional modes and condVar, and the same posterior as the latent forms."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SLEEP, load_reference

import bayeslmm as blm
from bayeslmm import names
from bayeslmm.bayes import compiled, marginal
from bayeslmm.bayes.model import build_marginal_model
from bayeslmm.bayes.priors import resolve_priors
from bayeslmm.errors import ConvergenceWarning

CASES = [
    ("sleepstudy", SLEEP),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("iris", "Sepal.Width ~ Sepal.Length + (1 + Sepal.Length | Species)"),
]


def _simulated() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    d = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.integers(0, 8, n).astype(str),
            "h": rng.integers(0, 5, n).astype(str),
        }
    )
    d["y"] = 1 + d.x + rng.normal(size=n)
    return d


SIMULATED = [
    "y ~ x + (1 + x + z | g) + (1 + x | h)",  # two correlated terms, crossed, 3 x 3 block
    "y ~ 0 + x + (x | g) + (1 | h) + (0 + z | h)",  # no intercept, two terms on h
]


def _model_and_spec(data: pd.DataFrame, formula: str):
    """The model, its kernel with β sampled (PyMC's value variables) and its PyMC model."""
    model = blm.Model(formula, data)
    priors = resolve_priors(model.design)
    mm = marginal.build(model.design, priors, integrate_fixef=False)
    return model, mm, build_marginal_model(model.design, priors)


def _point(mm: marginal.MarginalModel, theta: np.ndarray) -> dict[str, np.ndarray]:
    """θ as the PyMC model's value variables."""
    design = mm.design
    icpt = design.intercept_index
    slopes = [j for j in range(design.p) if j != icpt]
    out = {}
    if icpt is not None:
        out[names.INTERCEPT] = np.asarray(theta[icpt])
    if slopes:
        out[names.BETA] = theta[slopes]
    for t, s, c in zip(design.terms, mm.term_sd, mm.term_corr, strict=True):
        out[f"{names.sd(t.group)}_log__"] = theta[s : s + t.nc]
        if t.nc > 1:
            m = t.nc * (t.nc - 1) // 2
            out[f"{names.corr_chol(t.group)}_cholesky_corr__"] = theta[c : c + m]
    out[f"{names.SIGMA}_log__"] = np.asarray(theta[-1])
    return out


def _flat_grad(mm: marginal.MarginalModel, spec, point: dict, grad: np.ndarray) -> np.ndarray:
    """PyMC's flat dlogp (value-variable order) in θ's order."""
    by_name, offset = {}, 0
    for v in spec.value_vars:
        size = int(np.size(point[v.name]))
        by_name[v.name] = grad[offset : offset + size]
        offset += size
    design = mm.design
    out = np.empty(mm.dim)
    icpt = design.intercept_index
    slopes = [j for j in range(design.p) if j != icpt]
    if icpt is not None:
        out[icpt] = by_name[names.INTERCEPT][0]
    if slopes:
        out[slopes] = by_name[names.BETA]
    for t, s, c in zip(design.terms, mm.term_sd, mm.term_corr, strict=True):
        out[s : s + t.nc] = by_name[f"{names.sd(t.group)}_log__"]
        if t.nc > 1:
            m = t.nc * (t.nc - 1) // 2
            out[c : c + m] = by_name[f"{names.corr_chol(t.group)}_cholesky_corr__"]
    out[-1] = by_name[f"{names.SIGMA}_log__"][0]
    return out


@pytest.mark.parametrize(
    ("data", "formula"),
    [(d, f) for d, f in CASES] + [("simulated", f) for f in SIMULATED],
)
def test_kernel_equals_the_pymc_model(data, formula):
    """The compiled log density and gradient equal PyMC's compile_logp/compile_dlogp of the
    marginal model at random points (one-factor, ||, crossed, nested, 3 x 3 blocks).

    PyMC's HalfStudentT adds log 2 as ``pt.log(2)`` of an int8 constant, evaluated in
    float32 (1.9e-9 off); with one such prior per SD and σ, the totals may differ by a few
    1e-9: the tolerance is 1e-7, against log densities of hundreds.
    """
    frame = _simulated() if data == "simulated" else blm.load_dataset(data)
    model, mm, spec = _model_and_spec(frame, formula)
    logp, dlogp = spec.compile_logp(), spec.compile_dlogp()
    fit = model.fit_reml()
    rng = np.random.default_rng(1)
    centre = marginal.unconstrained(
        mm,
        fit.fixef.to_numpy(),
        [np.maximum(sd, 1e-3) for sd in _sds(fit, model.design)],
        [np.eye(t.nc) for t in model.design.terms],
        fit.sigma,
    )
    for _ in range(4):
        theta = centre + rng.normal(scale=0.5, size=mm.dim)
        value, grad = marginal.logp(mm, theta)
        point = _point(mm, theta)
        assert value == pytest.approx(float(logp(point)), abs=1e-7)
        ref = _flat_grad(mm, spec, point, dlogp(point))
        np.testing.assert_allclose(grad, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def _sds(fit: blm.LmerFit, design) -> list[np.ndarray]:
    vc = fit.varcorr
    out = []
    for t in design.terms:
        rows = vc[(vc.grp == t.group) & vc.var2.isna()].set_index("var1")
        out.append(rows.loc[list(t.cnames), "sdcor"].to_numpy(float))
    return out


def _dense_log_density(mm: marginal.MarginalModel, theta: np.ndarray) -> float:
    """log N(y; Xc m, σ²I + ZΣZᵀ + Xc S Xcᵀ) (Σ from θ, β ~ N(m, S) integrated out) with
    scipy, dense, plus the priors and Jacobians of θ taken from the β-sampled kernel
    (whose β prior and likelihood at any β are subtracted)."""
    import scipy.linalg as sl
    from scipy import stats

    design = mm.design
    m, s = mm.fixef_prior
    values = marginal.constrained(mm, theta)
    blocks = []
    for t in design.terms:
        sd = values[names.sd(t.group)]
        corr = values[names.corr(t.group)] if t.nc > 1 else np.eye(1)
        blocks += [np.outer(sd, sd) * corr] * t.nl
    Z = design.Z().toarray()
    V = values[names.SIGMA] ** 2 * np.eye(design.nobs) + Z @ sl.block_diag(*blocks) @ Z.T
    Xc = design.X - mm.x_mean
    integrated = stats.multivariate_normal(Xc @ m, V + (Xc * s**2) @ Xc.T).logpdf(design.y)
    sampled = marginal.build(design, resolve_priors(design), integrate_fixef=False)
    beta = m + 0.1 * s
    theta_s = np.concatenate([beta, theta])
    conditional = stats.multivariate_normal(Xc @ beta, V).logpdf(design.y)
    prior_beta = stats.norm(m, s).logpdf(beta).sum()
    return marginal.logp(sampled, theta_s)[0] - conditional - prior_beta + integrated


@pytest.mark.parametrize(
    ("data", "formula"),
    [(d, f) for d, f in CASES] + [("simulated", f) for f in SIMULATED],
)
def test_integrated_fixef_density_is_the_gaussian_integral(data, formula):
    """With Normal priors β is integrated out with b (one grouping factor of k <= 2: the
    closed-form kernel; otherwise β is a block of the blocked kernel): the log density
    equals the dense Gaussian integral; the gradient equals finite differences."""
    frame = _simulated() if data == "simulated" else blm.load_dataset(data)
    model = blm.Model(formula, frame)
    mm = marginal.build(model.design, resolve_priors(model.design))
    assert mm.p == 0 and mm.dim == sum(t.ntheta for t in model.design.terms) + 1
    one_factor = len(model.design.group_factors) == 1 and mm.data.k1 <= 2
    assert isinstance(mm.data, compiled.OneFactorFixef) == one_factor
    rng = np.random.default_rng(4)
    fit = model.fit_reml()
    centre = marginal.unconstrained(
        mm,
        fit.fixef.to_numpy(),
        [np.maximum(sd, 1e-2) for sd in _sds(fit, model.design)],
        [np.eye(t.nc) for t in model.design.terms],
        fit.sigma,
    )
    for _ in range(2):
        theta = centre + rng.normal(scale=0.3, size=mm.dim)
        value, grad = marginal.logp(mm, theta)
        assert value == pytest.approx(_dense_log_density(mm, theta), abs=1e-8)
        h = 1e-5
        fd = [
            (marginal.logp(mm, theta + h * e)[0] - marginal.logp(mm, theta - h * e)[0]) / (2 * h)
            for e in np.eye(mm.dim)
        ]
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


def test_gradient_matches_finite_differences():
    """The β-sampled blocked kernel (the integrated one: above)."""
    _, mm, _ = _model_and_spec(_simulated(), SIMULATED[0])
    rng = np.random.default_rng(3)
    theta = rng.normal(scale=0.3, size=mm.dim)
    _, grad = marginal.logp(mm, theta)
    h = 1e-6
    fd = np.array(
        [
            (marginal.logp(mm, theta + h * e)[0] - marginal.logp(mm, theta - h * e)[0]) / (2 * h)
            for e in np.eye(mm.dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_correlation_transform_jacobian_closed_form():
    """log|∂L/∂x| of the correlation transform is Σ_i (i + 2) log L_ii (0-based rows):
    finite differences of the map x -> strictly lower triangle of L, for k = 3 and 4."""
    rng = np.random.default_rng(0)

    def lower(x: np.ndarray, k: int) -> np.ndarray:
        L = marginal.correlation_factor(x, k)
        return np.array([L[r, c] for r, c in marginal.spiral(k)])

    h = 1e-6
    for k in (3, 4):
        m = k * (k - 1) // 2
        for _ in range(3):
            x = rng.normal(size=m)
            J = np.column_stack(
                [(lower(x + h * e, k) - lower(x - h * e, k)) / (2 * h) for e in np.eye(m)]
            )
            L = marginal.correlation_factor(x, k)
            expected = np.sum((np.arange(k) + 2) * np.log(np.diag(L)))
            assert np.log(abs(np.linalg.det(J))) == pytest.approx(expected, abs=1e-6)


def test_spiral_matches_pymc_transform():
    """Our parameter order is PyMC's CholeskyCorrTransform's (TFP's spiral fill)."""
    from pymc.distributions.transforms import CholeskyCorrTransform

    for k in (2, 3, 4, 5):
        m = k * (k - 1) // 2
        x = np.arange(1.0, m + 1.0) / 10
        pymc_L = CholeskyCorrTransform(n=k).backward(x).eval()
        np.testing.assert_allclose(marginal.correlation_factor(x, k), pymc_L, rtol=1e-12)


# --------------------------------------------------------------------------------------
# exact draws of b
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["ss_slope", "penicillin", "pastes"])
def test_ranef_conditional_is_lme4s(case):
    """With β, Σ and σ at lme4's estimates, the draws of b | β, Σ, σ, y have lme4's
    conditional modes as their mean and lme4's condVar SDs as their SDs."""
    ref = load_reference(case)
    model = blm.Model(ref["formula"], blm.load_dataset(ref["dataset"]))
    design = model.design
    mm = marginal.build(design, None)
    sd, corr = [], []
    for t, vc in zip(design.terms, _by_term(ref, design), strict=True):
        sd.append(np.asarray(vc["sd"], float))
        corr.append(np.array(vc["corr"], float).reshape(t.nc, t.nc))
    fixef = np.array([ref["fixef"][n] for n in design.fixef_names])
    theta = marginal.unconstrained(mm, fixef, sd, corr, ref["sigma"])
    n = 20_000
    draws = marginal.draw_effects(mm, np.tile(theta, (1, n, 1)), seed=1, cores=1).ranef
    for t, b in zip(design.terms, draws, strict=True):
        levels = ref["ranef"][t.factor]
        columns = list(levels["terms"])
        idx = [columns.index(c) for c in t.cnames]
        mode = np.array(levels["values"])[:, idx]
        condsd = np.array(levels["condsd"])[:, idx]
        b = b.reshape(n, t.nl, t.nc)
        np.testing.assert_allclose(b.mean(0), mode, atol=5 * condsd.max() / np.sqrt(n))
        np.testing.assert_allclose(b.std(0), condsd, rtol=0.03)


@pytest.mark.parametrize("case", ["ss_slope", "penicillin"])
def test_integrated_draws_are_the_gaussian_conditional(case):
    """β integrated out: with Σ and σ at lme4's values, the joint draws of (β, b) have the
    mean and SDs of their Gaussian posterior, precision [Xc Z]ᵀ[Xc Z]/σ² + diag(S⁻¹, Σ⁻¹)
    and mean its inverse times ([Xc Z]ᵀy/σ² + (S⁻¹m, 0)), computed densely."""
    import scipy.linalg as sl

    ref = load_reference(case)
    model = blm.Model(ref["formula"], blm.load_dataset(ref["dataset"]))
    design = model.design
    mm = marginal.build(design, resolve_priors(design))
    m, s = mm.fixef_prior
    sd, corr, blocks = [], [], []
    for t, vc in zip(design.terms, _by_term(ref, design), strict=True):
        sd.append(np.asarray(vc["sd"], float))
        corr.append(np.array(vc["corr"], float).reshape(t.nc, t.nc))
        blocks += [np.outer(sd[-1], sd[-1]) * corr[-1]] * t.nl
    sigma = ref["sigma"]
    theta = marginal.unconstrained(mm, np.zeros(design.p), sd, corr, sigma)
    n = 20_000
    effects = marginal.draw_effects(mm, np.tile(theta, (1, n, 1)), seed=3, cores=2)
    draws = np.concatenate(
        [effects.beta.reshape(n, -1)] + [b.reshape(n, -1) for b in effects.ranef], axis=1
    )
    W = np.hstack([design.X - mm.x_mean, design.Z().toarray()])
    prior_prec = sl.block_diag(np.diag(s**-2), np.linalg.inv(sl.block_diag(*blocks)))
    cov = np.linalg.inv(W.T @ W / sigma**2 + prior_prec)
    mean = cov @ (W.T @ design.y / sigma**2 + np.concatenate([m / s**2, np.zeros(design.q)]))
    sds = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * sds / np.sqrt(n))
    np.testing.assert_allclose(draws.std(0), sds, rtol=0.03)


def _by_term(ref: dict, design) -> list[dict]:
    """The reference's varcorr entry of each term, in term order."""
    entries = {entry["group"]: entry for entry in ref["varcorr"]}
    return [entries[t.group] for t in design.terms]


# --------------------------------------------------------------------------------------
# the same posterior as the latent forms
# --------------------------------------------------------------------------------------


def _summaries(post: blm.Posterior) -> pd.DataFrame:
    frames = [post.fixef, post.varcorr.iloc[:, 4:]]
    frames += [post.ranef[f] for f in post.design.group_factors]
    table = pd.concat(frames)
    return table.assign(mcse=table["sd"] / np.sqrt(table["ess_bulk"]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "formula"),
    [
        ("sleepstudy", SLEEP),
        ("penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
        ("pastes", "strength ~ 1 + (1 | batch/cask)"),
    ],
)
def test_marginal_and_latent_posteriors_agree(dataset, formula):
    """Posterior means (every parameter and every b) agree within 4.5 Monte Carlo standard
    errors, posterior SDs within 10 %, between the marginal sampler and PyMC's NUTS on the
    latent (non-centred) model."""
    model = blm.Model(formula, blm.load_dataset(dataset))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = model.sample(draws=2000, seed=3, progressbar=False)
        latent = model.sample(
            draws=1500,
            chains=4,
            seed=4,
            parameterization="noncentered",
            target_accept=0.95,
            progressbar=False,
        )
    a, b = _summaries(m), _summaries(latent)
    z = (a["mean"] - b["mean"]) / np.sqrt(a["mcse"] ** 2 + b["mcse"] ** 2)
    assert np.abs(z).max() < 4.5, z.abs().sort_values().tail()
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.1)


# --------------------------------------------------------------------------------------
# hard input
# --------------------------------------------------------------------------------------


def _sample(model: blm.Model, **options) -> blm.Posterior:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.sample(draws=300, tune=300, chains=2, seed=5, progressbar=False, **options)


def test_scale_of_y_does_not_matter(sleepstudy):
    """y in units of 1e6 or 1e-6: finite draws and the same posterior, rescaled."""
    base = _sample(blm.Model(SLEEP, sleepstudy))
    for scale in (1e6, 1e-6):
        data = sleepstudy.assign(Reaction=sleepstudy["Reaction"] * scale)
        post = _sample(blm.Model(SLEEP, data))
        for v in post.draws.data_vars.values():
            assert np.isfinite(v.to_numpy()).all()
        z = (post.fixef["mean"] / scale - base.fixef["mean"]) / base.fixef["sd"]
        assert np.abs(z).max() < 0.5
        assert post.sigma["mean"] / scale == pytest.approx(base.sigma["mean"], rel=0.05)


def test_singular_and_one_row_per_level():
    """dyestuff2 (REML: θ = 0) and groups of one observation sample without NaN; a
    singular SD's posterior piles up near 0 without divergences."""
    dye = blm.load_dataset("dyestuff").assign(
        Yield=[
            7.298,
            3.846,
            2.434,
            9.566,
            7.99,
            5.22,
            6.556,
            0.608,
            11.788,
            -0.892,
            0.11,
            10.386,
            13.434,
            5.51,
            8.166,
            2.212,
            4.852,
            7.092,
            9.288,
            4.98,
            0.282,
            9.014,
            4.458,
            9.446,
            7.198,
            1.722,
            4.782,
            8.106,
            0.758,
            3.758,
        ],
    )  # fmt: skip  (Dyestuff2, Box & Tiao 1973)
    post = _sample(blm.Model("Yield ~ 1 + (1 | Batch)", dye))
    assert post.diagnostics.divergences == 0
    assert post.varcorr["mean"].iloc[0] < post.varcorr["mean"].iloc[1]  # sd(Batch) < sigma
    rng = np.random.default_rng(2)
    g = np.concatenate([np.arange(40), np.repeat(np.arange(40, 60), 5)])
    data = pd.DataFrame({"g": g.astype(str), "y": rng.normal(size=g.size) + rng.normal(size=60)[g]})
    post = _sample(blm.Model("y ~ 1 + (1 | g)", data))
    assert np.isfinite(post.draws("ranef_g").to_numpy()).all()
    assert post.diagnostics.divergences == 0


def test_rounding_region_is_not_a_mode():
    """Where σ is ~10⁻¹⁰ of a near-perfectly correlated slope SD, ``rᵀr − cᵀM⁻¹c`` is pure
    rounding error: the log density there is −∞, never above the mode (it reached 10³⁴
    before, and a start-point search that wandered there handed NUTS a singular metric).
    All three kernels (β integrated, β sampled, blocked)."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 5)
    x = rng.normal(size=40)
    y = 1 + x + rng.normal(size=8)[g] + rng.normal(size=8)[g] * x + rng.normal(size=40)
    data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": (np.arange(40) % 3).astype(str)})
    kernels = set()
    for formula, integrate in [
        ("y ~ 1 + x + (1 + x | g)", True),
        ("y ~ 1 + x + (1 + x | g)", False),
        ("y ~ 1 + x + (1 + x | g) + (1 | h)", False),
    ]:
        model = blm.Model(formula, data)
        mm = marginal.build(model.design, resolve_priors(model.design), integrate_fixef=integrate)
        kernels.add(type(mm.data).__name__)
        start = marginal.initial_points(mm, 1, np.random.default_rng(0))
        mode = marginal.logp(mm, start.points[0])[0]
        np.linalg.cholesky(start.metric)
        fixef = np.array([1.0, 1.0])
        others = len(model.design.terms) - 1
        for log_sigma, log_sd0, log_sd1, c in itertools.product(
            np.arange(-40.0, -10.0, 3.0), (-8.0, -5.0), (10.0, 13.0), (1.5, 3.0)
        ):
            rho = c / np.sqrt(1.0 + c * c)  # the spiral parameter L₁₀/L₁₁ = c
            corr = [np.array([[1.0, rho], [rho, 1.0]])] + [np.eye(1)] * others
            sd = [np.exp([log_sd0, log_sd1])] + [np.ones(1)] * others
            theta = marginal.unconstrained(mm, fixef, sd, corr, float(np.exp(log_sigma)))
            assert marginal.logp(mm, theta)[0] < mode
    assert kernels == {"OneFactorFixef", "OneFactor", "KernelData"}


def test_marginal_via_pymc_draws_ranef(sleep_model):
    """nuts_sampler='pymc' on the marginal model: the same variables, b drawn afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = sleep_model.sample(
            draws=100, tune=100, chains=2, seed=1, cores=1, nuts_sampler="pymc", progressbar=False
        )
    assert post.parameterization == {"Subject": "marginal"}
    assert post.draws("ranef_Subject").dims == ("chain", "draw", "Subject", "Subject__term")
    assert np.isfinite(post.draws("ranef_Subject").to_numpy()).all()
    assert post.idata.attrs["nuts_sampler"] == "pymc"

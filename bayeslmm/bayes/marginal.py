"""The marginalised sampler: NUTS on (Σ, σ) (and β unless its priors are Normal) with the
random effects, and β, integrated out; then b (and β) drawn exactly.

``y ~ N(Xβ, σ²I + ZΣZᵀ)``: the compiled kernel (:mod:`.compiled`) evaluates this log
density and its gradient from the sufficient statistics ``[Z X y]ᵀ[Z X y]``, computed once
here, so a gradient costs O(levels), not O(rows).  With Normal priors β ~ N(m, S) (the
defaults), β joins b as a block of effects of known covariance, and the sampled density
is ``y ~ N(Xm, σ²I + ZΣZᵀ + XSXᵀ)``: NUTS sees only the SDs, correlations and σ (few
groups make β's spread depend on the SDs, a funnel that integrating β removes).  The
sampled parameters are PyMC's value variables of the marginal model
(:func:`bayeslmm.bayes.model.build_marginal_model`): the centred-design ``Intercept`` and
``beta`` when sampled, per term the log SDs and the unconstrained correlation parameters
of ``LKJCorr`` (PyMC's ``CholeskyCorrTransform``), and log σ; tests hold the kernel to
PyMC's log density and gradient (β sampled) and to the dense Gaussian integral (β
integrated out).  After sampling, every draw gets (β,) b from its exact Gaussian
conditional (with β, Σ and σ fixed, b's mean and covariance are lme4's conditional modes
and condVar).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.special import gammaln

from .. import names
from ..design import Design, ReTerm
from ..errors import SamplingError
from ..rng import int_seeds
from . import compiled as nb
from .nuts.record import sample_stats, warmup_groups
from .nuts.runner import Chains, run_chains
from .parameterization import block_terms
from .priors import Prior
from .settings import SamplerSettings

#: PyMC distribution -> (kernel code, canonical arguments with defaults)
_FAMILIES: dict[str, tuple[int, tuple[tuple[str, float | None], ...]]] = {
    "Normal": (nb.NORMAL, (("mu", 0.0), ("sigma", 1.0))),
    "StudentT": (nb.STUDENT_T, (("nu", None), ("mu", 0.0), ("sigma", 1.0))),
    "Cauchy": (nb.CAUCHY, (("alpha", None), ("beta", None))),
    "Laplace": (nb.LAPLACE, (("mu", None), ("b", None))),
    "HalfNormal": (nb.HALF_NORMAL, (("sigma", 1.0),)),
    "HalfStudentT": (nb.HALF_STUDENT_T, (("nu", 1.0), ("sigma", 1.0))),
    "HalfCauchy": (nb.HALF_CAUCHY, (("beta", None),)),
    "Exponential": (nb.EXPONENTIAL, (("lam", None),)),
    "Gamma": (nb.GAMMA, (("alpha", None), ("beta", None))),
    "InverseGamma": (nb.INVERSE_GAMMA, (("alpha", None), ("beta", None))),
    "LogNormal": (nb.LOG_NORMAL, (("mu", 0.0), ("sigma", 1.0))),
    "Weibull": (nb.WEIBULL, (("alpha", None), ("beta", None))),
}
_POSITIVE = {nb.HALF_NORMAL, nb.HALF_STUDENT_T, nb.HALF_CAUCHY, nb.EXPONENTIAL, nb.GAMMA}
_POSITIVE |= {nb.INVERSE_GAMMA, nb.LOG_NORMAL, nb.WEIBULL}
#: sample_stats attribute: 1 when β was integrated out with b (see :func:`build`)
INTEGRATED_FIXEF = "integrated_fixef"


class UnsupportedPriorError(SamplingError):
    """A prior the compiled kernel does not evaluate (PyMC's samplers take the model)."""


def _canonical(dist: str, args: Mapping[str, float]) -> tuple[int, np.ndarray] | None:
    """(kernel code, 3 parameters) of a prior the kernel evaluates, or None."""
    if dist not in _FAMILIES:
        return None
    code, spec = _FAMILIES[dist]
    a = dict(args)
    if "tau" in a and dist in ("Normal", "HalfNormal", "LogNormal"):
        a["sigma"] = a.pop("tau") ** -0.5
    if "lam" in a and dist in ("StudentT", "HalfStudentT"):
        a["sigma"] = a.pop("lam") ** -0.5
    if dist == "Exponential" and "scale" in a:
        a["lam"] = 1.0 / a.pop("scale")
    if dist in ("Gamma", "InverseGamma") and {"mu", "sigma"} <= set(a):
        mu, sd = a.pop("mu"), a.pop("sigma")
        if dist == "Gamma":
            a["alpha"], a["beta"] = mu**2 / sd**2, mu / sd**2
        else:
            a["alpha"] = mu**2 / sd**2 + 2.0
            a["beta"] = mu * (a["alpha"] - 1.0)
    values = []
    for name, default in spec:
        v = a.pop(name, default)
        if v is None:
            return None
        values.append(float(v))
    if a:
        return None
    return code, np.array(values + [0.0] * (3 - len(values)))


def _log_const(code: int, par: np.ndarray) -> float:
    """The log normalising constant of a prior, as PyMC's ``logp`` includes it."""
    a, b, c = (float(x) for x in par)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    if code in (nb.NORMAL, nb.LOG_NORMAL):
        return -half_log_2pi - math.log(b)
    if code == nb.STUDENT_T:
        return float(
            gammaln((a + 1) / 2) - gammaln(a / 2) - 0.5 * math.log(a * math.pi)
        ) - math.log(c)
    if code == nb.CAUCHY:
        return -math.log(math.pi) - math.log(b)
    if code == nb.LAPLACE:
        return -math.log(2 * b)
    if code == nb.HALF_NORMAL:
        return 0.5 * math.log(2 / math.pi) - math.log(a)
    if code == nb.HALF_STUDENT_T:
        t = gammaln((a + 1) / 2) - gammaln(a / 2)
        return math.log(2) + float(t) - 0.5 * math.log(a * math.pi * b**2)
    if code == nb.HALF_CAUCHY:
        return math.log(2) - math.log(math.pi) - math.log(a)
    if code == nb.EXPONENTIAL:
        return math.log(a)
    if code in (nb.GAMMA, nb.INVERSE_GAMMA):
        return a * math.log(b) - float(gammaln(a))
    return math.log(a) - math.log(b)  # Weibull


def lkj_log_const(eta: float, n: int) -> float:
    """log normalising constant of LKJ(η) on n x n correlation matrices (PyMC's)."""
    k = np.arange(1, n)
    return float(
        (n - 1) * gammaln(eta + 0.5 * (n - 1))
        - (0.5 * k * np.log(np.pi) + gammaln(eta + 0.5 * (n - 1 - k))).sum()
    )


def spiral(k: int) -> np.ndarray:
    """(row, column) of the k x k correlation Cholesky factor filled by each unconstrained
    parameter, in the order of PyMC's ``CholeskyCorrTransform`` (TFP's spiral fill of the
    strictly lower triangle)."""
    m = k * (k - 1) // 2
    out = np.zeros((m, 2), dtype=np.int64)
    if m == 0:
        return out
    x = np.arange(1, m + 1)
    filled = np.tril(np.concatenate([x[k - 1 :], x[::-1]]).reshape(k - 1, k - 1))
    for r, c in zip(*np.nonzero(filled), strict=True):
        out[filled[r, c] - 1] = (r + 1, c)
    return out


@dataclass(frozen=True)
class MarginalModel:
    """The kernel's data for one design and prior, and where each parameter sits in θ.

    θ = (β of the centred design (the intercept column holds the centred-design
    ``Intercept``), per term: log SDs, correlation parameters; log σ), without β when
    ``fixef_prior`` holds the Normal priors (means, SDs) β is integrated out with.  The
    slopes' columns are centred at ``x_mean``: fixef[(Intercept)] = Intercept − x_meanᵀβ.
    """

    data: nb.OneFactor | nb.OneFactorFixef | nb.KernelData | nb.PartialData
    design: Design
    x_mean: np.ndarray
    term_sd: tuple[int, ...]
    term_corr: tuple[int, ...]
    fixef_prior: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def integrated(self) -> nb.OneFactor | nb.OneFactorFixef | nb.KernelData:
        """The data of the integrated part (all of it unless effects are sampled)."""
        return self.data.base if isinstance(self.data, nb.PartialData) else self.data

    @property
    def dim(self) -> int:
        """θ's length (with the sampled effects, if any)."""
        d = self.data
        return int(d.dim) if isinstance(d, nb.PartialData) else int(d.par.dim)

    @property
    def hdim(self) -> int:
        """The length of θ's hyperparameter part (β?, SDs, correlations, log σ)."""
        return int(self.integrated.par.dim)

    @property
    def p(self) -> int:
        """The number of β in θ (0 when β is integrated out)."""
        return int(self.integrated.par.p)


def unsupported_prior(priors: Mapping[str, Prior]) -> str | None:
    """The first prior the compiled kernel does not evaluate, described; None if none."""
    for name, prior in priors.items():
        if not name.startswith(names.corr("")) and _canonical(prior.dist, prior.args) is None:
            return f"the prior {prior} of {name!r}"
    return None


def _fixef_keys(design: Design) -> list[str]:
    """The prior key of each β of the centred design."""
    icpt = design.intercept_index
    return [
        names.INTERCEPT if j == icpt else names.fixef_label(c)
        for j, c in enumerate(design.fixef_names)
    ]


def normal_fixef_prior(
    design: Design, priors: Mapping[str, Prior] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(means, SDs) of β's priors when every one is Normal (β can then be integrated out
    exactly); None otherwise."""
    if priors is None or design.p == 0:
        return None
    found = [_canonical(priors[k].dist, priors[k].args) for k in _fixef_keys(design)]
    if any(f is None or f[0] != nb.NORMAL for f in found):
        return None
    pars = np.array([f[1] for f in found if f is not None])
    return pars[:, 0].copy(), pars[:, 1].copy()


def build(
    design: Design,
    priors: Mapping[str, Prior] | None,
    *,
    integrate_fixef: bool = True,
    latent: Mapping[int, bool] | None = None,
) -> MarginalModel:
    """The sufficient statistics and parameter layout of ``design`` with ``priors``
    (None: no priors, for :func:`draw_effects` after another sampler).

    With ``integrate_fixef`` and Normal priors on every β, β joins b as a block of effects
    with a known covariance (β − m ~ N(0, S)): NUTS then samples only Σ and σ, and β is
    drawn with b.  With few groups the posterior of β widens with the SDs (a funnel in
    (β, log sd)); integrated, that geometry is gone.  ``latent`` (term index -> centred)
    names terms whose effects are sampled (the partially marginal kernel,
    :class:`.compiled.PartialData`): θ gets their effects after log σ.
    """
    latent = dict(latent or {})
    work = design.working()  # weights and offset folded into the rows (itself when plain)
    X, y = work.X, work.y
    n, p = X.shape
    icpt = design.intercept_index
    ones = X[:, icpt] if icpt is not None else np.zeros(n)  # sqrt(w) with weights
    x_mean = ones @ X / (ones @ ones) if icpt is not None else np.zeros(p)
    if icpt is not None:
        x_mean[icpt] = 0.0
    Xc = X - np.outer(ones, x_mean)
    fixef_prior = normal_fixef_prior(design, priors) if integrate_fixef else None
    if fixef_prior is not None:
        # y − Xc m = Zb + Xc(β − m) + ε: no β left in θ, Xc a block of effects
        e = y - Xc @ fixef_prior[0]
        beta_ols = np.zeros(0)
        Xk = np.zeros((n, 0))
    else:
        beta_ols = np.linalg.lstsq(Xc, y, rcond=None)[0] if p else np.zeros(0)
        e = y - Xc @ beta_ols  # the kernel works with r = e − Xc(β − β_ols): no cancellation
        Xk = Xc
    pk = Xk.shape[1]

    terms = list(work.terms)
    b1, b2 = block_terms(design)
    b2 = [i for i in b2 if i not in latent]
    codes1, l1 = terms[b1[0]].codes, terms[b1[0]].nl
    Z1 = np.column_stack([terms[i].X for i in b1])
    k1 = Z1.shape[1]
    kmax = max([t.nc for t in terms] + ([p] if fixef_prior is not None else []))
    off1 = np.full(len(terms), -1, dtype=np.int64)
    off1[b1] = np.cumsum([0] + [terms[i].nc for i in b1])[:-1]

    def per_level(weights: np.ndarray) -> np.ndarray:
        return np.bincount(codes1, weights=weights, minlength=l1)

    A11 = np.empty((l1, k1, k1))
    for a in range(k1):
        for b in range(a, k1):
            A11[:, a, b] = A11[:, b, a] = per_level(Z1[:, a] * Z1[:, b])
    Zte1 = np.ascontiguousarray(np.column_stack([per_level(Z1[:, a] * e) for a in range(k1)]))
    ZtX1 = np.empty((l1, k1, pk))
    for a in range(k1):
        for j in range(pk):
            ZtX1[:, a, j] = per_level(Z1[:, a] * Xk[:, j])

    # block 2: units (term, level), term-major, then integrated β as one unit of p columns;
    # A12 as per-level lists of unit blocks
    unit_term: list[int] = []
    unit_off: list[int] = []
    unit_k: list[int] = []
    base: dict[int, int] = {}
    q2 = 0
    for i in b2:
        base[i] = len(unit_term)
        for _ in range(terms[i].nl):
            unit_term.append(i)
            unit_off.append(q2)
            unit_k.append(terms[i].nc)
            q2 += terms[i].nc
    columns2 = [terms[i].Z() for i in b2]
    keys, vals = [], []
    for i in b2:
        met, v = _coupling(codes1, Z1, terms[i], kmax)
        keys.append(np.column_stack([met[:, 0], base[i] + met[:, 1]]))
        vals.append(v)
    if fixef_prior is not None:  # every block-1 level meets the β unit: Z₁ₗᵀXc
        unit_term.append(len(terms))
        unit_off.append(q2)
        unit_k.append(p)
        q2 += p
        columns2.append(sp.csc_matrix(Xc))
        v = np.zeros((l1, k1, kmax))
        for a in range(k1):
            for j in range(p):
                v[:, a, j] = per_level(Z1[:, a] * Xc[:, j])
        keys.append(np.column_stack([np.arange(l1), np.full(l1, len(unit_term) - 1)]))
        vals.append(v)
    if columns2:
        Z2 = sp.hstack(columns2, format="csc")
        A22 = np.ascontiguousarray((Z2.T @ Z2).toarray())
        Zte2 = np.asarray(Z2.T @ e).ravel()
        ZtX2 = np.ascontiguousarray(Z2.T @ Xk)
        kv, val = np.concatenate(keys), np.concatenate(vals)
        order = np.lexsort((kv[:, 1], kv[:, 0]))  # by level, then unit (= column order)
        kv, val = kv[order], np.ascontiguousarray(val[order])
        a12_ptr = np.searchsorted(kv[:, 0], np.arange(l1 + 1)).astype(np.int64)
        units = kv[:, 1]
    else:
        A22, Zte2, ZtX2 = np.zeros((0, 0)), np.zeros(0), np.zeros((0, pk))
        a12_ptr = np.zeros(l1 + 1, dtype=np.int64)
        units, val = np.zeros(0, dtype=np.int64), np.zeros((0, k1, kmax))
    unit_term_a = np.asarray(unit_term, dtype=np.int64)
    unit_off_a = np.asarray(unit_off, dtype=np.int64)
    unit_k_a = np.asarray(unit_k, dtype=np.int64)

    term_sd, term_corr, pos = [], [], pk
    for t in terms:
        term_sd.append(pos)
        term_corr.append(pos + t.nc)
        pos += t.nc + t.nc * (t.nc - 1) // 2
    nterms = len(terms) + (fixef_prior is not None)
    spirals = np.zeros((nterms, max(1, kmax * (kmax - 1) // 2), 2), dtype=np.int64)
    for i, t in enumerate(terms):
        s = spiral(t.nc)
        spirals[i, : len(s)] = s
    fixed_sd = np.zeros((nterms, kmax))
    if fixef_prior is not None:
        fixed_sd[-1, :p] = fixef_prior[1]

    # priors slot by slot: β (centred design, when sampled), every SD (term order), σ
    slots = [(key, False) for key in _fixef_keys(design)[:pk]]
    slots += [(names.sd_label(t.group, c), True) for t in terms for c in t.cnames]
    slots.append((names.SIGMA, True))
    codes = np.full(len(slots), -1, dtype=np.int64)
    pars = np.ones((len(slots), 3))
    consts = np.zeros(len(slots))
    for slot, (key, positive) in enumerate(slots):
        if priors is None:
            continue
        got = _canonical(priors[key].dist, priors[key].args)
        if got is None or (got[0] in _POSITIVE) != positive:
            raise UnsupportedPriorError(
                f"the prior {priors[key]} of {key!r} is not one the compiled sampler evaluates"
            )
        codes[slot], pars[slot] = got
        consts[slot] = _log_const(codes[slot], pars[slot])
    eta = np.array(
        [
            float(priors[names.corr(t.group)].args["eta"]) if priors and t.nc > 1 else 1.0
            for t in terms
        ]
        + [1.0] * (nterms - len(terms))
    )
    fixed = [-1] * (nterms - len(terms))
    par = nb.Parameters(
        p=pk,
        dim=pos + 1,
        kmax=kmax,
        term_k=np.array([t.nc for t in terms] + [p] * len(fixed), dtype=np.int64),
        term_block=np.array(
            [1 if i in b1 else nb.LATENT if i in latent else 2 for i in range(len(terms))]
            + [2] * len(fixed),
            dtype=np.int64,
        ),
        term_off1=np.concatenate([off1, np.array(fixed, dtype=np.int64)]),
        term_sd=np.array(term_sd + fixed, dtype=np.int64),
        term_corr=np.array(term_corr + fixed, dtype=np.int64),
        spiral=spirals,
        lkj_eta=eta,
        lkj_norm=np.array(
            [lkj_log_const(h, t.nc) if t.nc > 1 else 0.0 for h, t in zip(eta, terms, strict=False)]
            + [0.0] * len(fixed)
        ),
        prior_kind=codes,
        prior_par=pars,
        prior_const=consts,
        fixed_sd=fixed_sd,
    )
    common = {
        "par": par,
        "n": float(n),
        "ete": float(e @ e),
        "Xte": Xk.T @ e,
        "XtX": np.ascontiguousarray(Xk.T @ Xk),
        "beta_ols": beta_ols,
        "l1": l1,
        "k1": k1,
        "A11": A11,
        "Zte1": Zte1,
        "ZtX1": ZtX1,
    }
    data: nb.OneFactor | nb.OneFactorFixef | nb.KernelData | nb.PartialData
    if fixef_prior is not None and not b2 and k1 <= 2:
        data = nb.OneFactorFixef(
            **{k: v for k, v in common.items() if k not in ("beta_ols", "Xte", "XtX", "ZtX1")},
            Xte=Xc.T @ e,
            XtX=np.ascontiguousarray(Xc.T @ Xc),
            ZtX1=np.ascontiguousarray(vals[-1][:, :, :p]),
        )
    elif q2 == 0 and k1 <= 2 and not latent:
        data = nb.OneFactor(**common)
    else:
        data = nb.KernelData(
            **common,
            q2=q2,
            unit_term=unit_term_a,
            unit_off=unit_off_a,
            Zte2=Zte2,
            ZtX2=ZtX2,
            A22=A22,
            a12_ptr=a12_ptr,
            a12_off=unit_off_a[units] if len(units) else units,
            a12_k=unit_k_a[units] if len(units) else units,
            a12_term=unit_term_a[units] if len(units) else units,
            a12_val=val,
        )
    if latent:
        data = _partial(data, work, latent, e, Xk, Z1, codes1, columns2)
    return MarginalModel(data, design, x_mean, tuple(term_sd), tuple(term_corr), fixef_prior)


def _coupling(
    codes1: np.ndarray, Z1: np.ndarray, t: ReTerm, kmax: int
) -> tuple[np.ndarray, np.ndarray]:
    """Z₁ₗᵀZ_u for every (block-1 level l, level u of term t) that meet: keys (nnz, 2) and
    blocks (nnz, k₁, kmax)."""
    k1 = Z1.shape[1]
    key = codes1.astype(np.int64) * t.nl + t.codes
    ukey, inv = np.unique(key, return_inverse=True)
    v = np.zeros((len(ukey), k1, kmax))
    for a in range(k1):
        for c in range(t.nc):
            v[:, a, c] = np.bincount(inv, weights=Z1[:, a] * t.X[:, c], minlength=len(ukey))
    return np.column_stack(np.divmod(ukey, t.nl)), v


def _partial(
    base: nb.KernelData | nb.OneFactor | nb.OneFactorFixef,
    design: Design,
    latent: Mapping[int, bool],
    e: np.ndarray,
    Xk: np.ndarray,
    Z1: np.ndarray,
    codes1: np.ndarray,
    columns2: list,
) -> nb.PartialData:
    """The partially marginal kernel's data: ``base`` (block 1, β and any dense block 2
    integrated out of y − Z_sb_s) and the products of Z_s, the sampled terms' columns,
    with e, Z_s, Z₁ (per block-1 level), Z₂ (with X_c when β is integrated) and X_c."""
    assert not isinstance(base, nb.OneFactor)
    terms = design.terms
    order = sorted(latent)
    lat_term, lat_off, offs = [], [], {}
    qs = 0
    for i in order:
        offs[i] = qs
        for _ in range(terms[i].nl):
            lat_term.append(i)
            lat_off.append(qs)
            qs += terms[i].nc
    Zs = sp.hstack([terms[i].Z() for i in order], format="csc")
    ZtZ = (Zs.T @ Zs).tocsr()
    ZtZ.sort_indices()
    keys, vals = [], []
    for i in order:
        key, v = _coupling(codes1, Z1, terms[i], base.par.kmax)
        keys.append(np.column_stack([key[:, 0], offs[i] + key[:, 1] * terms[i].nc]))
        vals.append(v)
    kv, val = np.concatenate(keys), np.concatenate(vals)
    srt = np.lexsort((kv[:, 1], kv[:, 0]))
    kv, val = kv[srt], np.ascontiguousarray(val[srt])
    k_of = np.zeros(qs, dtype=np.int64)
    for i in order:
        k_of[offs[i] : offs[i] + terms[i].q] = terms[i].nc
    Z2 = sp.hstack(columns2, format="csc") if columns2 else sp.csc_matrix((len(e), 0))
    hdim = int(base.par.dim)
    return nb.PartialData(
        base=base,
        beta_ols=base.beta_ols if isinstance(base, nb.KernelData) else np.zeros(0),
        hdim=hdim,
        dim=hdim + qs,
        lat_term=np.asarray(lat_term, dtype=np.int64),
        lat_off=np.asarray(lat_off, dtype=np.int64),
        centred=np.array(
            [bool(latent.get(i, False)) for i in range(len(base.par.term_k))], dtype=np.bool_
        ),
        Zte=np.asarray(Zs.T @ e).ravel(),
        ZtZ_ptr=ZtZ.indptr.astype(np.int64),
        ZtZ_col=ZtZ.indices.astype(np.int64),
        ZtZ_val=ZtZ.data.astype(float),
        c1_ptr=np.searchsorted(kv[:, 0], np.arange(base.l1 + 1)).astype(np.int64),
        c1_off=kv[:, 1].astype(np.int64),
        c1_k=k_of[kv[:, 1]],
        c1_val=val,
        ZtB=np.ascontiguousarray((Zs.T @ Z2).toarray()),
        ZtX=np.ascontiguousarray(np.asarray(Zs.T @ Xk).reshape(qs, Xk.shape[1])),
    )


# --------------------------------------------------------------------------------------
# between θ and the model's parameters
# --------------------------------------------------------------------------------------


def correlation_factor(x: np.ndarray, k: int) -> np.ndarray:
    """The correlation Cholesky factor L (..., k, k) of unconstrained parameters x (..., m):
    row i is (x_i0, ..., x_i,i−1, 1)/norm (PyMC's ``CholeskyCorrTransform.backward``)."""
    L = np.zeros((*x.shape[:-1], k, k))
    idx = np.arange(k)
    L[..., idx, idx] = 1.0
    for j, (r, c) in enumerate(spiral(k)):
        L[..., r, c] = x[..., j]
    return L / np.linalg.norm(L, axis=-1, keepdims=True)


def constrained(
    mm: MarginalModel, theta: np.ndarray, beta: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """θ (..., dim) -> the model's variables by PyMC name: ``Intercept``, ``beta``,
    ``fixef`` (original scale), ``sd_g``, ``corr_chol_g`` and ``corr_g`` (k >= 2), ``sigma``.
    β of the centred design comes from θ, or from ``beta`` (..., p) when integrated out."""
    design = mm.design
    p = design.p
    icpt = design.intercept_index
    out: dict[str, np.ndarray] = {}
    if mm.p:
        beta_c = theta[..., :p]
    elif beta is not None:
        beta_c = beta
    else:
        beta_c = np.zeros((*theta.shape[:-1], p))
    fixef = beta_c.copy()
    if icpt is not None:
        out[names.INTERCEPT] = beta_c[..., icpt]
        fixef[..., icpt] -= beta_c @ mm.x_mean
    slopes = [j for j in range(p) if j != icpt]
    if slopes:
        out[names.BETA] = beta_c[..., slopes]
    out[names.FIXEF] = fixef
    for t, s, c in zip(design.terms, mm.term_sd, mm.term_corr, strict=True):
        out[names.sd(t.group)] = np.exp(theta[..., s : s + t.nc])
        if t.nc > 1:
            L = correlation_factor(theta[..., c : c + t.nc * (t.nc - 1) // 2], t.nc)
            out[names.corr_chol(t.group)] = L
            out[names.corr(t.group)] = L @ np.swapaxes(L, -1, -2)
    out[names.SIGMA] = np.exp(theta[..., mm.hdim - 1])
    return out


def unconstrained(
    mm: MarginalModel, fixef: np.ndarray, sd: list[np.ndarray], corr: list[np.ndarray], sigma: float
) -> np.ndarray:
    """θ of the parameter values fixef (original scale; unused when β is integrated out),
    SDs (> 0), correlation matrices (positive definite) and σ (the inverse of
    :func:`constrained`); sampled effects, if any, at 0."""
    design = mm.design
    theta = np.zeros(mm.dim)
    if mm.p:
        theta[: design.p] = fixef
        if design.intercept_index is not None:
            theta[design.intercept_index] += mm.x_mean @ fixef
    for t, s, c, sd_t, corr_t in zip(design.terms, mm.term_sd, mm.term_corr, sd, corr, strict=True):
        theta[s : s + t.nc] = np.log(sd_t)
        if t.nc > 1:
            L = np.linalg.cholesky(corr_t)
            for j, (r, col) in enumerate(spiral(t.nc)):
                theta[c + j] = L[r, col] / L[r, r]
    theta[mm.hdim - 1] = math.log(sigma)
    return theta


def logp(mm: MarginalModel, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The log posterior density of θ (unconstrained, Jacobians included) and its gradient."""
    grad = np.empty(mm.dim)
    theta = np.ascontiguousarray(theta, dtype=float)
    return float(KERNELS[type(mm.data)](theta, mm.data, grad)), grad


#: the compiled log density of each kernel data type (one registry: the sampler reaches the
#: same functions through ``compiled.logp_fn``)
KERNELS = {
    nb.OneFactor: nb.logp_grad_one_factor,
    nb.OneFactorFixef: nb.logp_grad_one_factor_fixef,
    nb.KernelData: nb.logp_grad,
    nb.PartialData: nb.logp_grad_partial,
}


# --------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------


def scales(mm: MarginalModel) -> np.ndarray:
    """The order of magnitude of each parameter's posterior spread, which starts the metric:
    the least-squares standard errors for β (in y's units), 1 for the log-scale and
    correlation parameters."""
    d = mm.integrated
    out = np.ones(mm.dim)
    if d.par.p:
        resid2 = max(d.ete / max(d.n - d.par.p, 1.0), 1e-300)
        se = np.sqrt(np.abs(np.diag(np.linalg.pinv(d.XtX))) * resid2)
        out[: d.par.p] = np.where(se > 0, se, 1.0)
    if isinstance(mm.data, nb.PartialData):  # centred effects: a quarter of sd(y)
        sy = float(np.std(mm.design.y)) or 1.0
        for u, t in enumerate(mm.data.lat_term):
            if mm.data.centred[t]:
                o = mm.hdim + mm.data.lat_off[u]
                term = mm.design.terms[t]
                out[o : o + term.nc] = [
                    0.25 * sy / (np.std(term.X[:, c]) or 1.0) for c in range(term.nc)
                ]
    return out


@dataclass(frozen=True)
class Start:
    """Where the chains start: ``points`` (chains, dim) and the initial metric M⁻¹ (dim, dim)."""

    points: np.ndarray
    metric: np.ndarray


def initial_points(mm: MarginalModel, chains: int, rng: np.random.Generator) -> Start:
    """Each chain starts near the posterior mode, jittered: quasi-Newton steps on the
    log density from least squares (β), SDs of a quarter of sd(y) on each column's scale,
    no correlation and σ the residual SD; then log-scale and correlation parameters
    jittered by U(−½, ½) and β by U(−1, 1) standard errors.  The metric starts at the
    Laplace covariance there (:func:`laplace_covariance`)."""
    from scipy.optimize import minimize

    design = mm.design.working()
    d = mm.integrated
    sy = float(np.std(design.y)) or 1.0
    sd = [
        np.array([0.25 * sy / (np.std(t.X[:, c]) or 1.0) for c in range(t.nc)])
        for t in design.terms
    ]
    fixef = np.linalg.lstsq(design.X, design.y, rcond=None)[0] if design.p else np.zeros(0)
    rss = float(np.sum((design.y - design.X @ fixef) ** 2))
    resid = math.sqrt(max(rss / max(d.n - design.p, 1.0), 1e-12 * sy**2)) or sy
    start = unconstrained(mm, fixef, sd, [np.eye(t.nc) for t in design.terms], resid)

    def neg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = logp(mm, theta)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(theta)
        return -value, -grad

    s = scales(mm)  # optimise in units of the scales: y's units do not matter

    def scaled(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = neg(start + s * u)
        return value, grad * s

    u = np.zeros(mm.dim)
    for _ in range(3):  # restarted: a step into the −∞ region can stall the line search
        found = minimize(scaled, u, jac=True, method="L-BFGS-B", options={"maxiter": 200})
        if np.isfinite(found.fun) and found.fun < 1e300:
            u = found.x
        if np.max(np.abs(scaled(u)[1]), initial=0.0) < 1e-3:
            break
    centre = start + s * u
    jitter = rng.uniform(-0.5, 0.5, size=(chains, mm.dim))
    jitter[:, : mm.p] *= 2.0
    return Start(centre + jitter * s, laplace_covariance(mm, centre))


#: the largest and smallest variance the Laplace metric gives a direction, in units of
#: :func:`scales`² (a flat or concave direction gets 1; the floor keeps the metric's
#: Cholesky defined, far below any posterior's spread: 10⁶ rows give log σ a variance of
#: 5·10⁻⁷)
LAPLACE_VAR_MAX, LAPLACE_VAR_MIN = 25.0, 1e-10


def laplace_covariance(mm: MarginalModel, theta: np.ndarray) -> np.ndarray:
    """H⁻¹, H the Hessian of −log p at ``theta`` by central differences of the gradient
    (steps of 10⁻⁴ scales), symmetrised; in units of :func:`scales`, each eigenvalue λ of
    H gives the variance 1/λ clipped to [LAPLACE_VAR_MIN, LAPLACE_VAR_MAX], or 1 where
    λ <= 0.  The posterior's spread differs from the scales by orders of magnitude when
    the data are informative (10⁴ groups: SDs of 0.01 on the log scale); starting the
    metric here saves the warm-up its most expensive trajectories."""
    s = scales(mm)
    dim = mm.dim
    h = 1e-4
    H = np.empty((dim, dim))
    for i in range(dim):
        e = np.zeros(dim)
        e[i] = h * s[i]
        H[:, i] = -(logp(mm, theta + e)[1] - logp(mm, theta - e)[1]) * s / (2.0 * h)
    fallback = np.diag(s**2)
    if not np.isfinite(H).all():
        return fallback
    lam, V = np.linalg.eigh((H + H.T) / 2.0)
    var = np.where(lam > 0, np.clip(1.0 / lam, LAPLACE_VAR_MIN, LAPLACE_VAR_MAX), 1.0)
    return (V * var) @ V.T * np.outer(s, s)


#: draws of b per seeded block (:func:`draw_effects`)
EFFECT_BLOCK = 256


@dataclass(frozen=True)
class Effects:
    """Exact draws of the integrated-out effects: ``beta`` (chains, draws, p), β of the
    centred design (None when θ holds β), and ``ranef``, per term (chains, draws, levels,
    k)."""

    beta: np.ndarray | None
    ranef: list[np.ndarray]


def draw_effects(
    mm: MarginalModel, theta: np.ndarray, seed: int | np.random.SeedSequence | None, cores: int
) -> Effects:
    """One exact draw of b (and β when integrated out) given Σ, σ (and β), y for every θ
    (chains, draws, dim).  Blocks of :data:`EFFECT_BLOCK` draws run ``cores`` at a time in
    threads, block i with the i-th child of ``SeedSequence(seed)`` (or of ``seed``, a
    SeedSequence): the draws do not depend on ``cores``."""
    part = mm.data if isinstance(mm.data, nb.PartialData) else None
    d = mm.integrated
    chains, ndraw = theta.shape[:2]
    flat = np.ascontiguousarray(theta.reshape(-1, mm.dim))
    N = flat.shape[0]
    b1 = np.empty((N, d.l1, d.k1))
    b2 = np.empty((N, d.q2 if isinstance(d, nb.KernelData) else 0))
    bs = np.empty((N, mm.dim - mm.hdim))
    fixef = np.empty((N, mm.design.p if isinstance(d, nb.OneFactorFixef) else 0))
    blocks = max(1, -(-N // EFFECT_BLOCK))
    bounds = np.minimum(np.arange(blocks + 1) * EFFECT_BLOCK, N)
    stream = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = int_seeds(stream, blocks)

    def job(i: int) -> None:
        a, b = bounds[i], bounds[i + 1]
        if part is not None:
            rest = b2 if isinstance(d, nb.KernelData) else fixef
            nb.draw_b_partial(flat[a:b], part, seeds[i], b1[a:b], rest[a:b], bs[a:b])
        elif isinstance(d, nb.OneFactor):
            nb.draw_b_one_factor(flat[a:b], d, seeds[i], b1[a:b])
        elif isinstance(d, nb.OneFactorFixef):
            nb.draw_b_one_factor_fixef(flat[a:b], d, seeds[i], b1[a:b], fixef[a:b])
        else:
            nb.draw_b(flat[a:b], d, seeds[i], b1[a:b], b2[a:b])

    with ThreadPoolExecutor(max_workers=max(1, min(cores, blocks))) as pool:
        list(pool.map(job, range(blocks)))
    out = []
    for i, t in enumerate(mm.design.terms):
        if d.par.term_block[i] == 1:
            o = d.par.term_off1[i]
            b = b1[:, :, o : o + t.nc]
        elif d.par.term_block[i] == nb.LATENT:
            assert part is not None
            o = part.lat_off[int(np.flatnonzero(part.lat_term == i)[0])]
            b = bs[:, o : o + t.q].reshape(N, t.nl, t.nc)
        else:
            assert isinstance(d, nb.KernelData)
            first = int(np.flatnonzero(d.unit_term == i)[0])
            o = d.unit_off[first]
            b = b2[:, o : o + t.q].reshape(N, t.nl, t.nc)
        out.append(b.reshape(chains, ndraw, t.nl, t.nc))
    beta = None
    if mm.fixef_prior is not None:
        if isinstance(d, nb.KernelData):
            o = d.unit_off[-1]
            fixef = b2[:, o : o + mm.design.p]
        beta = (fixef + mm.fixef_prior[0]).reshape(chains, ndraw, -1)
    return Effects(beta, out)


def default_cores(chains: int) -> int:
    """The cores this process may use (at most ``chains``)."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(chains, len(usable) if usable else os.cpu_count() or 1))


def sample(
    design: Design,
    priors: Mapping[str, Prior],
    coords: Mapping[str, list],
    settings: SamplerSettings,
    latent: Mapping[int, bool] | None = None,
) -> xr.DataTree:
    """Sample the marginal posterior (partially marginal with ``latent`` terms, see
    :func:`build`) and draw b; the draws as a DataTree with PyMC's variable names and
    named coordinates (groups ``posterior``, ``sample_stats``, ``observed_data``).  Each
    random stage uses its own child of the seed (:func:`bayeslmm.rng.seed_stream`)."""
    mm = build(design, priors, latent=latent)
    s = settings
    cores = default_cores(s.chains) if s.cores is None else s.cores
    rng = np.random.default_rng(s.stream("start"))
    start = initial_points(mm, s.chains, rng)
    run = run_chains(
        mm.data,
        start.points,
        start.metric,
        draws=s.draws,
        tune=s.tune,
        seed=s.stream("chains"),
        target_accept=s.target_accept,
        max_depth=s.max_treedepth,
        cores=cores,
        progressbar=s.progressbar,
        save_warmup=s.save_warmup,
    )
    effects = draw_effects(mm, run.theta, s.stream("effects"), cores)
    return to_datatree(mm, run, effects, coords)


def to_datatree(
    mm: MarginalModel, run: Chains, effects: Effects, coords: Mapping[str, list]
) -> xr.DataTree:
    """The draws in ArviZ's layout (xarray DataTree), dims named as the PyMC model's."""
    design = mm.design
    chains, ndraw = run.theta.shape[:2]
    base = {"chain": np.arange(chains), "draw": np.arange(ndraw)}
    sample = list(names.SAMPLE_DIMS)
    values = constrained(mm, run.theta, effects.beta)
    dims: dict[str, list[str]] = {
        names.INTERCEPT: [],
        names.BETA: [names.SLOPE],
        names.FIXEF: [names.FIXEF_DIM],
        names.SIGMA: [],
    }
    for t in design.terms:
        tdim, bis = names.term_dim(t.group), names.term_dim_bis(t.group)
        dims[names.sd(t.group)] = [tdim]
        dims[names.corr_chol(t.group)] = [tdim, bis]
        dims[names.corr(t.group)] = [tdim, bis]
    posterior = {k: (sample + dims[k], v) for k, v in values.items()}
    for t, b in zip(design.terms, effects.ranef, strict=True):
        posterior[names.ranef(t.group)] = ([*sample, t.factor, names.term_dim(t.group)], b)
    used = {d for dims_, _ in posterior.values() for d in dims_} - set(sample)
    post_coords = {**base, **{k: v for k, v in coords.items() if k in used}}
    stats_ds = sample_stats(run, base)
    stats_ds.attrs[INTEGRATED_FIXEF] = int(mm.fixef_prior is not None)
    observed = xr.Dataset({names.Y: ([names.OBS], design.y)}, coords={names.OBS: coords[names.OBS]})
    groups = {
        "posterior": xr.Dataset(posterior, coords=post_coords),
        "sample_stats": stats_ds,
        "observed_data": observed,
    }
    if run.warmup.shape[1]:  # the parameters NUTS moved (β only when not integrated out)
        warm = constrained(mm, run.warmup)
        if not mm.p:
            warm = {k: v for k, v in warm.items() if k not in _FIXEF_NAMES}
        groups.update(warmup_groups(run, {k: (sample + dims[k], v) for k, v in warm.items()}))
    return xr.DataTree.from_dict(groups)


_FIXEF_NAMES = (names.INTERCEPT, names.BETA, names.FIXEF)

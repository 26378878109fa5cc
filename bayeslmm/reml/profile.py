"""Profile likelihood intervals: lme4 1.1-31's ``profile.merMod`` + ``confint.thpr``.

The model is profiled by ML whatever the fit (lme4's ``devfun2`` calls ``refitML``), on
the sd / correlation / σ scale.  For a variance parameter w at value x,

    ζ(x) = sign(x − x̂) · sqrt(min_{others} D(sd, cor, σ) − D̂),
    D = log|I + ZΛΛᵀZᵀ| + r²(θ)/σ² + n·log(2πσ²)   (β profiled out, Λ = Λ(sd, cor)/σ),

the others being every other SD, correlation and σ.  For a fixed effect β_j, as lme4, the
column X_j becomes an offset x·X_j and the ML criterion of the reduced model is minimised
over θ (σ and the other β profiled out).  The interval is {x : |ζ(x)| ≤ z_{(1+level)/2}};
each end is solved for with a root finder (secant steps on log sd, atanh cor, log σ or β,
then Illinois regula falsi) instead of lme4's spline through the profile.  An end that the
profile does not reach before a bound is the bound (an SD's 0, a correlation's ±1), as in
``confint.thpr``.

Each inner minimisation is :func:`~bayeslmm.reml.optimize.bfgs` on the exact gradient of
:meth:`DenseDeviance.pieces <bayeslmm.reml.dense.DenseDeviance.pieces>` (full factors:
the profiled term's factor is permuted so the constraint binds its first rows), warm
started from the profile trace: its tangent at the optimum, then extrapolation of the last
two solved points.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..design import Design
from ..errors import ConvergenceWarning
from .dense import DenseDeviance
from .inference import Kind, Target
from .optimize import bfgs, hessian, optimize, positive_definite, start_theta
from .pls import template


def _chol_psd(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite k x k matrix (a zero pivot gives
    a zero column)."""
    k = len(M)
    G = np.zeros((k, k))
    tol = 1e-14 * max(1.0, float(np.max(np.diag(M))))
    for j in range(k):
        d = M[j, j] - G[j, :j] @ G[j, :j]
        if d <= tol:
            continue
        G[j, j] = math.sqrt(d)
        G[j + 1 :, j] = (M[j + 1 :, j] - G[j + 1 :, :j] @ G[j, :j]) / G[j, j]
    return G


def _pd_inverse(H: np.ndarray) -> np.ndarray:
    """Inverse of H with its eigenvalues made positive: BFGS's starting inverse Hessian."""
    return np.linalg.inv(positive_definite((H + H.T) / 2))


class _VarianceProblem:
    """The ML deviance D(x, ψ) with one SD, correlation or σ held at x (module doc).

    ψ = [θ of the other terms, free entries of the profiled term, log σ (unless σ is
    profiled)].  The profiled term's factor is F = PᵀG, P the permutation that puts the
    profiled column (SD) or pair (correlation) first and G lower triangular, so the
    constraint binds the first row(s) of G only:

        SD:           G[0, 0] = x/σ
        correlation:  G[0, 0] = e^{η₀}, G[1, :2] = e^{η₁}(x, sqrt(1 − x²))
    """

    def __init__(self, dev: DenseDeviance, theta: np.ndarray, sigma: float, target: Target):
        self.dev, self.n, self.kind = dev, dev.n, target.kind
        design = dev.design
        others = [
            t for t in range(len(design.terms)) if target.kind == "sigma" or t != target.index
        ]
        slices = design.theta_slices
        self.gen_pos = np.concatenate(
            [dev.theta_positions[slices[t]] for t in others] + [np.zeros(0, np.intp)]
        )
        psi = [float(v) for t in others for v in theta[slices[t]]]
        self.gen_idx = np.arange(len(psi))
        self.sp_pos = self.sp_idx = np.zeros(0, dtype=np.intp)
        self.pos: dict[tuple[int, int], int] = {}  # (r, c) of G -> position in the factors
        self.eta = (0, 0)  # where η₀, η₁ sit in ψ (correlation)
        logs: list[int] = []  # entries of ψ on the log scale
        self.x_hat = sigma
        if target.kind != "sigma":
            t = target.index
            term = design.terms[t]
            k, base = term.nc, dev.full_slices[t].start
            lead = [target.i] if target.kind == "sd" else [target.j, target.i]
            perm = lead + [c for c in range(k) if c not in lead]
            T = template(theta[slices[t]], k)
            G = _chol_psd((T @ T.T)[np.ix_(perm, perm)])
            self.pos = {(r, c): base + perm[r] * k + c for r in range(k) for c in range(r + 1)}
            if target.kind == "corr":
                norm1 = math.hypot(G[1, 0], G[1, 1])
                self.eta = (len(psi), len(psi) + 1)
                logs += self.eta
                psi += [math.log(G[0, 0]), math.log(norm1)]
                self.x_hat = G[1, 0] / norm1
            else:
                self.x_hat = sigma * G[0, 0]
            free = [(r, c) for r in range(len(lead), k) for c in range(r + 1)]
            self.sp_pos = np.array([self.pos[rc] for rc in free], dtype=np.intp)
            self.sp_idx = len(psi) + np.arange(len(free))
            psi += [float(G[rc]) for rc in free]
            logs.append(len(psi))
            psi.append(math.log(sigma))
        self.psi_hat = np.array(psi)
        self.logs = np.array(logs, dtype=np.intp)

    def value_grad(self, x: float, psi: np.ndarray) -> tuple[float, float, np.ndarray]:
        """D(x, ψ), ∂D/∂x and ∇_ψ D (D = ∞ where a log-scale entry over- or underflows)."""
        if np.any(np.abs(psi[self.logs]) > 700.0):
            return np.inf, np.nan, np.zeros(len(psi))
        full = np.zeros(self.dev.nfull)
        full[self.gen_pos] = psi[self.gen_idx]
        full[self.sp_pos] = psi[self.sp_idx]
        sigma = x if self.kind == "sigma" else math.exp(psi[-1])
        e0 = e1 = c = 0.0
        if self.kind == "sd":
            full[self.pos[0, 0]] = x / sigma
        elif self.kind == "corr":
            e0, e1 = math.exp(psi[self.eta[0]]), math.exp(psi[self.eta[1]])
            c = math.sqrt(max(0.0, 1.0 - x * x))
            full[self.pos[0, 0]] = e0
            full[self.pos[1, 0]] = e1 * x
            full[self.pos[1, 1]] = e1 * c
        pc = self.dev.pieces(full)
        g = np.zeros(len(psi))
        if pc is None:
            return np.inf, np.nan, g
        assert pc.g_logdet is not None and pc.g_r2 is not None
        s2 = sigma * sigma
        f = pc.logdet + pc.r2 / s2 + self.n * math.log(2 * math.pi * s2)
        gfull = pc.g_logdet + pc.g_r2 / s2
        g[self.gen_idx] = gfull[self.gen_pos]
        g[self.sp_idx] = gfull[self.sp_pos]
        gsig = -2.0 * pc.r2 / (s2 * sigma) + 2.0 * self.n / sigma
        gx = np.nan
        if self.kind == "sigma":
            gx = gsig
        elif self.kind == "sd":
            g00 = gfull[self.pos[0, 0]]
            gx = g00 / sigma
            gsig -= g00 * x / s2
        else:
            g10, g11 = gfull[self.pos[1, 0]], gfull[self.pos[1, 1]]
            g[self.eta[0]] = gfull[self.pos[0, 0]] * e0
            g[self.eta[1]] = e1 * (g10 * x + g11 * c)
            if c > 0:
                gx = e1 * (g10 - g11 * x / c)
        if self.kind != "sigma":
            g[-1] = sigma * gsig
        return float(f), float(gx), g


class _FixefProblem:
    """lme4's fixed-effect profile: X_j becomes the offset x·X_j and the ML criterion of
    the reduced model is minimised over ψ = θ (σ and the other β profiled out).

    The reduced model's cross-products are A's without row and column j, with y − x·X_j
    for y (:meth:`DenseDeviance.set_response`); ∂/∂x of the criterion is
    n·(−2 X_jᵀr)/r², r the penalised residual."""

    def __init__(self, dev: DenseDeviance, theta: np.ndarray, beta: np.ndarray, j: int):
        design = dev.design
        q, N = dev.q, dev.q + dev.p + 1
        keep = np.array([i for i in range(N) if i != q + j])
        A = dev.A
        self.a_y, self.a_j = A[keep[:-1], N - 1].copy(), A[keep[:-1], q + j].copy()
        self.a_jj, self.a_yj, self.a_yy = A[q + j, q + j], A[N - 1, q + j], A[N - 1, N - 1]
        self.row_j = A[q + j].copy()
        self.q, self.j, self.n = q, j, dev.n
        others = [c for c in range(design.p) if c != j]
        reduced = replace(
            design,
            X=design.X[:, others],
            fixef_names=tuple(design.fixef_names[c] for c in others),
        )
        self.dev = DenseDeviance(reduced, reml=False, A=A[np.ix_(keep, keep)])
        self._x: float | None = None
        self.x_hat = float(beta[j])
        self.psi_hat = np.asarray(theta, dtype=float).copy()

    def value_grad(self, x: float, psi: np.ndarray) -> tuple[float, float, np.ndarray]:
        dev = self.dev
        if x != self._x:
            yy = self.a_yy - 2 * x * self.a_yj + x * x * self.a_jj
            dev.set_response(self.a_y - x * self.a_j, yy)
            self._x = x
        pc = dev.pieces(psi, full=False)
        if pc is None:
            return np.inf, np.nan, np.zeros(len(psi))
        assert pc.g_logdet is not None and pc.g_r2 is not None
        f = dev.profiled_criterion(pc.logdet, pc.logdet_x, pc.r2)
        w = np.insert(pc.v, self.q + self.j, -x)  # the residual in the columns of [Z X y]
        gx = (self.n / pc.r2) * (-2.0 * float(self.row_j @ w))
        return f, gx, pc.g_logdet + (dev.dof / pc.r2) * pc.g_r2


_Problem = _VarianceProblem | _FixefProblem


@dataclass
class _Trace:
    """The profile of one parameter: its optimum, the points solved so far (x, ψ*(x)) and
    BFGS's inverse Hessian, carried from one inner minimisation to the next."""

    prob: _Problem
    base: float
    x_hat: float
    psi_hat: np.ndarray
    dpsi: np.ndarray  # dψ*/dx at the optimum
    se: float  # sqrt(2 / profile curvature): ζ ≈ (x − x̂)/se near the optimum
    probe: float  # a first step (natural units) where se is not finite
    Hinv: np.ndarray
    points: list[tuple[float, np.ndarray]] = field(default_factory=list)

    def start(self, x: float) -> np.ndarray:
        """Warm start for x: the tangent at the optimum, else the line through the solved
        point nearest x on the same side and the next one at least a twentieth of their
        distance to x away from it (the optimum if none: a root finder's last points are
        too close together for a slope)."""
        side = [(xa, pa) for xa, pa in self.points if (xa - self.x_hat) * (x - self.x_hat) > 0]
        if not side:
            return self.psi_hat + (x - self.x_hat) * self.dpsi
        side.sort(key=lambda pt: abs(pt[0] - x))
        xa, pa = side[0]
        far = [pt for pt in side[1:] if abs(pt[0] - xa) >= 0.05 * abs(x - xa)]
        xb, pb = far[0] if far else (self.x_hat, self.psi_hat)
        if xa == xb or not (np.isfinite(xa) and np.isfinite(xb)):
            return pa.copy()
        return pa + (x - xa) * (pa - pb) / (xa - xb)

    def zeta(self, x: float) -> float:
        """ζ(x) = sign(x − x̂)·sqrt(min_ψ D(x, ψ) − D̂)."""
        prob = self.prob

        def fun(psi: np.ndarray) -> tuple[float, np.ndarray]:
            f, _, g = prob.value_grad(x, psi)
            return f, g

        res = bfgs(fun, self.start(x), self.Hinv)
        if not np.isfinite(res.f):  # the extrapolated start left the domain: the nearest
            nearest = min(self.points, key=lambda pt: abs(pt[0] - x), default=(0, self.psi_hat))
            res = bfgs(fun, nearest[1].copy(), self.Hinv)
        if np.all(np.isfinite(res.Hinv)):
            self.Hinv = res.Hinv
        self.points.append((x, res.x))
        return math.copysign(math.sqrt(max(res.f - self.base, 0.0)), x - self.x_hat)


@dataclass(frozen=True)
class _Scale:
    """The scale root-finding steps are taken on, and the parameter's bounds."""

    lower: float
    upper: float
    to_t: Callable[[float], float]
    from_t: Callable[[float], float]


_SCALES: dict[Kind, _Scale] = {
    "fixef": _Scale(-np.inf, np.inf, float, float),
    "sigma": _Scale(0.0, np.inf, math.log, math.exp),
    "sd": _Scale(0.0, np.inf, math.log, math.exp),
    "corr": _Scale(-1.0, 1.0, math.atanh, math.tanh),
}


def _root(trace: _Trace, scale: _Scale, target: float) -> float:
    """The x where ζ(x) = target (±z) on one side of x̂, or the bound the profile does not
    reach the target before.

    Secant steps on the scale's t (capped at 4x the last step) until the target is
    bracketed or met (|ζ − target| < 1e-6, or a step below t's resolution), then Illinois
    regula falsi to |ζ − target| < 1e-6.  Steps that take x to
    within 1e-8 (relative) of a bound evaluate ζ at the bound itself.
    """
    d = 1.0 if target > 0 else -1.0
    bound = scale.upper if d > 0 else scale.lower
    x_hat = trace.x_hat
    if x_hat == bound:
        return bound
    interior = scale.lower < x_hat < scale.upper
    to_t, from_t = (scale.to_t, scale.from_t) if interior else (float, float)
    t_hat = to_t(x_hat)
    if interior and np.isfinite(trace.se):  # the quadratic approximation's end, on t
        h = 1e-6 * trace.se
        t1 = t_hat + d * abs(target) * trace.se * abs(to_t(x_hat + d * h) - t_hat) / h
    else:  # a probe, at most half-way to the bound
        x1 = x_hat + d * (trace.se if np.isfinite(trace.se) else trace.probe)
        t1 = to_t(x1 if scale.lower < x1 < scale.upper else (x_hat + bound) / 2)
    a = (t_hat, 0.0)
    for _ in range(50):
        x1 = from_t(t1)
        near = math.isfinite(bound) and abs(x1 - bound) <= 1e-8 * max(1.0, abs(bound))
        if near or not scale.lower < x1 < scale.upper:
            zb = trace.zeta(bound)
            if (zb - target) * d < 0:
                return bound
            return _illinois(trace, float, float, (from_t(a[0]), a[1]), (bound, zb), target)
        z1 = trace.zeta(x1)
        if (z1 - target) * d >= 0:
            return _illinois(trace, to_t, from_t, a, (t1, z1), target)
        last = t1 - a[0]
        if abs(z1 - target) < 1e-6 or last == 0:  # at the root, or t cannot move any more
            return x1
        slope = (z1 - a[1]) / last  # ζ increases with t on both sides
        step = (target - z1) / slope if slope > 0 else 2 * last  # secant, or push on
        a, t1 = (t1, z1), t1 + float(np.clip(step, -4 * abs(last), 4 * abs(last)))
    warnings.warn(
        f"the profile did not reach zeta = {target:.3g} in 50 steps; that end is NaN",
        ConvergenceWarning,
        stacklevel=5,
    )
    return np.nan


def _illinois(
    trace: _Trace,
    to_t: Callable[[float], float],
    from_t: Callable[[float], float],
    a: tuple[float, float],
    b: tuple[float, float],
    target: float,
    tol: float = 1e-6,
) -> float:
    """Illinois regula falsi for ζ(from_t(t)) = target in the bracket [a, b] of (t, ζ)."""
    (ta, fa), (tb, fb) = (a[0], a[1] - target), (b[0], b[1] - target)
    if abs(fb) < tol:
        return from_t(tb)
    for _ in range(60):
        tc = (ta * fb - tb * fa) / (fb - fa)
        fc = trace.zeta(from_t(tc)) - target
        if abs(fc) < tol or abs(tb - ta) <= 1e-12 * max(1.0, abs(tc)):
            return from_t(tc)
        if fc * fb < 0:
            ta, fa = tb, fb
        else:
            fa /= 2
        tb, fb = tc, fc
    return from_t(tb)


class Profiler:
    """The ML optimum and its cross-products, shared by every parameter's profile.

    ``theta_ml``: the ML estimate θ̂ of an ML fit; None (a REML fit) refits by ML from
    lme4's start (:func:`~bayeslmm.reml.optimize.optimize`), as lme4's ``devfun2`` does.
    Either is polished on the exact gradient: D̂ is the base of every profile."""

    def __init__(self, design: Design, theta_ml: np.ndarray | None):
        self.design = design
        self.dev = dev = DenseDeviance(design, reml=False)
        if theta_ml is None:
            theta = optimize(dev, start_theta(design), design.theta_lower).theta
        else:
            theta = np.asarray(theta_ml, dtype=float)
        _, g = dev.value_and_grad(theta)
        res = bfgs(dev.value_and_grad, theta, _pd_inverse(hessian(dev.gradient, theta, g)))
        self.theta, self.base = res.x, res.f
        pc = dev.pieces(self.theta, grad=False, full=False)
        assert pc is not None
        self.sigma = math.sqrt(pc.r2 / design.nobs)
        self.beta = pc.beta
        self._traces: dict[tuple[Kind, int, int, int], _Trace] = {}

    def intervals(self, targets: Sequence[Target], z: float) -> np.ndarray:
        """(lower, upper) of each target: the ends where |ζ| = z."""
        rows = []
        for target in targets:
            if target.kind == "corr" and self._reduced_zeta2(target) < z * z:
                rows.append((-1.0, 1.0))  # see _reduced_zeta2
                continue
            trace = self._trace(target)
            scale = _SCALES[target.kind]
            rows.append((_root(trace, scale, -z), _root(trace, scale, z)))
        return np.array(rows, dtype=float).reshape(len(rows), 2)

    def _problem(self, target: Target) -> _Problem:
        if target.kind == "fixef":
            return _FixefProblem(self.dev, self.theta, self.beta, target.index)
        return _VarianceProblem(self.dev, self.theta, self.sigma, target)

    def _trace(self, target: Target) -> _Trace:
        """The profile's start: the Hessian of D in (x, ψ) at the optimum (differences of
        the exact gradient) for the first step and the trace's tangent.  One per
        parameter: later calls return it with the points solved since."""
        key = (target.kind, target.index, target.i, target.j)
        if key not in self._traces:
            self._traces[key] = self._new_trace(target)
        return self._traces[key]

    def _new_trace(self, target: Target) -> _Trace:
        prob = self._problem(target)
        x0, psi0 = prob.x_hat, prob.psi_hat

        def grad(v: np.ndarray) -> np.ndarray:
            _, gx, g = prob.value_grad(float(v[0]), v[1:])
            return np.concatenate([[gx], g])

        v0 = np.concatenate([[x0], psi0])
        H = hessian(grad, v0, grad(v0), delta=1e-6)
        Hpp_inv = _pd_inverse(H[1:, 1:])
        dpsi, se = np.zeros(len(psi0)), np.nan
        if np.isfinite(H[:, 0]).all():  # not at a correlation of ±1
            dpsi = -Hpp_inv @ H[1:, 0]
            curvature = H[0, 0] + float(H[1:, 0] @ dpsi)  # Schur complement: d²ζ²/dx²
            se = math.sqrt(2.0 / curvature) if curvature > 0 else np.nan
        # an estimate within rounding of its bound is on it (lme4 snaps θ to its bound)
        if target.kind == "sd" and x0 <= 1e-7 * self.sigma:
            x0 = 0.0
        elif target.kind == "corr" and abs(x0) >= 1 - 1e-9:
            x0 = math.copysign(1.0, x0)
        probe = 0.5 if target.kind == "corr" else 0.5 * self.sigma  # a first step from a bound
        return _Trace(prob, self.base, x0, psi0, dpsi, se, probe, Hpp_inv)

    def _reduced_zeta2(self, target: Target) -> float:
        """min ζ² over the models with either of the correlation's SDs at 0.

        Such a model leaves the correlation without effect, so it is a candidate at every
        value of the correlation: the profile (a minimum over the other parameters) never
        exceeds this, and where it is below z² the interval is all of [−1, 1] (also when
        an SD is 0 at the optimum, where the correlation is not identified).  A profile
        that follows the trace from the optimum can stay in a local minimum and miss it.
        """
        return min(
            self._trace(Target("", "sd", target.index, col)).zeta(0.0) ** 2
            for col in (target.i, target.j)
        )

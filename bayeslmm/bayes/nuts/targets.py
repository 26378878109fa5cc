"""Reference targets for validating the sampler (tests, benchmarks): Neal's funnel, whose
neck NUTS cannot enter without divergences.  :func:`..compiled.logp_fn` dispatches to it
through a second overload (the kernels' own returns None for this type)."""

from __future__ import annotations

import math
from typing import NamedTuple

from numba import njit
from numba.extending import overload

from ..compiled import logp_fn


class Funnel(NamedTuple):
    """Neal's funnel: v ~ N(0, ``scale``²), xᵢ | v ~ N(0, eᵛ) for i < d − 1 (θ = (v, x))."""

    scale: float


@njit(cache=True, nogil=True, error_model="numpy")
def funnel_logp_grad(theta, d, grad):
    v = theta[0]
    ev = math.exp(-v)
    lp = -0.5 * v * v / (d.scale * d.scale)
    gv = -v / (d.scale * d.scale)
    for i in range(1, theta.shape[0]):
        x = theta[i]
        lp -= 0.5 * x * x * ev + 0.5 * v
        gv += 0.5 * x * x * ev - 0.5
        grad[i] = -x * ev
    grad[0] = gv
    return lp


@overload(logp_fn, jit_options={"nogil": True, "error_model": "numpy"})
def _logp_fn_targets(theta, data, grad):
    if getattr(data, "instance_class", None) is Funnel:
        return lambda theta, data, grad: funnel_logp_grad(theta, data, grad)
    return None

"""Stan's warm-up: the window schedule (:func:`windows`) and what each warm-up iteration
adapts (:func:`adapt`): dual averaging of the step size towards ``target_accept`` and, inside
the slow windows, the metric's moments; at each window's end a new metric and a new
step-size search (deferred to the next iteration, kept in the chain's state so that a
chunk boundary cannot lose it)."""

from __future__ import annotations

import numpy as np
from numba import njit

from . import metric as mt
from .stepsize import dual_averaging, finish


def windows(tune: int) -> np.ndarray:
    """Stan's metric windows for ``tune`` warm-up iterations: element 0 is where the first
    slow window starts (after a 75-iteration buffer), the rest are the iterations at which
    the metric is re-estimated (windows of 25, 50, 100, ...; a 50-iteration terminal
    buffer).  Short warm-ups scale the buffers to 15 % and 10 %; below 20, no metric
    adaptation."""
    if tune < 20:
        return np.array([0], dtype=np.int64)
    init, term, size = 75, 50, 25
    if init + term + size > tune:
        init, term = int(0.15 * tune), int(0.1 * tune)
        size = tune - init - term
    ends, start, last = [init], init, tune - term
    while True:
        end = start + size
        if end + 2 * size > last:
            end = last
        ends.append(end)
        if end >= last:
            return np.array(ends, dtype=np.int64)
        start, size = end, 2 * size


@njit(cache=True, nogil=True, error_model="numpy")
def window_ends_at(ends, it):
    """True when warm-up iteration ``it`` closes a metric window."""
    for k in range(1, ends.shape[0]):  # noqa: SIM110 (numba: no generator in any())
        if it + 1 == ends[k]:
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def adapt(adapt_, cfg, chain, it, accept, inv_tmp, chol_tmp):
    """Warm-up iteration ``it`` (its transition's mean acceptance ``accept``, the draw
    in ``chain.q``)."""
    dual_averaging(adapt_, accept, cfg.target_accept)
    ends = chain.ends
    nwin = ends.shape[0]
    if nwin > 1 and ends[0] <= it < ends[nwin - 1]:
        adapt_.window_n += 1.0
        mt.welford(chain.window, adapt_.window_n, chain.q)
        if window_ends_at(ends, it):
            ok = mt.update(
                chain.metric, chain.window, adapt_.window_n, chain.scale2, cfg.robust_min,
                inv_tmp, chol_tmp,
            )  # fmt: skip
            if not ok:
                adapt_.metric_failures += 1
            mt.reset(chain.window)
            adapt_.window_n = 0.0
            adapt_.search_pending = True
    if it + 1 == cfg.tune:
        finish(adapt_)

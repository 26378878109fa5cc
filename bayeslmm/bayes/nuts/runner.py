"""The chain runner: chains from their starts, in chunks (for the progress bar), ``cores``
at a time in threads (the compiled code releases the GIL)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SamplingError
from ...progress import ProgressBar
from ...rng import int_seeds
from .adaptation import windows
from .chain import Chain, run_chunk
from .state import ADAPTATION, CONFIG, STATS, TREE, metric_from, new_window

#: a dense metric up to this dimension, a diagonal one above (O(d²) per leapfrog step)
DENSE_MAX = 50
#: a window's dense covariance needs this many draws per dimension (else its diagonal;
#: :func:`.metric.update`)
ROBUST_MIN = 2.0
#: the chunk of iterations between progress updates
CHUNK_MAX = 100
#: halvings of a start's distance to the starts' centre before giving up
START_RETRIES = 20


@dataclass(frozen=True)
class Chains:
    """What the sampler returns: θ draws (chains, draws, dim); per-iteration statistics
    (chains, tune + draws) of record dtype STATS; the warm-up draws (chains, tune, dim)
    when asked for; the adapted metric M⁻¹ per chain ((chains, d, d) dense or (chains, d)
    diagonal) and step size; the adaptation's final records (clamped searches, metric
    failures); the warm-up's length and the wall time."""

    theta: np.ndarray
    stats: np.ndarray
    warmup: np.ndarray
    metric: np.ndarray
    step_size: np.ndarray
    adaptation: np.ndarray
    tune: int
    sampling_time: float


def new_chain(q: np.ndarray, metric0: np.ndarray, dense: bool, ends: np.ndarray) -> Chain:
    """A chain at q whose metric starts at ``metric0`` (its diagonal unless ``dense``)."""
    d = q.shape[0]
    metric = metric_from(metric0, dense)
    scale2 = np.ascontiguousarray(np.diag(metric0), dtype=float)
    return Chain(
        np.array(q, dtype=float), np.empty(d), metric, new_window(d, dense), scale2, ends,
        np.zeros(1, ADAPTATION), np.zeros(1, TREE),
    )  # fmt: skip


def check_metric(metric0: np.ndarray) -> None:
    """SamplingError unless the initial metric is a finite positive-definite matrix."""
    if not np.isfinite(metric0).all():
        raise SamplingError("the initial metric has non-finite entries")
    try:
        np.linalg.cholesky(metric0)
    except np.linalg.LinAlgError:
        raise SamplingError("the initial metric is not positive definite") from None


def run_chains(
    data: Any,
    points: np.ndarray,
    metric0: np.ndarray,
    *,
    draws: int,
    tune: int,
    seed: int | np.random.SeedSequence | None,
    target_accept: float,
    max_depth: int = 10,
    cores: int = 1,
    progressbar: bool = False,
    save_warmup: bool = False,
) -> Chains:
    """NUTS chains on the kernel ``data`` (any type :func:`..compiled.logp_fn` takes) from
    ``points`` (chains, dim) with the initial metric ``metric0``.  Chain c uses the c-th
    child of ``SeedSequence(seed)`` (or of ``seed``), so the draws do not depend on
    ``cores``.  A start whose log density is not finite moves half-way to the starts'
    centre, up to :data:`START_RETRIES` times, then SamplingError."""
    chains, dim = points.shape
    check_metric(metric0)
    stream = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = int_seeds(stream, chains)
    ends = windows(tune)
    total = tune + draws
    dense = dim <= DENSE_MAX
    theta = np.empty((chains, draws, dim))
    warm = np.empty((chains, tune if save_warmup else 0, dim))
    stats = np.zeros((chains, total), dtype=STATS)
    states = [new_chain(points[c], metric0, dense, ends) for c in range(chains)]
    done = np.zeros(chains, dtype=np.int64)
    chunk = max(1, min(CHUNK_MAX, total // 20))
    bar = ProgressBar(chains * total, f"Sampling {chains} chains", enabled=progressbar)

    centre = points.mean(axis=0)

    def run(c: int) -> None:
        config = np.zeros(1, CONFIG)
        config[0] = (tune, seeds[c], target_accept, max_depth, ROBUST_MIN)
        chain = states[c]
        for begin in range(0, total, chunk):
            stop = min(total, begin + chunk)
            retries = 0
            while not run_chunk(data, chain, config, begin, stop, theta[c], warm[c], stats[c]):
                if retries == START_RETRIES:  # only iteration 0 checks
                    raise SamplingError(
                        f"the log density is not finite at chain {c}'s start, nor at "
                        f"{START_RETRIES} points towards the starts' centre: check the "
                        "priors (a bound the data violate?) and the data"
                    )
                chain.q[:] = centre + (chain.q - centre) / 2.0
                retries += 1
            done[c] = stop
            bar.update(int(done.sum()))

    t0 = time.perf_counter()
    with bar:
        if cores <= 1 or chains == 1:
            for c in range(chains):
                run(c)
        else:
            with ThreadPoolExecutor(max_workers=cores) as pool:
                list(pool.map(run, range(chains)))
    metric = np.stack([s.metric.inv if dense else s.metric.diag for s in states])
    adaptation = np.concatenate([s.adaptation for s in states])
    step = adaptation["step_size"].copy()
    return Chains(theta, stats, warm, metric, step, adaptation, tune, time.perf_counter() - t0)

"""One rule for seeds: :func:`rng_from` turns what a user passes as ``seed`` into a numpy
Generator, and :func:`seed_stream` gives the independent streams of one sampling run.

A seed is a non-negative integer, a ``numpy.random.Generator`` (used as is, and advanced),
or None (fresh entropy).  A sampling run draws everything from children of
``SeedSequence(seed)``, one per purpose (:data:`STREAMS`), so no draw depends on how many
threads or processes produced it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import BayesLMMError

#: the purposes of a sampling run's random streams (children of ``SeedSequence(seed)``)
STREAMS = ("start", "chains", "effects", "predictive")


def check_seed(
    seed: Any, error: type[Exception] = BayesLMMError, generator: bool = True
) -> int | np.random.Generator | None:
    """``seed`` unchanged if it is None, an integer >= 0 or (when ``generator``) a numpy
    Generator; else ``error`` naming what it got."""
    integer = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
    if integer and seed >= 0:
        return int(seed)
    if seed is None or (generator and isinstance(seed, np.random.Generator)):
        return seed
    allowed = "a non-negative integer, a numpy Generator or None" if generator else (
        "a non-negative integer or None"
    )  # fmt: skip
    raise error(f"seed must be {allowed}, got {seed!r}")


def rng_from(seed: Any, error: type[Exception] = BayesLMMError) -> np.random.Generator:
    """The numpy Generator of ``seed`` (see the module doc); ``error`` on anything else."""
    checked = check_seed(seed, error)
    if isinstance(checked, np.random.Generator):
        return checked
    return np.random.default_rng(checked)


def fresh_seed() -> int:
    """A seed from fresh entropy (128 bits), to record what an unseeded run used."""
    return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]


def seed_stream(seed: int, purpose: str) -> np.random.SeedSequence:
    """The child of ``SeedSequence(seed)`` for ``purpose`` (one of :data:`STREAMS`)."""
    return np.random.SeedSequence(seed, spawn_key=(STREAMS.index(purpose),))


def int_seeds(stream: np.random.SeedSequence, n: int) -> list[int]:
    """``n`` 32-bit integer seeds, one per child of ``stream`` (for numba's generator)."""
    return [int(child.generate_state(1)[0]) for child in stream.spawn(n)]

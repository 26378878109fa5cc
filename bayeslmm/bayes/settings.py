"""``SamplerSettings``: every setting of a posterior run, validated once.

:meth:`bayeslmm.Model.sample` builds one; the layers below read its fields and never
re-check them.  ``extra`` holds only what passes through to ``pm.sample`` (the PyMC-driven
samplers); the package's compiled sampler takes none.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import SamplingError
from ..rng import check_seed, fresh_seed, seed_stream

#: "bayeslmm": the package's compiled NUTS (marginal form only); the others via PyMC
NUTS_SAMPLERS = ("bayeslmm", "pymc", "nutpie", "numpyro", "blackjax")
_SAMPLER_MODULES = {"nutpie": "nutpie", "numpyro": "numpyro", "blackjax": "blackjax"}
#: ``pm.sample`` arguments that a SamplerSettings field (or the Model) already sets
_RESERVED = {
    "random_seed": "seed=",
    "model": "the bayeslmm Model",
    "nuts_sampler_kwargs": "nuts={...}",
    "step": "target_accept= / nuts={...}",
    "draws": "draws=",
    "tune": "tune=",
    "chains": "chains=",
    "cores": "cores=",
    "target_accept": "target_accept=",
    "progressbar": "progressbar=",
}


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or :class:`SamplingError` unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SamplingError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SamplerSettings:
    """A posterior run: ``draws`` and ``tune`` (warm-up) iterations per chain, ``chains``,
    ``seed`` (None: fresh entropy, recorded here so the run can be repeated), the
    dual-averaging target ``target_accept``, ``max_treedepth``, ``cores`` (None: the
    usable CPUs, at most ``chains``; the draws never depend on it), ``nuts_sampler``
    (None: chosen by the model), ``progressbar``, ``save_warmup`` (keep the warm-up
    draws and statistics), ``log_likelihood`` (store the pointwise log-likelihood group
    for ``az.loo``), and ``extra``: keyword arguments for ``pm.sample``."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int | None = None
    target_accept: float = 0.95
    max_treedepth: int = 10
    cores: int | None = None
    nuts_sampler: str | None = None
    progressbar: bool = False
    save_warmup: bool = False
    log_likelihood: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seed = check_seed(self.seed, SamplingError, generator=False)
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "seed", fresh_seed() if seed is None else seed)
        for name, minimum in (("draws", 1), ("tune", 0), ("chains", 1), ("max_treedepth", 1)):
            set_(self, name, check_int(name, getattr(self, name), minimum))
        if self.cores is not None:
            set_(self, "cores", check_int("cores", self.cores, 1))
        ta = self.target_accept
        if isinstance(ta, bool) or not isinstance(ta, float | int) or not 0 < float(ta) < 1:
            raise SamplingError(f"target_accept must be in (0, 1), got {ta!r}")
        set_(self, "target_accept", float(ta))
        for flag in ("progressbar", "save_warmup", "log_likelihood"):
            set_(self, flag, bool(getattr(self, flag)))
        _check_sampler(self.nuts_sampler)
        _check_extra(self.extra)
        set_(self, "extra", MappingProxyType(dict(self.extra)))

    def stream(self, purpose: str) -> np.random.SeedSequence:
        """The run's random stream for ``purpose`` (:data:`bayeslmm.rng.STREAMS`)."""
        assert self.seed is not None  # set in __post_init__
        return seed_stream(self.seed, purpose)

    def pymc_kwargs(self, sampler: str) -> dict[str, Any]:
        """The arguments of ``pm.sample`` for ``sampler`` (without the model, the sampler's
        name and the cores)."""
        extra = dict(self.extra)
        nuts = {**extra.pop("nuts", {}), "target_accept": self.target_accept}
        if sampler in ("pymc", "nutpie"):  # the JAX samplers name it otherwise
            nuts.setdefault("max_treedepth", self.max_treedepth)
        extra.setdefault("compute_convergence_checks", False)
        extra.setdefault("discard_tuned_samples", not self.save_warmup)
        if self.log_likelihood:
            extra.setdefault("idata_kwargs", {"log_likelihood": True})
        return dict(
            draws=self.draws, tune=self.tune, chains=self.chains, random_seed=self.seed,
            nuts=nuts, progressbar=self.progressbar, **extra,
        )  # fmt: skip


def _check_sampler(nuts_sampler: Any) -> None:
    if nuts_sampler is not None and nuts_sampler not in NUTS_SAMPLERS:
        raise SamplingError(
            f"nuts_sampler must be one of {', '.join(NUTS_SAMPLERS)}, got {nuts_sampler!r}"
        )
    module = _SAMPLER_MODULES.get(nuts_sampler)
    if module is not None and importlib.util.find_spec(module) is None:
        raise SamplingError(
            f"nuts_sampler={nuts_sampler!r} needs the {module!r} package: "
            f"pip install {module} (or use nuts_sampler='pymc')"
        )


def _check_extra(extra: Mapping[str, Any]) -> None:
    for reserved, ours in _RESERVED.items():
        if reserved in extra:
            raise SamplingError(f"pass {ours} instead of {reserved!r}")

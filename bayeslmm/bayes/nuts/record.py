"""The sampler's output in ArviZ's layout: ``sample_stats`` (every Stan diagnostic per
draw, the adapted metric and step size per chain) and, on request, the warm-up groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .runner import Chains

#: per-draw statistics, by the STATS field and ArviZ's name
STAT_NAMES = (
    "lp", "step_size", "tree_depth", "n_steps", "diverging", "reached_max_treedepth",
    "energy", "acceptance_rate",
)  # fmt: skip
SAMPLE = ("chain", "draw")


def _stats(rows: np.ndarray, coords: Mapping[str, Any]) -> xr.Dataset:
    return xr.Dataset({k: (SAMPLE, rows[k]) for k in STAT_NAMES}, coords=coords)


def sample_stats(run: Chains, coords: Mapping[str, Any]) -> xr.Dataset:
    """The draws' statistics, with per chain the adapted metric (``metric``: M⁻¹, dims
    chain × metric_dim (× metric_dim_bis when dense)), the step size, the step-size
    searches that hit a bound and the metric updates that failed; attributes
    ``sampling_time`` and ``tuning_steps``."""
    ds = _stats(run.stats[:, run.tune :], coords)
    metric_dims = ("chain", "metric_dim") + (("metric_dim_bis",) if run.metric.ndim == 3 else ())
    ds["metric"] = (metric_dims, run.metric)
    ds["adapted_step_size"] = ("chain", run.step_size)
    ds["step_size_clamped"] = ("chain", run.adaptation["clamped"])
    ds["metric_failures"] = ("chain", run.adaptation["metric_failures"])
    ds.attrs.update(sampling_time=run.sampling_time, tuning_steps=run.tune)
    return ds


def warmup_groups(run: Chains, values: Mapping[str, tuple[list[str], np.ndarray]]) -> dict:
    """``warmup_posterior`` (``values``: the warm-up draws by name, (dims, array)) and
    ``warmup_sample_stats``."""
    chains, tune = run.warmup.shape[:2]
    coords = {"chain": np.arange(chains), "draw": np.arange(tune)}
    return {
        "warmup_posterior": xr.Dataset(dict(values), coords=coords),
        "warmup_sample_stats": _stats(run.stats[:, : run.tune], coords),
    }

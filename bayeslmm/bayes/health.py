"""The sampler's own health from ``sample_stats``, whoever sampled (the package's NUTS,
PyMC's or nutpie's): divergences, tree-depth saturation, E-BFMI per chain, acceptance,
step size, and the warm-up's own alarms (step-size searches that hit a bound, metric
updates that failed).  Thresholds are Stan's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

#: E-BFMI below this in a chain: the momenta explore the energy poorly (Stan's 0.3)
EBFMI_MIN = 0.3
#: the names a statistic goes by (the package and PyMC first, then nutpie)
_ALIASES = {
    "diverging": ("diverging",),
    "tree_depth": ("tree_depth", "depth"),
    "reached_max_treedepth": ("reached_max_treedepth", "maxdepth_reached"),
    "energy": ("energy",),
    "acceptance_rate": ("acceptance_rate", "mean_tree_accept"),
    "step_size": ("step_size",),
}


def _stat(stats: xr.Dataset, name: str) -> np.ndarray | None:
    for alias in _ALIASES[name]:
        if alias in stats:
            return np.asarray(stats[alias].transpose("chain", "draw").to_numpy(), dtype=float)
    return None


def ebfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain (rows of ``energy``): mean squared energy change between
    draws over the energy's variance (Betancourt 2016; ArviZ's ``bfmi``)."""
    energy = np.atleast_2d(energy)
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)


@dataclass(frozen=True)
class SamplerHealth:
    """``divergences``; ``saturated``: transitions that stopped at ``max_treedepth``
    (``max_depth_seen``: the deepest tree); ``ebfmi`` per chain; ``acceptance`` (mean,
    against ``target_accept``) and ``step_size`` per chain; ``step_size_clamped`` and
    ``metric_failures`` in the warm-up (the package's sampler only).  NaN / -1 where the
    sampler did not record a statistic."""

    divergences: int
    saturated: int
    max_depth_seen: int
    max_treedepth: int
    ebfmi: tuple[float, ...]
    acceptance: float
    target_accept: float
    step_size: tuple[float, ...]
    step_size_clamped: int
    metric_failures: int

    def problems(self) -> list[str]:
        """What went wrong, each with what to do."""
        out = []
        if self.saturated:
            out.append(
                f"{self.saturated} transitions stopped at max_treedepth={self.max_treedepth} "
                "before a U-turn (the draws are valid but explore slowly): raise "
                f"max_treedepth (e.g. {self.max_treedepth + 2}), or reparameterise"
            )
        low = [f"chain {c}: {v:.2f}" for c, v in enumerate(self.ebfmi) if v < EBFMI_MIN]
        if low:
            out.append(
                f"E-BFMI < {EBFMI_MIN} ({', '.join(low)}): the momenta explore the energy "
                "poorly (heavy tails, a funnel): raise tune, tighten the priors, or "
                "reparameterise (parameterization='marginal' or 'noncentered')"
            )
        if self.step_size_clamped:
            out.append(
                f"the step-size search hit its bound {self.step_size_clamped} times: the log "
                "density is flat or improper in some direction; give every parameter a "
                "proper prior"
            )
        if self.metric_failures:
            out.append(
                f"{self.metric_failures} metric updates were not positive definite and were "
                "skipped: raise tune"
            )
        return out

    def describe(self) -> str:
        """One line for the printed summary."""
        eb = ", ".join(f"{v:.2f}" for v in self.ebfmi)
        eps = ", ".join(f"{v:.3g}" for v in self.step_size)
        depth = (
            f"tree depth max {self.max_depth_seen} ({self.saturated} at {self.max_treedepth})"
            if self.max_depth_seen >= 0
            else "tree depth n/a"
        )
        return (
            f"Sampler: {depth}, E-BFMI per chain {eb}, acceptance {self.acceptance:.2f} "
            f"(target {self.target_accept:g}), step size {eps}"
        )


def sampler_health(stats: xr.Dataset) -> SamplerHealth:
    """The :class:`SamplerHealth` of a run's ``sample_stats``."""
    div = _stat(stats, "diverging")
    depth = _stat(stats, "tree_depth")
    hit = _stat(stats, "reached_max_treedepth")
    energy = _stat(stats, "energy")
    acc = _stat(stats, "acceptance_rate")
    eps = _stat(stats, "step_size")
    attrs = stats.attrs
    max_td = int(attrs.get("max_treedepth", -1))
    saturated = int(hit.sum()) if hit is not None else 0
    if hit is None and depth is not None and max_td > 0:
        saturated = int((depth >= max_td).sum())
    return SamplerHealth(
        divergences=int(div.sum()) if div is not None else 0,
        saturated=saturated,
        max_depth_seen=int(depth.max()) if depth is not None and depth.size else -1,
        max_treedepth=max_td,
        ebfmi=tuple(float(v) for v in ebfmi(energy)) if energy is not None else (),
        acceptance=float(np.nanmean(acc)) if acc is not None else float("nan"),
        target_accept=float(attrs.get("target_accept", float("nan"))),
        step_size=tuple(float(v) for v in np.nanmean(eps, axis=1)) if eps is not None else (),
        step_size_clamped=int(stats["step_size_clamped"].sum())
        if "step_size_clamped" in stats
        else 0,
        metric_failures=int(stats["metric_failures"].sum()) if "metric_failures" in stats else 0,
    )

"""Priors of the Bayesian model: data-scaled defaults and user overrides.

Default priors (proper and weakly informative; s_y = sd(y), s_x = sd of a column, or
its root mean square when the column is constant)::

    Intercept            Normal(mean(y), 2.5 s_y)           (intercept of the centred design)
    fixef[x]             Normal(0, 2.5 s_y / s_x)           (slopes)
    fixef[x], no intercept in the model:  Normal(0, 2.5 rms(y) / rms(x))
    sd_g[c]              HalfStudentT(nu=3, sigma=s_y / s_x)   (s_y for an intercept column)
    corr_g               LKJ(eta=2)
    sigma                HalfStudentT(nu=3, sigma=s_y)

Overrides (``Model(..., priors=...)`` or ``sample(priors=...)``) are keyed by the
parameter names of :func:`prior_table` (``"sigma"``, ``"Intercept"``, ``"fixef[Days]"``,
``"sd_Subject[Days]"``, ``"corr_Subject"``) or by a block (``"fixef"``: every slope;
``"sd_Subject"``: every SD of that term).  A value is a :class:`Prior`, a tuple
``("HalfNormal", {"sigma": 10})`` or a string ``"HalfNormal(sigma=10)"`` /
``"Normal(0, 10)"``.  An override of the default family keeps the default arguments it
does not name.  The parameters of one block (the slopes; the SDs of one term) share one
distribution family.

Nothing here imports PyMC until an override has to be checked against PyMC's
distributions (:func:`resolve_priors`): the defaults and :func:`check_overrides` are
numpy only.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import names
from ..design import Design
from ..errors import PriorError

#: LKJ shape of the default correlation prior
LKJ_ETA = 2.0


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a PyMC distribution name and its keyword arguments.

    >>> Prior("HalfNormal", {"sigma": 10})
    Prior('HalfNormal(sigma=10)')
    """

    dist: str
    args: dict[str, Any] = field(default_factory=dict)
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.dist}({format_args(self.args)})"

    def __repr__(self) -> str:
        return f"Prior({str(self)!r})"


def format_args(args: Mapping[str, Any]) -> str:
    """``mu=0, sigma=10``: numbers to 4 significant digits."""

    def num(value: Any) -> str:
        if isinstance(value, int | float | np.floating | np.integer):
            return f"{float(value):.4g}"
        return str(value)

    return ", ".join(f"{k}={num(v)}" for k, v in args.items())


def _scale(x: np.ndarray) -> float:
    """sd of a column, or its root mean square when it is constant."""
    sd = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return sd if sd > 0 else float(np.sqrt(np.mean(x**2)))


def default_priors(design: Design) -> dict[str, Prior]:
    """The data-scaled default prior of every parameter, keyed by parameter name (y less
    the offset, where the model has one; weights do not enter the scales)."""
    y = design.y if design.offset is None else design.y - design.offset
    sy = float(np.std(y, ddof=1))
    if not sy > 0:
        sy = max(float(np.sqrt(np.mean(y**2))), 1.0)
    out: dict[str, Prior] = {}
    icpt = design.intercept_index
    if icpt is not None:
        out[names.INTERCEPT] = Prior(
            "Normal",
            {"mu": float(np.mean(y)), "sigma": 2.5 * sy},
            "Normal(mean(y), 2.5 sd(y)); intercept of the centred design",
        )
        for j, name in enumerate(design.fixef_names):
            if j != icpt:
                sx = _scale(design.X[:, j])
                out[names.fixef_label(name)] = Prior(
                    "Normal", {"mu": 0.0, "sigma": 2.5 * sy / sx}, "Normal(0, 2.5 sd(y) / sd(x))"
                )
    else:
        ry = float(np.sqrt(np.mean(y**2)))
        for j, name in enumerate(design.fixef_names):
            rx = float(np.sqrt(np.mean(design.X[:, j] ** 2)))
            out[names.fixef_label(name)] = Prior(
                "Normal",
                {"mu": 0.0, "sigma": 2.5 * ry / rx},
                "Normal(0, 2.5 rms(y) / rms(x)); no intercept",
            )
    for term in design.terms:
        for c, cname in enumerate(term.cnames):
            sx = _scale(term.X[:, c])
            const = np.ptp(term.X[:, c]) == 0
            rule = "HalfStudentT(3, sd(y))" if const else "HalfStudentT(3, sd(y) / sd(x))"
            out[names.sd_label(term.group, cname)] = Prior(
                "HalfStudentT", {"nu": 3.0, "sigma": sy / sx}, rule
            )
        if term.nc > 1:
            out[names.corr(term.group)] = Prior("LKJ", {"eta": LKJ_ETA}, "LKJ(eta=2)")
    out[names.SIGMA] = Prior("HalfStudentT", {"nu": 3.0, "sigma": sy}, "HalfStudentT(3, sd(y))")
    return out


def _blocks(design: Design, defaults: Mapping[str, Prior]) -> dict[str, list[str]]:
    """Block keys (``fixef``, ``sd_g``) and the parameter names each covers."""
    blocks = {names.FIXEF: [n for n in defaults if n.startswith(names.FIXEF + "[")]}
    for term in design.terms:
        blocks[names.sd(term.group)] = [names.sd_label(term.group, c) for c in term.cnames]
    return blocks


def check_overrides(design: Design, overrides: Any) -> dict[str, Any]:
    """The overrides as a dict, after the checks that need no PyMC: a mapping, known keys
    (:class:`PriorError` naming the unknown ones and listing the valid ones), readable
    values."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise PriorError(
            "priors must be a dict of parameter name -> prior, e.g. "
            f"{{'sigma': 'HalfNormal(sigma=10)'}}; got {type(overrides).__name__}"
        )
    defaults = default_priors(design)
    blocks = _blocks(design, defaults)
    unknown = [k for k in overrides if k not in defaults and k not in blocks]
    if unknown:
        valid = list(defaults) + [b for b in blocks if b not in defaults]
        hint = ""
        if names.fixef_label("(Intercept)") in unknown and names.INTERCEPT in defaults:
            hint = " (the intercept's prior is set on 'Intercept', the centred-design intercept)"
        raise PriorError(
            f"unknown prior parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}{hint}; valid: {', '.join(valid)}"
        )
    for key, spec in overrides.items():
        _read(key, spec)
    return dict(overrides)


def resolve_priors(design: Design, overrides: Mapping[str, Any] | None = None) -> dict[str, Prior]:
    """Defaults with ``overrides`` applied (blocks first, then single parameters).

    Raises :class:`PriorError` for an unknown parameter (listing the valid names), an
    unknown distribution, invalid arguments or a negative-support prior on an SD.
    """
    overrides = check_overrides(design, overrides)
    priors = default_priors(design)
    blocks = _blocks(design, priors)
    ordered = [k for k in overrides if k in blocks and k not in priors]
    ordered += [k for k in overrides if k in priors]
    for key in ordered:
        new = _parse_prior(key, overrides[key])
        for name in [key] if key in priors else blocks[key]:
            old = priors[name]
            args = {**old.args, **new.args} if new.dist == old.dist else new.args
            priors[name] = Prior(new.dist, args, f"user ({key})")
    for name, prior in priors.items():
        if prior.rule.startswith("user"):  # the defaults are valid by construction
            _validate(name, prior)
    for block in blocks.values():
        dists = {priors[n].dist for n in block}
        argsets = {tuple(sorted(priors[n].args)) for n in block}
        if len(dists) > 1 or len(argsets) > 1:
            detail = ", ".join(f"{n}: {priors[n]}" for n in block)
            raise PriorError(
                f"the parameters {', '.join(block)} share one distribution family and "
                f"arguments; got {detail}. Override the whole block with one family"
            )
    return priors


def _read(key: str, spec: Any) -> tuple[str, dict[str, Any], list[Any]]:
    """(distribution, keyword arguments, positional arguments) of a Prior, a
    ``(dist, args)`` tuple or a ``"Dist(a, b=1)"`` string."""
    if isinstance(spec, Prior):
        return spec.dist, dict(spec.args), []
    if isinstance(spec, tuple | list) and len(spec) in (1, 2) and isinstance(spec[0], str):
        return spec[0], dict(spec[1]) if len(spec) == 2 else {}, []
    if not isinstance(spec, str):
        raise PriorError(
            f"prior for {key!r} must be a Prior, a (distribution, {{arguments}}) tuple or a "
            f"string like 'HalfNormal(sigma=10)', got {spec!r}"
        )
    try:
        node = ast.parse(spec.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            raise ValueError
        positional = [ast.literal_eval(a) for a in node.args]
        args = {str(kw.arg): ast.literal_eval(kw.value) for kw in node.keywords}
    except (SyntaxError, ValueError):
        raise PriorError(
            f"cannot read the prior {spec!r} for {key!r}: write e.g. 'Normal(0, 10)' or "
            "'HalfNormal(sigma=10)'"
        ) from None
    return node.func.id, args, positional


def _distribution(name: str) -> Any:
    """PyMC's distribution class called ``name``, or None."""
    import pymc as pm

    cls = getattr(pm, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, pm.Distribution) else None


def _parse_prior(key: str, spec: Any) -> Prior:
    """A Prior from an override, its positional arguments named as PyMC's ``dist`` names them."""
    dist, args, positional = _read(key, spec)
    if dist == "LKJ":
        if positional:
            args = {"eta": positional[0], **args}
        return Prior(dist, args, "user")
    cls = _distribution(dist)
    if cls is None:
        raise PriorError(f"prior for {key!r}: {dist!r} is not a PyMC distribution")
    if positional:
        params = [p for p in inspect.signature(cls.dist).parameters if p not in ("args", "kwargs")]
        args = {**dict(zip(params, positional, strict=False)), **args}
    return Prior(dist, args, "user")


def _validate(name: str, prior: Prior) -> None:
    """Check a prior: LKJ only on correlations, positive support for SDs, valid args."""
    import pymc as pm

    if name.startswith(names.corr("")):
        eta = prior.args.get("eta")
        if prior.dist != "LKJ" or set(prior.args) != {"eta"} or not _positive(eta):
            raise PriorError(f"prior for {name!r} must be LKJ(eta=...) with eta > 0, got {prior}")
        return
    if prior.dist == "LKJ":
        raise PriorError(f"LKJ is a prior for correlations (corr_...), not for {name!r}")
    try:
        dist = _distribution(prior.dist).dist(**prior.args)
        draws = np.asarray(pm.draw(dist, draws=64, random_seed=0), dtype=float)
        logp = np.asarray(pm.logp(dist, draws).eval()) if draws.ndim == 1 else np.zeros(1)
    except Exception as exc:
        raise PriorError(f"invalid prior {prior} for {name!r}: {exc}") from None
    if not np.all(np.isfinite(logp)):
        raise PriorError(f"invalid prior {prior} for {name!r}: check its arguments")
    if draws.shape != (64,):
        raise PriorError(f"prior {prior} for {name!r} must be scalar (got shape {draws.shape[1:]})")
    if not np.all(np.isfinite(draws)):
        raise PriorError(f"prior {prior} for {name!r} is improper or gives non-finite draws")
    positive = name == names.SIGMA or name.startswith(names.sd(""))
    if positive and np.any(draws < 0):
        raise PriorError(f"prior for {name!r} must be on [0, inf), but {prior} has negative draws")


def _positive(x: Any) -> bool:
    return isinstance(x, int | float | np.floating | np.integer) and float(x) > 0


def prior_table(priors: Mapping[str, Prior]) -> pd.DataFrame:
    """One row per parameter: distribution, arguments, the rule that produced it."""
    rows = [(name, p.dist, format_args(p.args), p.rule) for name, p in priors.items()]
    table = pd.DataFrame(rows, columns=["parameter", "distribution", "arguments", "rule"])
    return table.set_index("parameter")

"""A posterior on disk: the ArviZ DataTree plus what rebuilds its design.

The root attrs hold the formula (``bayeslmm_formula``), the priors (``bayeslmm_priors``,
JSON), the parameterisation (``bayeslmm_parameterization``, JSON), the sampler
(``nuts_sampler``) and the interval setting; the ``model_frame`` group holds the model frame
(one variable per column, dim ``row``, categorical levels in attrs).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..design import Design, build_design, frame_options
from ..errors import BayesLMMError
from .priors import Prior

FORMULA = "bayeslmm_formula"
PRIORS = "bayeslmm_priors"
PARAMETERIZATION = "bayeslmm_parameterization"
CI_PROB = "bayeslmm_ci_prob"
CI_KIND = "bayeslmm_ci_kind"
SAMPLER = "nuts_sampler"
#: the seed of the run (a string: it may exceed 64 bits); see :mod:`bayeslmm.rng`
SEED = "bayeslmm_seed"
FRAME = "model_frame"


def annotate(
    tree: xr.DataTree,
    design: Design,
    priors: Mapping[str, Prior],
    parameterization: Mapping[str, str],
    *,
    nuts_sampler: str,
) -> None:
    """Store in ``tree`` what rebuilds the model: formula, priors, parameterisation, frame."""
    tree.attrs.update(
        {
            FORMULA: design.formula,
            PRIORS: json.dumps(
                {k: [p.dist, p.args, p.rule] for k, p in priors.items()}, default=float
            ),
            PARAMETERIZATION: json.dumps(dict(parameterization)),
            SAMPLER: nuts_sampler,
        }
    )
    tree[FRAME] = xr.DataTree(dataset=frame_to_dataset(design.frame))


def write(tree: xr.DataTree, path: Path, ci: dict[str, Any]) -> Path:
    """Write the DataTree (netCDF; zarr when ``path`` ends in ``.zarr``) with the interval
    setting ``ci`` in its attrs."""
    tree = tree.copy()
    tree.attrs = {k: v for k, v in tree.attrs.items() if _attr_ok(v)}
    tree.attrs.update(ci)
    for node in tree.subtree:
        ds = node.to_dataset()
        objects = [v for v in ds.data_vars if ds[v].dtype == object]
        if objects:  # e.g. nutpie's divergence messages (None or text)
            node.dataset = ds.assign({v: ds[v].astype(str) for v in objects})
    if path.suffix == ".zarr":
        tree.to_zarr(path, mode="w")
    else:
        tree.to_netcdf(path, engine="h5netcdf")
    return path


@dataclass(frozen=True)
class Saved:
    """What :func:`read` finds in a saved posterior."""

    tree: xr.DataTree
    design: Design
    priors: dict[str, Prior]
    parameterization: dict[str, str]
    ci_prob: float | None
    ci_kind: str | None


def read(path: Path) -> Saved:
    """Read a tree written by :func:`write` and rebuild its design."""
    if not path.exists():
        raise BayesLMMError(f"no saved posterior at {path}")
    engine = "zarr" if path.suffix == ".zarr" or path.is_dir() else "h5netcdf"
    try:
        tree = xr.open_datatree(path, engine=engine).load()
    except (OSError, ValueError, ImportError) as exc:
        raise BayesLMMError(f"cannot read a saved posterior from {path}: {exc}") from None
    attrs = tree.attrs
    if FORMULA not in attrs or FRAME not in tree.children:
        raise BayesLMMError(f"{path} is not a bayeslmm posterior (no formula / model frame)")
    frame = dataset_to_frame(tree[FRAME].to_dataset())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the saved frame has complete rows
        design = build_design(attrs[FORMULA], frame, **frame_options(frame))
    priors = {k: Prior(d, a, r) for k, (d, a, r) in json.loads(attrs[PRIORS]).items()}
    return Saved(
        tree=tree,
        design=design,
        priors=priors,
        parameterization=json.loads(attrs[PARAMETERIZATION]),
        ci_prob=float(attrs[CI_PROB]) if CI_PROB in attrs else None,
        ci_kind=attrs.get(CI_KIND),
    )


def _attr_ok(value: Any) -> bool:
    return isinstance(value, str | int | float | np.number | np.ndarray | list | tuple)


def frame_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """The model frame as a Dataset (dim ``row``); categorical levels kept in attrs."""
    data_vars = {}
    for i, col in enumerate(frame.columns):
        s = frame[col]
        attrs = {"name": str(col)}
        values: np.ndarray
        if isinstance(s.dtype, pd.CategoricalDtype):
            attrs["categories"] = json.dumps([str(c) for c in s.cat.categories])
            values = s.astype(str).to_numpy(dtype=str)
        elif pd.api.types.is_bool_dtype(s):
            attrs["kind"] = "bool"
            values = s.to_numpy(dtype=np.int8)
        elif pd.api.types.is_numeric_dtype(s):
            values = s.to_numpy()
        else:
            values = s.astype(str).to_numpy(dtype=str)
        data_vars[f"col{i}"] = xr.DataArray(values, dims="row", attrs=attrs)
    return xr.Dataset(data_vars)


def dataset_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """Inverse of :func:`frame_to_dataset`."""
    cols: dict[str, Any] = {}
    for i in range(len(ds.data_vars)):
        da = ds[f"col{i}"]
        values = da.to_numpy()
        if "categories" in da.attrs:
            cols[da.attrs["name"]] = pd.Categorical(
                values.astype(str), categories=json.loads(da.attrs["categories"])
            )
        elif da.attrs.get("kind") == "bool":
            cols[da.attrs["name"]] = values.astype(bool)
        elif values.dtype.kind in "OSU":
            cols[da.attrs["name"]] = values.astype(str).astype(object)
        else:
            cols[da.attrs["name"]] = values
    return pd.DataFrame(cols)

"""Bundled datasets: the lme4 reference data, with R's dtypes."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from .errors import DataError

#: name -> (description, grouping columns stored as categoricals)
_DATASETS: dict[str, tuple[str, list[str]]] = {
    "sleepstudy": (
        "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation "
        "(Belenky et al. 2003; lme4::sleepstudy). Reaction ~ Days + (Days | Subject).",
        ["Subject"],
    ),
    "iris": (
        "Fisher's iris measurements, 50 flowers of each of 3 species (R datasets::iris).",
        ["Species"],
    ),
    "dyestuff": (
        "Yield of dyestuff (grams) from 5 samples of each of 6 batches of an intermediate "
        "product (Davies 1947; lme4::Dyestuff). Yield ~ 1 + (1 | Batch).",
        ["Batch"],
    ),
    "penicillin": (
        "Diameter (mm) of growth inhibition zones of 6 penicillin samples on each of 24 "
        "plates, a fully crossed design (lme4::Penicillin).",
        ["plate", "sample"],
    ),
    "pastes": (
        "Strength of a chemical paste: 2 assays of each of 3 casks in each of 10 delivery "
        "batches, casks nested in batches (lme4::Pastes).",
        ["batch", "cask", "sample"],
    ),
}


def list_datasets() -> pd.DataFrame:
    """Names and one-line descriptions of the bundled datasets."""
    return pd.DataFrame(
        {"description": {name: desc for name, (desc, _) in _DATASETS.items()}}
    ).rename_axis("dataset")


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame; grouping columns are categoricals.

    Numeric-looking group codes (sleepstudy's ``Subject``) are categoricals whose
    levels sort numerically, as R's ``factor()`` of the integers does.
    """
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(_DATASETS)}")
    with resources.files("bayeslmm.data").joinpath(f"{name}.csv").open("r") as fh:
        df = pd.read_csv(fh)
    for col in _DATASETS[name][1]:
        values = df[col]
        levels = sorted(values.unique())
        df[col] = pd.Categorical(values.astype(str), categories=[str(v) for v in levels])
    return df

"""JSON for a fit's values: pandas and numpy objects, and the model frame, both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def to_json(value: Any) -> Any:
    """A JSON-serialisable form of a Series, DataFrame, array, dict of those, or scalar."""
    if isinstance(value, pd.Series):
        return {"__series__": value.name, "index": list(value.index), "values": value.tolist()}
    if isinstance(value, pd.DataFrame):
        return {
            "__frame__": value.index.name,
            "index": list(value.index),
            "columns": list(value.columns),
            "data": value.astype(object).where(value.notna(), None).to_numpy().tolist(),
        }
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json` (numeric frame columns come back as floats)."""
    if isinstance(value, dict) and "__series__" in value:
        return pd.Series(value["values"], index=value["index"], name=value["__series__"])
    if isinstance(value, dict) and "__frame__" in value:
        columns = value["columns"]
        rows: list[list[Any]] = value["data"]
        data = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        return pd.DataFrame(
            {
                c: np.asarray(col, dtype=float)
                if all(isinstance(x, int | float) for x in col)
                else pd.Series(col, dtype=object)
                for c, col in zip(columns, data, strict=True)
            },
            index=pd.Index(value["index"], name=value["__frame__"]),
        )
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    return value


def frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """The model frame: columns, values, and the levels of categorical columns."""
    return {
        "columns": list(frame.columns),
        "data": {c: frame[c].tolist() for c in frame.columns},
        "categories": {
            c: [str(x) for x in frame[c].cat.categories]
            for c in frame.columns
            if isinstance(frame[c].dtype, pd.CategoricalDtype)
        },
    }


def frame_from_json(d: dict[str, Any]) -> pd.DataFrame:
    """Inverse of :func:`frame_to_json`."""
    frame = pd.DataFrame({c: d["data"][c] for c in d["columns"]})
    for c, cats in d["categories"].items():
        frame[c] = pd.Categorical(frame[c].astype(str), categories=cats)
    return frame

"""Shared fixtures: the lme4 1.1-31 reference results copied from shared/reference/lme4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_CASES = sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))


def load_reference(case: str) -> dict:
    """One lme4 reference case (formula, dataset, estimates, ...)."""
    with open(REFERENCE_DIR / f"{case}.json") as fh:
        return json.load(fh)


@pytest.fixture(params=REFERENCE_CASES)
def reference(request) -> dict:
    return load_reference(request.param)

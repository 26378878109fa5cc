"""One numba cache stamp for the sampler: a function cached from a module here is
recompiled when any module here, or ``compiled.py`` (the kernels it calls through
``logp_fn``), changes.

numba keys its on-disk cache on the source file of the cached function only; split over
several files, a cached sampler would keep calling a kernel's old code.  The locators below
are numba's own, with the stamp (name, mtime, size of every file involved) widened; a numba
without these classes keeps its default (per-file) behaviour.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_KERNELS = _HERE.parent / "compiled.py"


def _files() -> list[Path]:
    return [_KERNELS, *sorted(_HERE.glob("*.py"))]


def shared_stamp() -> tuple:
    """(name, mtime, size) of every file the sampler's compiled code comes from."""
    return tuple((f.name, (st := os.stat(f)).st_mtime, st.st_size) for f in _files())


def _shared(base: Any) -> Any:
    class SharedStampLocator(base):
        def get_source_stamp(self) -> tuple:
            return shared_stamp()

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if Path(py_file).resolve().parent != _HERE:
                return None
            return super().from_function(py_func, py_file)

    SharedStampLocator.__name__ = f"Shared{base.__name__}"
    return SharedStampLocator


def install() -> None:
    """Put the shared-stamp locators first in numba's list (once)."""
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # type: ignore[attr-defined]
        bases = [
            caching.UserProvidedCacheLocator,
            caching.InTreeCacheLocator,
            caching.UserWideCacheLocator,
        ]
    except (ImportError, AttributeError):  # pragma: no cover - another numba
        return
    if not any(getattr(c, "__name__", "").startswith("Shared") for c in impl._locator_classes):
        impl._locator_classes = [*map(_shared, bases), *impl._locator_classes]


install()

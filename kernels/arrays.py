"""Which array library an array belongs to, without importing minidl (kernels sit below it)."""
from __future__ import annotations

import numpy as np

__all__ = ["array_module", "is_cupy_array"]


def is_cupy_array(a) -> bool:
    """True when ``a`` is a CuPy ndarray (checked by type, so CuPy need not be installed)."""
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(a):
    """``cupy`` for CuPy arrays, ``numpy`` for everything else."""
    if is_cupy_array(a):
        import cupy

        return cupy
    return np

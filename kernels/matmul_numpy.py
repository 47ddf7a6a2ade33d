"""Matrix product through the array library: ``numpy.matmul`` (BLAS) or ``cupy.matmul`` (cuBLAS).

This is the default matmul on both backends; the Numba kernels exist to be read and
benchmarked against it.
"""
from __future__ import annotations

from .arrays import array_module

__all__ = ["matmul"]


def matmul(a, b):
    """C = A @ B with ``matmul`` semantics (1-D promotion, broadcast batch dimensions)."""
    return array_module(a).matmul(a, b)

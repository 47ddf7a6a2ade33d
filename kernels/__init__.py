"""minidl's own kernels: conv2d, pooling and matmul as plain array functions.

Three paths per op (see :mod:`registry`): the array-library reference (``conv_numpy``,
``pool_numpy``, ``matmul_numpy``), Numba CPU kernels (``conv_numba``, ``pool_numba``,
``matmul_numba``) and Numba CUDA kernels (``conv_cuda``, ``pool_cuda``, ``matmul_cuda``).
Shared pieces: ``window`` (sliding-window geometry), ``arrays`` (NumPy or CuPy),
``numba_threads`` (Numba threading layer).

This package sits below minidl and never imports it; it is installed as
``minidl.kernels``.  Importing it imports neither Numba nor CuPy: each kernel module is
loaded when first used, so minidl runs on the NumPy path without them.
"""
from . import registry

__all__ = ["registry"]

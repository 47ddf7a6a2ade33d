"""Shared-memory tiled matrix product C = A @ B on NVIDIA GPUs (Numba CUDA, CuPy arrays).

Each block of _TILE x _TILE threads computes one _TILE x _TILE tile of C.  It walks along k
one tile at a time: every thread loads one element of the A tile and one of the B tile
into shared memory, the block waits at a barrier, each thread adds the _TILE products of
its row and column, and the block waits again before the tiles are overwritten.

    C[i, j] = sum_k A[i, k] * B[k, j]      A: (M, K), B: (K, N), C: (M, N)

Edges: loads outside A or B write 0 into the tile (zero padding, so partial tiles add
nothing), and a thread whose (i, j) lies outside C still takes part in every load and
every barrier -- it only skips the final store.  Returning early would leave the other
threads of its block waiting at ``syncthreads`` forever.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from .arrays import array_module

__all__ = ["matmul_2d", "matmul"]

_TILE = 16


def _make_kernel(scalar):
    """The tiled kernel for one element type (shared-memory arrays need it at compile time).

    A kernel built inside a factory is a closure, which Numba does not cache on disk; the
    PTX compile (well under a second per dtype) is paid once per process.
    """

    @cuda.jit
    def kernel(a, b, c):
        tile_a = cuda.shared.array((_TILE, _TILE), dtype=scalar)
        tile_b = cuda.shared.array((_TILE, _TILE), dtype=scalar)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        i = cuda.blockIdx.y * _TILE + ty
        j = cuda.blockIdx.x * _TILE + tx
        m, k_dim = a.shape
        n = b.shape[1]
        acc = scalar(0)
        for t in range((k_dim + _TILE - 1) // _TILE):
            ka = t * _TILE + tx
            kb = t * _TILE + ty
            tile_a[ty, tx] = a[i, ka] if (i < m and ka < k_dim) else scalar(0)
            tile_b[ty, tx] = b[kb, j] if (kb < k_dim and j < n) else scalar(0)
            cuda.syncthreads()
            for kk in range(_TILE):
                acc += tile_a[ty, kk] * tile_b[kk, tx]
            cuda.syncthreads()
        if i < m and j < n:
            c[i, j] = acc

    return kernel


_KERNELS = {"float32": _make_kernel(float32), "float64": _make_kernel(float64)}


def matmul_2d(a, b):
    """C (M, N) = A (M, K) @ B (K, N) for 2-D float32/float64 device arrays of one dtype."""
    xp = array_module(a)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_2d: expected (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    if a.dtype != b.dtype or str(a.dtype) not in _KERNELS:
        raise TypeError(f"matmul_2d: expected two float32 or two float64 arrays, got {a.dtype} and {b.dtype}")
    if xp is np:  # NumPy input only happens under the simulator, which writes every argument back
        a, b = np.array(a), np.array(b)
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    c = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    if c.size:
        grid = (math.ceil(c.shape[1] / _TILE), math.ceil(c.shape[0] / _TILE))
        _KERNELS[str(a.dtype)][grid, (_TILE, _TILE)](a, b, c)
    return c


def matmul(a, b):
    """``matmul`` semantics (1-D promotion, broadcast batch dims) on the tiled kernel."""
    xp = array_module(a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = xp.broadcast_to(a2, batch + a2.shape[-2:]).reshape(-1, *a2.shape[-2:])
    b3 = xp.broadcast_to(b2, batch + b2.shape[-2:]).reshape(-1, *b2.shape[-2:])
    out = xp.empty((a3.shape[0], a2.shape[-2], b2.shape[-1]), dtype=a.dtype)
    for index in range(a3.shape[0]):
        out[index] = matmul_2d(a3[index], b3[index])
    out = out.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out

"""Blocked matrix product C = A @ B on the CPU with Numba, written to be read and benchmarked.

minidl's default CPU matmul stays BLAS (``numpy.matmul``); this kernel shows the ideas BLAS
is built on, one at a time:

* the rows of C are split into blocks of ``_MB`` handled in parallel (``prange``): each
  iteration owns its rows of C, so there are no races;
* the k dimension is cut into panels of ``_KB``, and the panel B[k0:k1, j0:j1] is packed
  into a contiguous buffer that stays in the L2 cache while every row block uses it;
* the innermost work is a 4 x ``_NB`` register tile: four rows of C are updated together
  (c_r[j] += a_r * b[j]), so each element of the packed B row loaded is used four times,
  and the loop over j is contiguous and branch-free, which LLVM turns into SIMD
  fused multiply-adds.

    C[i, j] = sum_k A[i, k] * B[k, j]      A: (M, K), B: (K, N), C: (M, N)
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_threads import prefer_parking_threads

__all__ = ["matmul", "matmul_2d"]

prefer_parking_threads()

_MB = 64    # rows of C per parallel task
_KB = 256   # depth of a packed panel of B
_NB = 512   # columns of C per packed panel (a 256 x 512 float32 panel is 512 KiB)


@njit(parallel=True, fastmath=True, cache=True)
def _matmul_kernel(a, b, c):
    m, k_dim = a.shape
    n = b.shape[1]
    n_row_blocks = (m + _MB - 1) // _MB
    for j0 in range(0, n, _NB):
        j1 = min(j0 + _NB, n)
        width = j1 - j0
        for k0 in range(0, k_dim, _KB):
            k1 = min(k0 + _KB, k_dim)
            panel = np.ascontiguousarray(b[k0:k1, j0:j1])
            for rb in prange(n_row_blocks):
                i0 = rb * _MB
                i1 = min(i0 + _MB, m)
                i = i0
                while i + 4 <= i1:  # four rows of C at a time share each loaded B element
                    c0 = c[i, j0:j1]
                    c1 = c[i + 1, j0:j1]
                    c2 = c[i + 2, j0:j1]
                    c3 = c[i + 3, j0:j1]
                    for kk in range(k1 - k0):
                        a0 = a[i, k0 + kk]
                        a1 = a[i + 1, k0 + kk]
                        a2 = a[i + 2, k0 + kk]
                        a3 = a[i + 3, k0 + kk]
                        for j in range(width):
                            bj = panel[kk, j]
                            c0[j] += a0 * bj
                            c1[j] += a1 * bj
                            c2[j] += a2 * bj
                            c3[j] += a3 * bj
                    i += 4
                while i < i1:  # the last 0-3 rows
                    ci = c[i, j0:j1]
                    for kk in range(k1 - k0):
                        ai = a[i, k0 + kk]
                        for j in range(width):
                            ci[j] += ai * panel[kk, j]
                    i += 1


def matmul_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C (M, N) = A (M, K) @ B (K, N) for 2-D float arrays of one dtype."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_2d: expected (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    a = np.ascontiguousarray(a, dtype=dtype)
    b = np.ascontiguousarray(b, dtype=dtype)
    c = np.zeros((a.shape[0], b.shape[1]), dtype=dtype)
    if c.size and a.shape[1]:
        _matmul_kernel(a, b, c)
    return c


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``numpy.matmul`` semantics (1-D promotion, broadcast batch dims) on the blocked kernel."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ, {a.shape} @ {b.shape}")
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = np.broadcast_to(a2, batch + a2.shape[-2:]).reshape(-1, *a2.shape[-2:])
    b3 = np.broadcast_to(b2, batch + b2.shape[-2:]).reshape(-1, *b2.shape[-2:])
    out = np.stack([matmul_2d(x, y) for x, y in zip(a3, b3)]) if a3.shape[0] else None
    if out is None:
        out = np.zeros((0, a2.shape[-2], b2.shape[-1]), dtype=np.result_type(a, b))
    out = out.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out

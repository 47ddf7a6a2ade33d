"""Blocked matrix product C = A @ B on the CPU with Numba, written to be read and benchmarked.

minidl's default CPU matmul stays BLAS (``numpy.matmul``); this kernel shows the ideas BLAS
is built on, one at a time:

* B is packed once, before any arithmetic, into panels of ``_KB`` rows by ``_NB`` columns,
  each contiguous (``_pack_panels``): the panel B[k0:k0+_KB, j0:j0+_NB] that the inner
  loops stream is then one block of memory (512 KiB in float32, it stays in the L2
  cache) instead of ``_KB`` rows spread N floats apart;
* the rows of C are split into blocks of ``_MB`` handled in parallel, in one ``prange``
  over the whole product (one launch of the thread pool per matmul): each task owns its
  rows of C, so there are no races, and walks every panel of B for them;
* the innermost work updates four rows of C from four rows of the panel at once: a 4 x 4
  block of A sits in registers, and for each column j the four values of B loaded feed
  16 multiply-adds into four values of C (one load and one store each), instead of one
  multiply-add per load/store pair; the loop over j is contiguous and branch-free, which
  LLVM turns into SIMD fused multiply-adds.

``fastmath=True`` lets LLVM reassociate the sums (that is what turns the four products per
C value into a chain of fused multiply-adds and vectorises the loop); the result differs
from BLAS only by float rounding, as any two summation orders do (the tests bound it).

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


@njit(cache=True, fastmath=True, inline="always")
def _four_rows(a, panel, c, i, k0, j0, depth, width):
    """C[i:i+4, j0:j0+width] += A[i:i+4, k0:k0+depth] @ panel[:depth, :width], four k at a time."""
    c0, c1 = c[i, j0:j0 + width], c[i + 1, j0:j0 + width]
    c2, c3 = c[i + 2, j0:j0 + width], c[i + 3, j0:j0 + width]
    kk = 0
    while kk + 4 <= depth:  # a 4 x 4 block of A in registers, four B rows streamed once
        k = k0 + kk
        b0, b1, b2, b3 = panel[kk], panel[kk + 1], panel[kk + 2], panel[kk + 3]
        a00, a01, a02, a03 = a[i, k], a[i, k + 1], a[i, k + 2], a[i, k + 3]
        a10, a11, a12, a13 = a[i + 1, k], a[i + 1, k + 1], a[i + 1, k + 2], a[i + 1, k + 3]
        a20, a21, a22, a23 = a[i + 2, k], a[i + 2, k + 1], a[i + 2, k + 2], a[i + 2, k + 3]
        a30, a31, a32, a33 = a[i + 3, k], a[i + 3, k + 1], a[i + 3, k + 2], a[i + 3, k + 3]
        for j in range(width):
            x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
            c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
            c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
            c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
            c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
        kk += 4
    while kk < depth:  # the last 0-3 values of k
        k = k0 + kk
        bk = panel[kk]
        a0, a1, a2, a3 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
        for j in range(width):
            x = bk[j]
            c0[j] += a0 * x
            c1[j] += a1 * x
            c2[j] += a2 * x
            c3[j] += a3 * x
        kk += 1


@njit(cache=True, fastmath=True, inline="always")
def _one_row(a, panel, c, i, k0, j0, depth, width):
    """C[i, j0:j0+width] += A[i, k0:k0+depth] @ panel[:depth, :width]."""
    ci = c[i, j0:j0 + width]
    for kk in range(depth):
        ai = a[i, k0 + kk]
        bk = panel[kk]
        for j in range(width):
            ci[j] += ai * bk[j]


@njit(parallel=True, cache=True)
def _pack_panels(b, kb, nb):
    """panels[p, q, :, :] = B[p*kb:(p+1)*kb, q*nb:(q+1)*nb], each panel contiguous (edge
    panels are only partly filled; the kernel never reads past their real size)."""
    k_dim, n = b.shape
    nk, nj = (k_dim + kb - 1) // kb, (n + nb - 1) // nb
    panels = np.empty((nk, nj, kb, nb), dtype=b.dtype)
    for pq in prange(nk * nj):
        p, q = pq // nj, pq % nj
        k0, j0 = p * kb, q * nb
        for kk in range(min(kb, k_dim - k0)):
            for j in range(min(nb, n - j0)):
                panels[p, q, kk, j] = b[k0 + kk, j0 + j]
    return panels


@njit(parallel=True, fastmath=True, cache=True)
def _matmul_kernel(a, b, c):
    m, k_dim = a.shape
    n = b.shape[1]
    kb, nb = min(_KB, k_dim), min(_NB, n)
    panels = _pack_panels(b, kb, nb)  # B packed once, read by every row block
    n_row_blocks = (m + _MB - 1) // _MB
    for rb in prange(n_row_blocks):  # each task owns rows i0:i1 of C
        i0 = rb * _MB
        i1 = min(i0 + _MB, m)
        for q in range(panels.shape[1]):
            j0 = q * nb
            width = min(nb, n - j0)
            for p in range(panels.shape[0]):
                k0 = p * kb
                depth = min(kb, k_dim - k0)
                panel = panels[p, q]
                i = i0
                while i + 4 <= i1:
                    _four_rows(a, panel, c, i, k0, j0, depth, width)
                    i += 4
                while i < i1:
                    _one_row(a, panel, c, i, k0, j0, depth, width)
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

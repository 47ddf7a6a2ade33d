"""Blocked matrix product C = A @ B on the CPU with Numba, written to be read and benchmarked.

minidl's default CPU matmul stays BLAS (``numpy.matmul``); this kernel shows the ideas BLAS
is built on, one at a time:

* **One launch, independent tasks.** The product is cut into a grid of tasks, each owning
  a block of C (``_task_split``), run by one ``prange``: one wake-up of the thread pool per
  matmul and no barrier inside it, because each task packs the part of B it reads itself.
  Waking the parked workers costs tens of microseconds, a sizeable share of a 256 x 256
  product (about 0.3 ms), so there is no separate parallel packing pass before the compute.
* **The split follows the shape.** Normally the tasks are row blocks, ``m / threads`` rows
  each, with as many columns as a panel holds (``_NB``): every task packs the same B
  panels (a copy that costs about 2 * threads / M of the arithmetic), and in exchange the
  inner loop runs over the widest rows of C it can, so that its fixed cost per pass (the
  A values it loads, the overlap checks LLVM inserts) is spread over more columns:
  measured at n = 256 on two threads, 128 rows x 256 columns per task ran 115 GFLOP/s
  where 256 rows x 128 columns ran 90. When C has too few rows for that (fewer than
  ``_MIN_ROWS`` per thread, as in a row-vector times a matrix), the tasks are column
  blocks with every row instead.
* **Packing.** A task copies B[k0:k0+_KB, j0:j0+width] into a contiguous panel before
  using it (``_pack_panel``): the inner loops then stream rows ``width`` floats long,
  one block of memory (512 KiB in float32, it stays in the L2 cache) instead of ``_KB``
  rows N floats apart, which for N a power of two would also fall into the same cache
  sets. Each task zeroes its own block of C, in parallel, just before it accumulates
  into it.
* **Register block.** The innermost work updates four rows of C from four rows of the
  panel at once (``_four_rows``): a 4 x 4 block of A sits in registers, and for each
  column j the four values of B loaded feed 16 multiply-adds into four values of C (one
  load and one store each), instead of one multiply-add per load/store pair. The four rows
  of C (4 x width values) stay in the L1 cache while k runs over the panel. BLAS goes one
  step further and keeps a small block of C in registers for the whole k loop; LLVM will
  not do that here, because Numba gives it no promise that the rows of C and of the panel
  never overlap, so every store to C could change what the next load from the panel
  reads. Taking four k per pass is what keeps that traffic down to one load and one
  store of C per 16 multiply-adds.
* **Wide vectors.** The loop over j is contiguous and branch-free, which LLVM turns into
  SIMD fused multiply-adds. On CPUs with AVX-512 LLVM's cost model still prefers 256-bit
  vectors (elsewhere in a program wider ones can slow the clock down); for a loop that
  is nothing but multiply-adds the 512-bit ones do twice the work per instruction, so
  the kernel asks for them with LLVM's ``prefer-vector-width`` function attribute
  (``_prefer_512_bit_vectors``). On other CPUs the attribute changes nothing.

``fastmath=True`` lets LLVM reassociate the sums (that is what turns the four products per
C value into a chain of fused multiply-adds and vectorises the loop); the result differs
from BLAS only by float rounding, as any two summation orders do (the tests bound it).

    C[i, j] = sum_k A[i, k] * B[k, j]      A: (M, K), B: (K, N), C: (M, N)
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .numba_threads import prefer_parking_threads

__all__ = ["matmul", "matmul_2d"]

prefer_parking_threads()

_MR = 4          # rows of C updated together by the register block
_KB = 256        # depth of a packed panel of B
_NB = 512        # most columns of C per task (a 256 x 512 float32 panel is 512 KiB)
_MIN_ROWS = 16   # fewer rows than this per thread: split the columns instead


@intrinsic
def _prefer_512_bit_vectors(typingctx):
    """Mark the function being compiled with LLVM's ``"prefer-vector-width"="512"``.

    Called inside the parallel loop's body, it lands on the function that holds the inner
    loops. llvmlite's attribute set only admits the flag-style attributes it knows, so
    the key-value attribute is added to the underlying set directly."""
    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except TypeError:  # a future llvmlite without a set here: keep LLVM's own choice
            pass
        return context.get_dummy_value()

    return types.none(), codegen


@njit(cache=True, fastmath=True, inline="always")
def _four_rows(a, panel, c, i, k0, j0, depth, width):
    """C[i:i+4, j0:j0+width] += A[i:i+4, k0:k0+depth] @ panel[:depth, :width], four k at a time."""
    c0, c1 = c[i, j0:j0 + width], c[i + 1, j0:j0 + width]
    c2, c3 = c[i + 2, j0:j0 + width], c[i + 3, j0:j0 + width]
    kk = 0
    while kk + 4 <= depth:  # a 4 x 4 block of A in registers, four panel rows streamed once
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
    """C[i, j0:j0+width] += A[i, k0:k0+depth] @ panel[:depth, :width] (the last 0-3 rows)."""
    ci = c[i, j0:j0 + width]
    for kk in range(depth):
        ai = a[i, k0 + kk]
        bk = panel[kk]
        for j in range(width):
            ci[j] += ai * bk[j]


@njit(cache=True, inline="always")
def _pack_panel(b, panel, k0, j0, depth, width):
    """panel[:depth, :width] = B[k0:k0+depth, j0:j0+width], row by row into contiguous memory."""
    for kk in range(depth):
        panel[kk, :width] = b[k0 + kk, j0:j0 + width]


@njit(parallel=True, cache=True, fastmath=True)
def _matmul_kernel(a, b, c, mb, nb):
    """C = A @ B, in tasks of ``mb`` rows by ``nb`` columns of C run in one ``prange``."""
    m, k_dim = a.shape
    n = b.shape[1]
    n_row_tasks = (m + mb - 1) // mb
    n_col_tasks = (n + nb - 1) // nb
    for task in prange(n_row_tasks * n_col_tasks):  # each task owns C[i0:i1, j0:j0+width]
        _prefer_512_bit_vectors()
        i0 = (task // n_col_tasks) * mb
        i1 = min(i0 + mb, m)
        j0 = (task % n_col_tasks) * nb
        width = min(nb, n - j0)
        panel = np.empty((min(_KB, k_dim), width), dtype=c.dtype)
        c[i0:i1, j0:j0 + width] = 0
        for k0 in range(0, k_dim, _KB):
            depth = min(_KB, k_dim - k0)
            _pack_panel(b, panel, k0, j0, depth, width)
            i = i0
            while i + _MR <= i1:
                _four_rows(a, panel, c, i, k0, j0, depth, width)
                i += _MR
            while i < i1:
                _one_row(a, panel, c, i, k0, j0, depth, width)
                i += 1


def _round_up(x: int, step: int) -> int:
    return (x + step - 1) // step * step


def _task_split(m: int, n: int, threads: int) -> tuple[int, int]:
    """(rows, columns) of C per parallel task for an (m, n) product on ``threads`` threads.

    Row blocks of ceil(m / threads) rows (a multiple of 4) by at most ``_NB`` columns; when
    that leaves fewer than ``_MIN_ROWS`` rows per thread, column blocks of ceil(n / threads)
    columns (a multiple of 16, at most ``_NB``) with all m rows."""
    threads = max(1, threads)
    if m >= _MIN_ROWS * threads or threads == 1:
        return _round_up(-(-m // threads), _MR), min(n, _NB)
    return m, min(_NB, _round_up(-(-n // threads), 16))


def matmul_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C (M, N) = A (M, K) @ B (K, N) for 2-D arrays; integer inputs are computed in float64."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_2d: expected (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    a = np.ascontiguousarray(a, dtype=dtype)
    b = np.ascontiguousarray(b, dtype=dtype)
    m, k_dim = a.shape
    n = b.shape[1]
    if m * n == 0 or k_dim == 0:
        return np.zeros((m, n), dtype=dtype)
    c = np.empty((m, n), dtype=dtype)  # every task zeroes its own block
    mb, nb = _task_split(m, n, numba.get_num_threads())
    _matmul_kernel(a, b, c, mb, nb)
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

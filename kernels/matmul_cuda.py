"""Register-blocked, shared-memory tiled matrix product C = A @ B on NVIDIA GPUs (Numba CUDA).

    C[i, j] = sum_k A[i, k] * B[k, j]      A: (M, K), B: (K, N), C: (M, N)

Arrays are CuPy arrays (passed to Numba through ``__cuda_array_interface__``); under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) NumPy arrays work too.

The tiling (sizes on a GPU, :data:`GPU_TILING`; the simulator uses smaller ones)
------------------------------------------------------------------------------------
* A block of 16 x 16 = 256 threads owns a 64 x 64 tile of C: rows ``i0 .. i0+63`` with
  ``i0 = 64*blockIdx.y``, columns ``j0 .. j0+63`` with ``j0 = 64*blockIdx.x``.
* Thread ``(ty, tx)`` owns a 4 x 4 register sub-tile of it: rows ``i0 + ty + 16*r`` and
  columns ``j0 + tx + 16*c`` (r, c < 4).  Spreading a thread's outputs 16 apart, rather
  than 4 adjacent ones, makes the 16 threads of a half-warp read 16 consecutive shared
  words (no bank conflicts) and write 16 consecutive words of C (coalesced stores).
* The block walks along k in steps of 16.  At each step its 256 threads copy a 16 x 64
  slice of A (transposed) and a 16 x 64 slice of B into shared memory -- 4 elements of each
  per thread, neighbouring threads reading neighbouring addresses -- wait at a barrier, and
  then every thread does 16 rank-1 updates of its 4 x 4 accumulators: for each kk it reads
  4 values of A and 4 of B into registers and does 16 multiply-adds.  That is 16
  multiply-adds per 8 shared-memory reads, against 1 per 2 in the one-output-per-thread
  kernel, and every element of A and B brought from global memory is used 64 times.  A
  second barrier keeps the tiles alive until every thread is done with them.
* Prefetch: a thread fetches its 8 elements of step s+1 from global memory into registers
  (``fetch``) right after the first barrier of step s, and writes them into the tiles
  (``stage``) at the top of step s+1.  The loads are in flight while step s's products run,
  so the memory latency is hidden behind arithmetic instead of stalling every step.
* Shared layout: row ``i = i0 + t + 16*r`` of the A slice is stored at ``tile_a[kk, r, t]``
  (likewise ``tile_b[kk, c, t]`` for column ``j0 + t + 16*c``), so the 4 values a thread reads
  at one kk lie at fixed distances from one address and the compiler folds them into the
  load instructions.  The last axis is padded by one element so that the loads, which write
  down a column of the tile, spread over the memory banks.
* Edges: a load outside A or B gives 0 (zero padding, so a partial tile adds nothing, and
  the prefetch past the last step is harmless), and a thread whose outputs fall outside C
  still takes part in every load and every barrier -- it only skips the stores.  Returning
  early would leave the other threads of its block waiting at ``syncthreads`` forever.

Shared arrays need their shape and dtype at compile time, so the kernels are built by a
factory per (dtype, tiling), and each is a closure over those constants and its device
functions.  ``cache=True`` still caches them on disk: Numba keys a closure's cache entry on
the pickled values of its cells, and every cell here (ints, a Numba scalar type, the tiling,
device functions, which pickle as their Python code) pickles to the same bytes in every
process.  So the compile (about a second per kernel and dtype) is paid once per machine, and
editing a device function, here or in :mod:`conv_cuda`, changes the key and recompiles.
:func:`make_tile_product` (the inner step), :func:`make_slots` and :func:`make_stager` (who
loads which tile element, and its place in shared memory) are shared with the implicit-GEMM
convolution kernels of :mod:`conv_cuda`, which differ only in what they fetch.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numba import config as numba_config
from numba import cuda, float32, float64

from .arrays import array_module

__all__ = ["Tiling", "GPU_TILING", "SIMULATOR_TILING", "TILING", "check_tiling", "tile_shapes", "make_tile_product",
           "make_slots", "make_stager", "matmul_2d", "matmul"]


class Tiling(NamedTuple):
    """Tile sizes of the register-blocked kernels.

    A block of ``threads_m x threads_n`` threads owns a ``block_m x block_n`` output tile
    (``block_m = threads_m * rows``, ``block_n = threads_n * cols``); each thread owns
    ``rows x cols`` outputs; the reduction advances ``depth`` at a time through shared memory.
    """

    threads_m: int
    threads_n: int
    rows: int
    cols: int
    depth: int

    @property
    def block_m(self) -> int:
        return self.threads_m * self.rows

    @property
    def block_n(self) -> int:
        return self.threads_n * self.cols

    @property
    def threads(self) -> int:
        return self.threads_m * self.threads_n


GPU_TILING = Tiling(threads_m=16, threads_n=16, rows=4, cols=4, depth=16)   # 64 x 64 tiles, 256 threads
# The simulator runs every GPU thread as a Python thread: the same kernels with 8 x 8 tiles of
# 16 threads keep its tests fast and still cover several tiles per problem.
SIMULATOR_TILING = Tiling(threads_m=4, threads_n=4, rows=2, cols=2, depth=4)
TILING = SIMULATOR_TILING if numba_config.ENABLE_CUDASIM else GPU_TILING


def check_tiling(tiling: Tiling) -> None:
    """The loaders hand out whole tiles to whole thread blocks: these divisibilities must hold."""
    t = tiling.threads
    if (tiling.block_m * tiling.depth) % t or (tiling.block_n * tiling.depth) % t:
        raise ValueError(f"tiling {tiling}: a {tiling.depth}-deep tile must split evenly over {t} threads")
    if t % tiling.block_n or t % tiling.depth:
        raise ValueError(f"tiling {tiling}: {t} threads must be a multiple of block_n and of depth")


def tile_shapes(tiling: Tiling) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Shapes of the two shared tiles: (depth, rows, threads_m + 1) and (depth, cols, threads_n + 1)."""
    return ((tiling.depth, tiling.rows, tiling.threads_m + 1), (tiling.depth, tiling.cols, tiling.threads_n + 1))


def make_tile_product(tiling: Tiling, scalar):
    """Device function ``acc += tile_a.T @ tile_b`` restricted to the calling thread's outputs.

    ``tile_a``: (depth, rows, >= threads_m) shared, ``tile_b``: (depth, cols, >= threads_n)
    shared (row ``t + threads_m*r`` of the block tile at ``[kk, r, t]``), ``acc``: (rows, cols)
    local; thread (ty, tx) updates ``acc[r, c] += sum_kk tile_a[kk, r, ty] * tile_b[kk, c, tx]``.
    """
    rows, cols, depth = tiling.rows, tiling.cols, tiling.depth

    @cuda.jit(device=True, inline="always")
    def tile_product(tile_a, tile_b, acc, ty, tx):
        a_reg = cuda.local.array(rows, dtype=scalar)
        b_reg = cuda.local.array(cols, dtype=scalar)
        kk = 0
        while kk < depth:  # not range(): the compiler then sees 0 <= kk < depth and unrolls
            for r in range(rows):
                a_reg[r] = tile_a[kk, r, ty]
            for c in range(cols):
                b_reg[c] = tile_b[kk, c, tx]
            for r in range(rows):
                for c in range(cols):
                    acc[r, c] += a_reg[r] * b_reg[c]
            kk += 1

    return tile_product


def make_slots(tiling: Tiling):
    """Which tile element is a thread's e-th load of a step: two device functions -> (kk, line).

    ``depth_fastest(tid, e)``: consecutive threads take consecutive kk, for arrays that are
    contiguous along the reduction (a row of A); ``line_fastest(tid, e)``: consecutive threads
    take consecutive lines (columns of a B-side tile), for arrays contiguous along them (a
    row of B).  Either way a warp reads neighbouring addresses (coalesced loads).
    """
    depth, threads, block_n = tiling.depth, tiling.threads, tiling.block_n

    @cuda.jit(device=True, inline="always")
    def depth_fastest(tid, e):
        idx = tid + e * threads
        return idx % depth, idx // depth

    @cuda.jit(device=True, inline="always")
    def line_fastest(tid, e):
        idx = tid + e * threads
        return idx // block_n, idx % block_n

    return depth_fastest, line_fastest


def make_stager(slot, loads: int, line_threads: int):
    """Device function writing a thread's ``loads`` fetched values into a shared tile.

    Value e goes to slot ``(kk, line) = slot(tid, e)``, stored at
    ``tile[kk, line // line_threads, line % line_threads]`` (see :func:`tile_shapes`).
    """

    @cuda.jit(device=True, inline="always")
    def stage(tile, staged, tid):
        for e in range(loads):
            kk, line = slot(tid, e)
            tile[kk, line // line_threads, line % line_threads] = staged[e]

    return stage


def _make_kernel(scalar, tiling: Tiling):
    """The register-blocked matmul kernel for one element type and tiling."""
    check_tiling(tiling)
    tm, tn, rows, cols, depth = tiling
    block_m, block_n, threads = tiling.block_m, tiling.block_n, tiling.threads
    loads_a = block_m * depth // threads
    loads_b = block_n * depth // threads
    shape_a, shape_b = tile_shapes(tiling)
    tile_product = make_tile_product(tiling, scalar)
    depth_fastest, line_fastest = make_slots(tiling)
    stage_a = make_stager(depth_fastest, loads_a, tm)
    stage_b = make_stager(line_fastest, loads_b, tn)

    @cuda.jit(device=True, inline="always")
    def fetch(a, b, i0, j0, k0, tid, staged_a, staged_b):
        """This thread's share of A[i0:i0+block_m, k0:k0+depth] and B[k0:k0+depth, j0:j0+block_n], 0 outside."""
        m, k_dim = a.shape
        n = b.shape[1]
        for e in range(loads_a):
            kk, row = depth_fastest(tid, e)
            i = i0 + row
            k = k0 + kk
            staged_a[e] = a[i, k] if (i < m and k < k_dim) else scalar(0)
        for e in range(loads_b):
            kk, col = line_fastest(tid, e)
            k = k0 + kk
            j = j0 + col
            staged_b[e] = b[k, j] if (k < k_dim and j < n) else scalar(0)

    @cuda.jit(cache=True)
    def kernel(a, b, c):
        tile_a = cuda.shared.array(shape_a, dtype=scalar)
        tile_b = cuda.shared.array(shape_b, dtype=scalar)
        staged_a = cuda.local.array(loads_a, dtype=scalar)
        staged_b = cuda.local.array(loads_b, dtype=scalar)
        acc = cuda.local.array((rows, cols), dtype=scalar)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        tid = ty * tn + tx
        i0 = cuda.blockIdx.y * block_m
        j0 = cuda.blockIdx.x * block_n
        m, k_dim = a.shape
        n = b.shape[1]
        for r in range(rows):
            for cc in range(cols):
                acc[r, cc] = scalar(0)
        fetch(a, b, i0, j0, 0, tid, staged_a, staged_b)
        for k0 in range(0, k_dim, depth):
            stage_a(tile_a, staged_a, tid)
            stage_b(tile_b, staged_b, tid)
            cuda.syncthreads()
            # Fetch the next step now (zeros past the end): the loads are in flight while this
            # step's products run, instead of stalling the block at the top of the next step.
            fetch(a, b, i0, j0, k0 + depth, tid, staged_a, staged_b)
            tile_product(tile_a, tile_b, acc, ty, tx)
            cuda.syncthreads()
        for r in range(rows):
            i = i0 + ty + tm * r
            for cc in range(cols):
                j = j0 + tx + tn * cc
                if i < m and j < n:
                    c[i, j] = acc[r, cc]

    return kernel


_SCALARS = {"float32": float32, "float64": float64}


@functools.lru_cache(maxsize=None)
def _kernel(dtype_name: str, tiling: Tiling):
    return _make_kernel(_SCALARS[dtype_name], tiling)


def matmul_2d(a, b):
    """C (M, N) = A (M, K) @ B (K, N) for 2-D float32/float64 device arrays of one dtype."""
    xp = array_module(a)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_2d: expected (M, K) @ (K, N), got {a.shape} @ {b.shape}")
    if a.dtype != b.dtype or str(a.dtype) not in _SCALARS:
        raise TypeError(f"matmul_2d: expected two float32 or two float64 arrays, got {a.dtype} and {b.dtype}")
    if xp is np:  # NumPy input only happens under the simulator, which writes every argument back
        a, b = np.array(a), np.array(b)
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    c = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    if c.size:  # K == 0 gives zeros: the k loop runs no step and the accumulators stay 0
        tiling = TILING
        grid = (math.ceil(c.shape[1] / tiling.block_n), math.ceil(c.shape[0] / tiling.block_m))
        _kernel(str(a.dtype), tiling)[grid, (tiling.threads_n, tiling.threads_m)](a, b, c)
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

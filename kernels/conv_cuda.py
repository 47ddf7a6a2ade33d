"""conv2d on NVIDIA GPUs with Numba CUDA kernels: tiled implicit GEMM, no im2col buffer.

Arrays are CuPy arrays (passed to Numba through ``__cuda_array_interface__``); under
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) NumPy arrays work too, which is how
the index logic is tested without a GPU.  Layouts and formulas are those of
:mod:`conv_numpy`: x (N, C_in, H, W), w (C_out, Cg, kh, kw) with Cg = C_in / groups,
y (N, C_out, H_out, W_out), and output position (oh, ow) with tap (i, j) reads input
pixel ``(oh*sh - ph + i*dh, ow*sw - pw + j*dw)``.

Each of the three products is a matrix product per group g, computed by the register-blocked
kernel of :mod:`matmul_cuda` (64 x 64 output tiles per block of 16 x 16 threads, 4 x 4
outputs per thread, 16-deep shared-memory tiles, the next step prefetched into registers;
see there) whose ``fetch`` *gathers* the matrix elements from the 4-d arrays on the fly
instead of reading a materialized im2col matrix ("implicit GEMM").  Out-of-range and
padding positions load 0, so every tile is zero-padded and every thread reaches every
barrier.  One group per ``blockIdx.z``; a block's rows never cross a group boundary.

* forward, ``Y[o, p] = sum_k W[o, k] * Xcol[k, p]``: p = (n, oh, ow) runs over the
  N*H_out*W_out output pixels (block columns, ``blockIdx.x``), o over the group's
  C_out/groups output channels (block rows, ``blockIdx.y``), and the reduction k = (c, i, j)
  over its Cg*kh*kw taps, with ``Xcol[k, p] = x[n, g*Cg + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]``.
* weight gradient, ``GW[o, k] = sum_p GY[o, p] * Xcol[k, p]``: rows o, columns k, and the
  long sum over the N*H_out*W_out pixels p is the reduction.  A layer with few weights has
  few output tiles (64 x 576 weights are 9 tiles), so the p range is also split into S
  chunks ("split-K", ``blockIdx.z = g*S + s``) that write S partial products, summed after.
  The accumulators are of the array dtype, as in cuBLAS.
* input gradient, ``GX[c, q] = sum_r WT[c, r] * GYcol[r, q]`` in gather form, one launch per
  stride phase (a, b) (0 <= a < sh, 0 <= b < sw): q = (n, u, v) runs over the input pixels
  (ih, iw) = (a + sh*u, b + sw*v) of the phase, c over the group's Cg input channels, and the
  reduction r = (o, i, j) over the group's output channels and only those taps that reach
  this phase, ``(a + ph - i*dh) % sh == 0`` and likewise for j.  For them
  ``GYcol[r, q] = gy[n, g*Og + o, u + dy, v + dx]`` with the whole numbers
  dy = (a + ph - i*dh) / sh, dx = (b + pw - j*dw) / sw (0 outside gy), and
  ``WT[c, r] = w[g*Og + o, c, i, j]``.  Splitting by phase leaves out the products that a
  stride makes zero (3 in 4 for stride 2) and every division by the stride.  Every element
  of gx is written by exactly one thread: no atomics.

Decoding a reduction index k into (c, i*dh, j*dw) takes two integer divisions, which are
slow on a GPU (there is no divide instruction), and the loaders need it for every element.
So the host builds small tables (``tap_table``, ``phase_tap_table``: a few int32 rows per
reduction index, on the device) and the loaders read them; the pixel index p, which is the
same for all the loads a thread makes into one tile column, is decoded once per thread
(forward, input gradient) or once per reduction step (weight gradient).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda, float32, float64

from .arrays import array_module
from .matmul_cuda import TILING, Tiling, check_tiling, make_slots, make_stager, make_tile_product, tile_shapes
from .window import conv_output_hw

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"]

# Split-K aims for about this many blocks in flight for the weight gradient (a GPU has ~100
# multiprocessors, each running two or three 256-thread blocks) ...
_SPLIT_TARGET_BLOCKS = 512
# ... while giving each split at least this many reduction steps of ``depth`` pixels.
_SPLIT_MIN_STEPS = 4

_SCALARS = {"float32": float32, "float64": float64}


def _make_forward(scalar, tiling: Tiling):
    """Y[o, p] = sum_k W[o, k] Xcol[k, p]; grid (P tiles, Og tiles, groups)."""
    tm, tn, rows, cols, depth = tiling
    block_m, block_n, threads = tiling.block_m, tiling.block_n, tiling.threads
    loads_w, loads_x = block_m * depth // threads, block_n * depth // threads
    shape_w, shape_x = tile_shapes(tiling)
    tile_product = make_tile_product(tiling, scalar)
    depth_fastest, line_fastest = make_slots(tiling)
    stage_w = make_stager(depth_fastest, loads_w, tm)
    stage_x = make_stager(line_fastest, loads_x, tn)

    @cuda.jit(device=True, inline="always")
    def fetch(x, w2, taps, gw0, o_left, k0, n, c0, top, left, p_ok, tid, staged_w, staged_x):
        """This thread's share of W[o0:, k0:k0+depth] (rows gw0 + .. of w2) and Xcol[k0:k0+depth, p0:]."""
        k_dim = w2.shape[1]
        height, width = x.shape[2], x.shape[3]
        for e in range(loads_w):
            kk, row = depth_fastest(tid, e)
            k = k0 + kk
            value = scalar(0)
            if row < o_left and k < k_dim:
                value = w2[gw0 + row, k]
            staged_w[e] = value
        for e in range(loads_x):
            kk, col = line_fastest(tid, e)    # col is tid % block_n: the pixel decoded by the caller
            k = k0 + kk
            value = scalar(0)
            if p_ok and k < k_dim:
                ih = top + taps[1, k]
                iw = left + taps[2, k]
                if ih >= 0 and ih < height and iw >= 0 and iw < width:
                    value = x[n, c0 + taps[0, k], ih, iw]
            staged_x[e] = value

    @cuda.jit(cache=True)
    def forward(x, w2, taps, y, sh, sw, ph, pw):
        # tile_w[kk, r, t] = W[o0 + t + tm*r, k0 + kk],  tile_x[kk, c, t] = Xcol[k0 + kk, p0 + t + tn*c]
        tile_w = cuda.shared.array(shape_w, dtype=scalar)
        tile_x = cuda.shared.array(shape_x, dtype=scalar)
        staged_w = cuda.local.array(loads_w, dtype=scalar)
        staged_x = cuda.local.array(loads_x, dtype=scalar)
        acc = cuda.local.array((rows, cols), dtype=scalar)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        tid = ty * tn + tx
        g = cuda.blockIdx.z
        n_img, c_out, out_h, out_w = y.shape
        o_group = c_out // cuda.gridDim.z
        c0 = g * (x.shape[1] // cuda.gridDim.z)   # first input channel of the group
        k_dim = w2.shape[1]
        o0 = cuda.blockIdx.y * block_m
        p0 = cuda.blockIdx.x * block_n
        n_pix = n_img * out_h * out_w
        # The tile column this thread loads is the same at every step: decode its pixel once.
        p = p0 + tid % block_n
        ow = p % out_w
        oh = (p // out_w) % out_h
        n = p // (out_w * out_h)
        top = oh * sh - ph
        left = ow * sw - pw
        p_ok = p < n_pix
        gw0 = g * o_group + o0                    # first row of w2 this block reads
        o_left = o_group - o0                     # rows of the group left from o0
        for r in range(rows):
            for c in range(cols):
                acc[r, c] = scalar(0)
        fetch(x, w2, taps, gw0, o_left, 0, n, c0, top, left, p_ok, tid, staged_w, staged_x)
        for k0 in range(0, k_dim, depth):
            stage_w(tile_w, staged_w, tid)
            stage_x(tile_x, staged_x, tid)
            cuda.syncthreads()
            # the next step's loads fly while this step's products run (zeros past the end)
            fetch(x, w2, taps, gw0, o_left, k0 + depth, n, c0, top, left, p_ok, tid, staged_w, staged_x)
            tile_product(tile_w, tile_x, acc, ty, tx)
            cuda.syncthreads()
        for c in range(cols):
            p = p0 + tx + tn * c
            if p < n_pix:
                ow = p % out_w
                oh = (p // out_w) % out_h
                n = p // (out_w * out_h)
                for r in range(rows):
                    o = o0 + ty + tm * r
                    if o < o_group:
                        y[n, g * o_group + o, oh, ow] = acc[r, c]

    return forward


def _make_backward_weight(scalar, tiling: Tiling):
    """Partial GW[s, o, k] = sum over split s of GY[o, p] Xcol[k, p]; grid (K tiles, Og tiles, groups*S)."""
    tm, tn, rows, cols, depth = tiling
    block_m, block_n, threads = tiling.block_m, tiling.block_n, tiling.threads
    loads_gy, loads_x = block_m * depth // threads, block_n * depth // threads
    shape_gy, shape_x = tile_shapes(tiling)
    tile_product = make_tile_product(tiling, scalar)
    depth_fastest, _ = make_slots(tiling)
    stage_gy = make_stager(depth_fastest, loads_gy, tm)
    stage_x = make_stager(depth_fastest, loads_x, tn)   # pixels fastest: x is contiguous along ow

    @cuda.jit(device=True, inline="always")
    def fetch(x, gy, taps, go0, o_left, k0, p0, p_end, c0, sh, sw, ph, pw, tid, staged_gy, staged_x):
        """This thread's share of GY[o0:, p0:p0+depth] (channels go0 + .. of gy) and Xcol[k0:, p0:p0+depth]."""
        out_h, out_w = gy.shape[2], gy.shape[3]
        height, width = x.shape[2], x.shape[3]
        k_dim = taps.shape[1]
        pp, _ = depth_fastest(tid, 0)            # the same pixel for every e: decode it once a step
        p = p0 + pp
        ow = p % out_w
        oh = (p // out_w) % out_h
        n = p // (out_w * out_h)
        top = oh * sh - ph
        left = ow * sw - pw
        for e in range(loads_gy):
            _, row = depth_fastest(tid, e)
            value = scalar(0)
            if p < p_end and row < o_left:
                value = gy[n, go0 + row, oh, ow]
            staged_gy[e] = value
        for e in range(loads_x):
            _, col = depth_fastest(tid, e)
            k = k0 + col
            value = scalar(0)
            if p < p_end and k < k_dim:
                ih = top + taps[1, k]
                iw = left + taps[2, k]
                if ih >= 0 and ih < height and iw >= 0 and iw < width:
                    value = x[n, c0 + taps[0, k], ih, iw]
            staged_x[e] = value

    @cuda.jit(cache=True)
    def backward_weight(x, gy, taps, partial, sh, sw, ph, pw, chunk):
        # tile_gy[pp, r, t] = GY[o0 + t + tm*r, p0 + pp],  tile_x[pp, c, t] = Xcol[k0 + t + tn*c, p0 + pp]
        tile_gy = cuda.shared.array(shape_gy, dtype=scalar)
        tile_x = cuda.shared.array(shape_x, dtype=scalar)
        staged_gy = cuda.local.array(loads_gy, dtype=scalar)
        staged_x = cuda.local.array(loads_x, dtype=scalar)
        acc = cuda.local.array((rows, cols), dtype=scalar)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        tid = ty * tn + tx
        splits = partial.shape[0]
        g = cuda.blockIdx.z // splits
        s = cuda.blockIdx.z % splits
        groups = cuda.gridDim.z // splits
        n_img, c_out, out_h, out_w = gy.shape
        o_group = c_out // groups
        c0 = g * (x.shape[1] // groups)
        k_dim = partial.shape[2]
        o0 = cuda.blockIdx.y * block_m
        k0 = cuda.blockIdx.x * block_n
        p_begin = s * chunk
        p_end = min(n_img * out_h * out_w, p_begin + chunk)
        go0 = g * o_group + o0                    # first channel of gy this block reads
        o_left = o_group - o0
        for r in range(rows):
            for c in range(cols):
                acc[r, c] = scalar(0)
        fetch(x, gy, taps, go0, o_left, k0, p_begin, p_end, c0, sh, sw, ph, pw, tid, staged_gy, staged_x)
        for p0 in range(p_begin, p_end, depth):
            stage_gy(tile_gy, staged_gy, tid)
            stage_x(tile_x, staged_x, tid)
            cuda.syncthreads()
            fetch(x, gy, taps, go0, o_left, k0, p0 + depth, p_end, c0, sh, sw, ph, pw, tid, staged_gy, staged_x)
            tile_product(tile_gy, tile_x, acc, ty, tx)
            cuda.syncthreads()
        for r in range(rows):
            o = o0 + ty + tm * r
            for c in range(cols):
                k = k0 + tx + tn * c
                if o < o_group and k < k_dim:
                    partial[s, g * o_group + o, k] = acc[r, c]

    return backward_weight


def _make_backward_input(scalar, tiling: Tiling):
    """GX[c, q] = sum_r WT[c, r] GYcol[r, q] over the input pixels q of one stride phase;
    grid (Q tiles, Cg tiles, groups)."""
    tm, tn, rows, cols, depth = tiling
    block_m, block_n, threads = tiling.block_m, tiling.block_n, tiling.threads
    loads_w, loads_gy = block_m * depth // threads, block_n * depth // threads
    shape_w, shape_gy = tile_shapes(tiling)
    tile_product = make_tile_product(tiling, scalar)
    depth_fastest, line_fastest = make_slots(tiling)
    stage_w = make_stager(depth_fastest, loads_w, tm)
    stage_gy = make_stager(line_fastest, loads_gy, tn)

    @cuda.jit(device=True, inline="always")
    def fetch(gy, w3, taps, go0, cb, r0, n, u, v, q_ok, tid, staged_w, staged_gy):
        """This thread's share of WT[cb:, r0:r0+depth] and GYcol[r0:r0+depth, q0:]."""
        c_group = w3.shape[1]
        out_h, out_w = gy.shape[2], gy.shape[3]
        r_dim = taps.shape[1]
        for e in range(loads_w):
            rr, row = depth_fastest(tid, e)
            c = cb + row
            r = r0 + rr
            value = scalar(0)
            if c < c_group and r < r_dim:
                value = w3[go0 + taps[0, r], c, taps[1, r]]
            staged_w[e] = value
        for e in range(loads_gy):
            rr, col = line_fastest(tid, e)    # col is tid % block_n: the pixel decoded by the caller
            r = r0 + rr
            value = scalar(0)
            if q_ok and r < r_dim:
                oh = u + taps[2, r]           # the output pixel whose tap (i, j) lands on this input pixel
                ow = v + taps[3, r]
                if oh >= 0 and oh < out_h and ow >= 0 and ow < out_w:
                    value = gy[n, go0 + taps[0, r], oh, ow]
            staged_gy[e] = value

    @cuda.jit(cache=True)
    def backward_input(gy, w3, taps, gx, a, b, sh, sw, h_phase, w_phase):
        # tile_w[rr, r, t] = WT[cb + t + tm*r, r0 + rr],  tile_gy[rr, c, t] = GYcol[r0 + rr, q0 + t + tn*c]
        tile_w = cuda.shared.array(shape_w, dtype=scalar)
        tile_gy = cuda.shared.array(shape_gy, dtype=scalar)
        staged_w = cuda.local.array(loads_w, dtype=scalar)
        staged_gy = cuda.local.array(loads_gy, dtype=scalar)
        acc = cuda.local.array((rows, cols), dtype=scalar)
        ty = cuda.threadIdx.y
        tx = cuda.threadIdx.x
        tid = ty * tn + tx
        g = cuda.blockIdx.z
        n_img = gx.shape[0]
        c_group = w3.shape[1]
        go0 = g * (w3.shape[0] // cuda.gridDim.z)   # first output channel of the group
        r_dim = taps.shape[1]
        cb = cuda.blockIdx.y * block_m          # first channel (within the group) of the block
        q0 = cuda.blockIdx.x * block_n
        n_pix = n_img * h_phase * w_phase
        # decode this thread's input pixel once: x[n, :, a + sh*u, b + sw*v]
        q = q0 + tid % block_n
        v = q % w_phase
        u = (q // w_phase) % h_phase
        n = q // (w_phase * h_phase)
        q_ok = q < n_pix
        for r in range(rows):
            for c in range(cols):
                acc[r, c] = scalar(0)
        fetch(gy, w3, taps, go0, cb, 0, n, u, v, q_ok, tid, staged_w, staged_gy)
        for r0 in range(0, r_dim, depth):
            stage_w(tile_w, staged_w, tid)
            stage_gy(tile_gy, staged_gy, tid)
            cuda.syncthreads()
            fetch(gy, w3, taps, go0, cb, r0 + depth, n, u, v, q_ok, tid, staged_w, staged_gy)
            tile_product(tile_w, tile_gy, acc, ty, tx)
            cuda.syncthreads()
        for c in range(cols):
            q = q0 + tx + tn * c
            if q < n_pix:
                v = q % w_phase
                u = (q // w_phase) % h_phase
                n = q // (w_phase * h_phase)
                for r in range(rows):
                    cc = cb + ty + tm * r
                    if cc < c_group:
                        gx[n, g * c_group + cc, a + sh * u, b + sw * v] = acc[r, c]

    return backward_input


@functools.lru_cache(maxsize=None)
def _kernels(dtype_name: str, tiling: Tiling) -> dict:
    """The three kernels for one dtype and tiling (compiled on first launch, then loaded from Numba's disk cache)."""
    if dtype_name not in _SCALARS:
        raise TypeError(f"conv2d (cuda): expected float32 or float64 arrays, got {dtype_name}")
    check_tiling(tiling)
    scalar = _SCALARS[dtype_name]
    return {"forward": _make_forward(scalar, tiling),
            "backward_weight": _make_backward_weight(scalar, tiling),
            "backward_input": _make_backward_input(scalar, tiling)}


@functools.lru_cache(maxsize=256)
def tap_table(c_group: int, kernel_hw: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """(3, Cg*kh*kw) int32 NumPy table (read-only): for k = (c*kh + i)*kw + j, the rows hold c, i*dh and j*dw."""
    kh, kw = kernel_hw
    k = np.arange(c_group * kh * kw, dtype=np.int32)
    table = np.stack([k // (kh * kw), (k // kw) % kh * dilation[0], k % kw * dilation[1]])
    table.setflags(write=False)  # cached: shared by every call with this geometry
    return table


@functools.lru_cache(maxsize=256)
def phase_tap_table(o_group: int, kernel_hw: tuple[int, int], stride: tuple[int, int],
                    padding: tuple[int, int], dilation: tuple[int, int], phase: tuple[int, int]) -> np.ndarray:
    """(4, R) int32 NumPy table (read-only) of the (o, i, j) that reach the input pixels of one stride phase.

    Input pixel (ih, iw) = (a + sh*u, b + sw*v) of phase (a, b) is read by tap (i, j) of output
    pixel (oh, ow) = (u + dy, v + dx) when dy = (a + ph - i*dh) / sh and dx = (b + pw - j*dw) / sw
    are whole numbers; the table lists, for every output channel o of a group and every such
    tap, the rows o, i*kw + j, dy and dx (R = Og * the number of such taps; 0 when none).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (a, b) = kernel_hw, stride, padding, dilation, phase
    taps = np.array([(i * kw + j, (a + ph - i * dh) // sh, (b + pw - j * dw) // sw)
                     for i in range(kh) if (a + ph - i * dh) % sh == 0
                     for j in range(kw) if (b + pw - j * dw) % sw == 0], dtype=np.int32).reshape(-1, 3)
    channels = np.repeat(np.arange(o_group, dtype=np.int32), len(taps))
    table = np.concatenate([channels[None], np.tile(taps.T, (1, o_group))])
    table.setflags(write=False)  # cached: shared by every call with this geometry
    return table


_DEVICE_TABLES: dict = {}  # (table builder, its arguments, device id) -> the table on that device


def _device_table(xp, build, *args):
    """``build(*args)`` (a cached NumPy table) as an array of ``xp``, copied to each GPU once."""
    table = build(*args)
    if xp is np:
        return table.copy()  # the simulator writes kernel arguments back: hand it a writable copy
    key = (build.__name__, args, xp.cuda.Device().id)
    if key not in _DEVICE_TABLES:
        if len(_DEVICE_TABLES) > 1024:
            _DEVICE_TABLES.clear()
        _DEVICE_TABLES[key] = xp.asarray(table)
    return _DEVICE_TABLES[key]


def _check(op: str, a, b) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{op} (cuda): arrays must share a dtype, got {a.dtype} and {b.dtype}")


def _tile_count(count: int, size: int) -> int:
    """Tiles of `size` that cover `count` items (at least 1: a grid dimension cannot be 0)."""
    return max(1, math.ceil(count / size))


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) on the GPU: (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
    _check("conv2d_forward", x, w)
    xp = array_module(x)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    c_out, c_group, kh, kw = w.shape
    out_h, out_w = conv_output_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    y = xp.empty((x.shape[0], c_out, out_h, out_w), dtype=x.dtype)
    if y.size:
        tiling = TILING
        taps = _device_table(xp, tap_table, c_group, (kh, kw), tuple(dilation))
        grid = (_tile_count(x.shape[0] * out_h * out_w, tiling.block_n),   # pixel tiles
                _tile_count(c_out // groups, tiling.block_m), groups)        # channel tiles, groups
        _kernels(str(x.dtype), tiling)["forward"][grid, (tiling.threads_n, tiling.threads_m)](
            x, w.reshape(c_out, c_group * kh * kw), taps, y, stride[0], stride[1], padding[0], padding[1])
    return y


def conv2d_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = dL/dx given gy (N, C_out, H_out, W_out).

    One launch per stride phase (a, b), 0 <= a < sh, 0 <= b < sw: the input pixels
    (a + sh*u, b + sw*v) are all reached by the same taps, so each launch reduces over exactly
    the (o, i, j) that contribute (see :func:`phase_tap_table`) -- no zero products, no division.
    """
    _check("conv2d_backward_input", gy, w)
    xp = array_module(gy)
    gy, w = xp.ascontiguousarray(gy), xp.ascontiguousarray(w)
    c_out, c_group, kh, kw = w.shape
    (height, width), (sh, sw) = in_hw, stride
    phases = []
    for a in range(min(sh, height)):
        for b in range(min(sw, width)):
            geometry = (c_out // groups, (kh, kw), tuple(stride), tuple(padding), tuple(dilation), (a, b))
            phases.append((a, b, phase_tap_table(*geometry).shape[1], geometry))
    untouched = any(taps == 0 for _, _, taps, _ in phases)  # pixels that no tap reaches get 0
    shape = (gy.shape[0], c_group * groups, height, width)
    gx = xp.zeros(shape, dtype=gy.dtype) if untouched else xp.empty(shape, dtype=gy.dtype)
    if gx.size == 0:
        return gx
    tiling = TILING
    kernel = _kernels(str(gy.dtype), tiling)["backward_input"]
    w3 = w.reshape(c_out, c_group, kh * kw)
    for a, b, n_taps, geometry in phases:
        if n_taps == 0:
            continue
        h_phase, w_phase = -(-(height - a) // sh), -(-(width - b) // sw)   # ceil: rows a, a+sh, ... < H
        grid = (_tile_count(gy.shape[0] * h_phase * w_phase, tiling.block_n),
                _tile_count(c_group, tiling.block_m), groups)
        taps = _device_table(xp, phase_tap_table, *geometry)
        kernel[grid, (tiling.threads_n, tiling.threads_m)](gy, w3, taps, gx, a, b, sh, sw, h_phase, w_phase)
    return gx


def split_count(blocks: int, n_pix: int, depth: int, groups: int) -> int:
    """How many chunks ("split-K") the weight gradient's pixel sum is cut into."""
    wanted = math.ceil(_SPLIT_TARGET_BLOCKS / blocks)
    most = max(1, n_pix // (_SPLIT_MIN_STEPS * depth))
    return max(1, min(wanted, most, 65535 // groups))


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    _check("conv2d_backward_weight", x, gy)
    xp = array_module(x)
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    c_out, c_group = gy.shape[1], x.shape[1] // groups
    kh, kw = kernel_hw
    k_dim = c_group * kh * kw
    n_pix = gy.shape[0] * gy.shape[2] * gy.shape[3]
    if n_pix == 0 or c_out == 0 or k_dim == 0:
        return xp.zeros((c_out, c_group, kh, kw), dtype=x.dtype)
    tiling = TILING
    tiles = (_tile_count(k_dim, tiling.block_n), _tile_count(c_out // groups, tiling.block_m))   # weight tiles
    splits = split_count(tiles[0] * tiles[1] * groups, n_pix, tiling.depth, groups)
    steps = math.ceil(n_pix / tiling.depth)
    chunk = math.ceil(steps / splits) * tiling.depth      # pixels per split, whole steps
    partial = xp.empty((splits, c_out, k_dim), dtype=x.dtype)
    taps = _device_table(xp, tap_table, c_group, (kh, kw), tuple(dilation))
    _kernels(str(x.dtype), tiling)["backward_weight"][tiles + (groups * splits,), (tiling.threads_n, tiling.threads_m)](
        x, gy, taps, partial, stride[0], stride[1], padding[0], padding[1], chunk)
    gw = partial[0] if splits == 1 else partial.sum(axis=0)
    return gw.reshape(c_out, c_group, kh, kw)

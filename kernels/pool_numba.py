"""max/avg 2-D pooling on the CPU with Numba, one (image, channel) plane per iteration.

Same formulas and index convention as :mod:`pool_numpy`:

    max:  y[n,c,oh,ow] = max_{i,j} x_pad[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]  (pad = -inf)
          indices = ih*W + iw of the maximum (the first one on ties; a NaN wins, and the last
          NaN of a window is the one kept, as in PyTorch), -1 for a window wholly in padding;
          gx[n,c,h,w] = sum of gy over the outputs whose index is h*W + w.
    avg:  y[n,c,oh,ow] = (1/D) sum_{i,j} x_pad[n, c, oh*sh - ph + i, ow*sw - pw + j]    (pad = 0)
          gx[n,c,h,w] = sum over windows covering (h, w) of gy/D.

The inputs are seen as (N*C, H, W) stacks of planes; iteration p reads and writes only plane
p, so the backward scatter of max pooling (several outputs may pick the same input) is
race-free without atomics.

Speed comes from four things:

* Windows wholly inside the plane take a loop with no bounds tests, and the running
  maximum is kept with selects (``_pick``) instead of branches; only the border windows of
  a padded pooling take the checked loop.
* The two max-pooling windows real networks use most are written out: 2x2 stride 2 (LeNet,
  VGG) and 3x3 stride 2 padding 1 (the ResNet stem), their taps combined as a tree of
  picks at constant offsets from the window's corner.  Average pooling's 2x2 stride 2 gets
  the general loop with literal sizes, which the compiler unrolls.
* The max backward zeroes each plane of the input gradient just before scattering into it,
  while the plane is in the cache, rather than the whole array up front; with
  non-overlapping windows (stride = kernel, no padding, no dilation) each input receives at
  most one gradient, which is stored rather than added.  The average backward over such
  windows writes every input element exactly once (its share of the gradient, or zero past
  the last whole window).
* Small stacks of planes run on one thread (``SERIAL_BELOW``): these kernels run between
  multithreaded BLAS calls, and for LeNet's sizes waking the thread pool costs about what
  it saves.

Measured on 2 shared cores, float32, medians against the previous generic kernels: 2x2/2
max forward on (64, 6, 28, 28) 1.3-2.0 ms -> 0.25-0.37 ms, its backward 0.5-0.6 ms ->
0.2-0.34 ms; on (32, 64, 32, 32), forward + backward, 2x2/2 max 9.9 -> 3.3 ms, 3x3/2 pad 1
max 15.7 -> 7.6 ms, 2x2/2 average 9.2 -> 1.9 ms.
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from .numba_threads import prefer_parking_threads
from .window import conv_output_hw

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]

Pair = tuple[int, int]

prefer_parking_threads()

# Window geometries with a specialised (constant-folded) plane kernel.
_GENERAL = 0
_K2_S2 = 1  # kernel 2x2, stride 2, no padding, no dilation: LeNet, VGG, U-Net
_K3_S2_P1 = 2  # kernel 3x3, stride 2, padding 1, no dilation: the ResNet stem

# The parallel kernels hand each thread a few runs of consecutive planes (not one plane at a
# time: LeNet's 10x10 planes take under a microsecond each).
_CHUNKS_PER_THREAD = 4

# Input elements (N*C*H*W) below which a kernel runs on one thread.  Measured on the shared
# 2-core machine, each call right after a float32 GEMM as in a training step (medians of 60):
# 2x2 max pooling forward + backward on LeNet's (64, 6, 28, 28) took 0.80 ms serial against
# 0.75 ms on 2 threads, on (64, 16, 10, 10) 0.24 ms against 0.32 ms, on (64, 16, 28, 28)
# 1.58 ms against 1.62 ms; on (32, 64, 32, 32) 2 threads won, 4.1 ms against 5.5 ms.
SERIAL_BELOW = 1 << 20


def _window_code(kernel_hw, stride, padding, dilation) -> int:
    geometry = (tuple(kernel_hw), tuple(stride), tuple(padding), tuple(dilation))
    if geometry == ((2, 2), (2, 2), (0, 0), (1, 1)):
        return _K2_S2
    if geometry == ((3, 3), (2, 2), (1, 1), (1, 1)):
        return _K3_S2_P1
    return _GENERAL


def _non_overlapping(kernel_hw, stride, padding, dilation) -> bool:
    """Whether every input element lies in at most one window (tiles side by side)."""
    return tuple(kernel_hw) == tuple(stride) and tuple(padding) == (0, 0) and tuple(dilation) == (1, 1)


def _chunks() -> int:
    """How many runs of consecutive planes a parallel kernel splits its stack into."""
    return _CHUNKS_PER_THREAD * get_num_threads()


def _planes(a):
    """The (N*C, H, W) C-contiguous stack of planes of a 4-d array (a view when possible)."""
    a = np.ascontiguousarray(a)
    return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


@njit(cache=True, inline="always")
def _inside_span(out_size, size, kernel, stride, pad, dilation):
    """[lo, hi): the outputs along one axis whose window lies wholly inside 0..size-1."""
    lo = min((pad + stride - 1) // stride, out_size)  # first o with o*s - p >= 0
    hi = (size - 1 - dilation * (kernel - 1) + pad) // stride + 1  # past the last o that fits
    return lo, max(lo, min(hi, out_size))


# ----------------------------------------------------------------------------- max forward


@njit(cache=True, inline="always")
def _pick(best, at, v, v_at):
    """The winner of two candidates, v coming later in the window: v if v > best or v is NaN.

    Read as "the maximum under the order NaN above all numbers, the later NaN above the
    earlier, the earlier of equal numbers above the later", this is one choice from a total
    order, so candidates may be combined as a tree (independent comparisons, shorter
    dependency chains) as long as each combination puts the earlier one first.
    """
    take = (v > best) | (v != v)
    return (v if take else best), (v_at if take else at)


@njit(cache=True, inline="always")
def _max_inside(xp, yp, ip, oh, ow, top, left, kh, kw, dh, dw):
    """One window wholly inside the plane: no bounds tests, the running maximum by selects."""
    w = xp.shape[1]
    best = xp[top, left]
    offset = 0  # of the best tap from the window's corner, in the flattened plane
    for i in range(kh):
        row = xp[top + i * dh]
        for j in range(kw):
            best, offset = _pick(best, offset, row[left + j * dw], i * dh * w + j * dw)
    yp[oh, ow] = best
    ip[oh, ow] = top * w + left + offset


@njit(cache=True)  # not inlined: few windows take it, and each copy costs compile time
def _max_border(xp, yp, ip, oh, ow, top, left, kh, kw, dh, dw):
    """One window that may reach into the padding: taps outside the plane are skipped."""
    h, w = xp.shape
    best = -np.inf
    at = -1  # stays -1 for a window wholly in the padding
    for i in range(kh):
        r = top + i * dh
        if r < 0 or r >= h:
            continue
        for j in range(kw):
            col = left + j * dw
            if col < 0 or col >= w:
                continue
            v = xp[r, col]
            if at < 0 or v > best or v != v:
                best = v
                at = r * w + col
    yp[oh, ow] = best
    ip[oh, ow] = at


@njit(cache=True, inline="always")
def _max_forward_plane(xp, yp, ip, kh, kw, sh, sw, ph, pw, dh, dw):
    """Any window geometry: the windows inside the plane without bounds tests, the rest checked."""
    h, w = xp.shape
    out_h, out_w = yp.shape
    row_lo, row_hi = _inside_span(out_h, h, kh, sh, ph, dh)
    col_lo, col_hi = _inside_span(out_w, w, kw, sw, pw, dw)
    for oh in range(out_h):
        top = oh * sh - ph
        if row_lo <= oh < row_hi:
            for ow in range(col_lo):
                _max_border(xp, yp, ip, oh, ow, top, ow * sw - pw, kh, kw, dh, dw)
            for ow in range(col_lo, col_hi):
                _max_inside(xp, yp, ip, oh, ow, top, ow * sw - pw, kh, kw, dh, dw)
            for ow in range(col_hi, out_w):
                _max_border(xp, yp, ip, oh, ow, top, ow * sw - pw, kh, kw, dh, dw)
        else:
            for ow in range(out_w):
                _max_border(xp, yp, ip, oh, ow, top, ow * sw - pw, kh, kw, dh, dw)


@njit(cache=True, inline="always")
def _max_2x2_plane(xp, yp, ip):
    """2x2 windows, stride 2, no padding: four taps written out as a tree of picks."""
    w = xp.shape[1]
    out_h, out_w = yp.shape
    for oh in range(out_h):
        top = xp[2 * oh]
        bottom = xp[2 * oh + 1]
        y_row = yp[oh]
        i_row = ip[oh]
        corner = 2 * oh * w
        for ow in range(out_w):
            left = 2 * ow
            upper, upper_at = _pick(top[left], 0, top[left + 1], 1)
            lower, lower_at = _pick(bottom[left], w, bottom[left + 1], w + 1)
            best, at = _pick(upper, upper_at, lower, lower_at)
            y_row[ow] = best
            i_row[ow] = corner + left + at


@njit(cache=True, inline="always")
def _max_3x3_stride2_pad1_plane(xp, yp, ip):
    """3x3 windows, stride 2, padding 1: the windows inside the plane written out.

    Three input rows at a time, each row's three taps picked first, then the rows.  The
    first row and column of windows (and the last, for odd sizes) reach into the padding
    and take the checked loop.
    """
    w = xp.shape[1]
    out_h, out_w = yp.shape
    row_lo, row_hi = _inside_span(out_h, xp.shape[0], 3, 2, 1, 1)
    col_lo, col_hi = _inside_span(out_w, w, 3, 2, 1, 1)
    for oh in range(out_h):
        top = 2 * oh - 1
        if not row_lo <= oh < row_hi:
            for ow in range(out_w):
                _max_border(xp, yp, ip, oh, ow, top, 2 * ow - 1, 3, 3, 1, 1)
            continue
        for ow in range(col_lo):
            _max_border(xp, yp, ip, oh, ow, top, 2 * ow - 1, 3, 3, 1, 1)
        r0 = xp[top]
        r1 = xp[top + 1]
        r2 = xp[top + 2]
        y_row = yp[oh]
        i_row = ip[oh]
        for ow in range(col_lo, col_hi):
            left = 2 * ow - 1
            a, a_at = _pick(r0[left], 0, r0[left + 1], 1)
            a, a_at = _pick(a, a_at, r0[left + 2], 2)
            b, b_at = _pick(r1[left], w, r1[left + 1], w + 1)
            b, b_at = _pick(b, b_at, r1[left + 2], w + 2)
            c, c_at = _pick(r2[left], 2 * w, r2[left + 1], 2 * w + 1)
            c, c_at = _pick(c, c_at, r2[left + 2], 2 * w + 2)
            a, a_at = _pick(a, a_at, b, b_at)
            a, a_at = _pick(a, a_at, c, c_at)
            y_row[ow] = a
            i_row[ow] = top * w + left + a_at
        for ow in range(col_hi, out_w):
            _max_border(xp, yp, ip, oh, ow, top, 2 * ow - 1, 3, 3, 1, 1)


@njit(cache=True)
def _max_forward_planes(x, y, indices, first, last, code, kh, kw, sh, sw, ph, pw, dh, dw):
    """Planes first..last-1 of the stacks x (P, H, W) -> y, indices (P, H_out, W_out)."""
    if code == _K2_S2:
        for p in range(first, last):
            _max_2x2_plane(x[p], y[p], indices[p])
    elif code == _K3_S2_P1:
        for p in range(first, last):
            _max_3x3_stride2_pad1_plane(x[p], y[p], indices[p])
    else:
        for p in range(first, last):
            _max_forward_plane(x[p], y[p], indices[p], kh, kw, sh, sw, ph, pw, dh, dw)


@njit(parallel=True, cache=True)
def _max_forward_parallel(x, y, indices, chunks, code, kh, kw, sh, sw, ph, pw, dh, dw):
    n_planes = x.shape[0]
    chunks = min(n_planes, chunks)
    for k in prange(chunks):
        _max_forward_planes(x, y, indices, k * n_planes // chunks, (k + 1) * n_planes // chunks,
                            code, kh, kw, sh, sw, ph, pw, dh, dw)


# ---------------------------------------------------------------------------- max backward


@njit(cache=True)
def _max_backward_planes(gy, indices, gx, first, last, windows_overlap, zero):
    """Planes first..last-1: gy, indices (P, H_out, W_out) -> gx (P, H, W), each plane zeroed first.

    Each plane is zeroed just before its scatter, while it sits in the cache.  When windows
    do not overlap, an input receives at most one gradient, so it is stored, not added.
    """
    n_planes, h, w = gx.shape
    plane = h * w
    per_plane = gy.shape[1] * gy.shape[2]
    gx_flat = gx.ravel()
    gy_flat = gy.ravel()
    at_flat = indices.ravel()
    for p in range(first, last):
        base = p * plane
        for k in range(base, base + plane):
            gx_flat[k] = zero
        if windows_overlap:
            for k in range(p * per_plane, (p + 1) * per_plane):
                at = at_flat[k]
                if at >= 0:  # -1: a window wholly in the padding, which picked nothing
                    gx_flat[base + at] += gy_flat[k]
        else:
            for k in range(p * per_plane, (p + 1) * per_plane):
                gx_flat[base + at_flat[k]] = gy_flat[k]


@njit(parallel=True, cache=True)
def _max_backward_parallel(gy, indices, gx, chunks, windows_overlap, zero):
    n_planes = gy.shape[0]
    chunks = min(n_planes, chunks)
    for k in prange(chunks):
        _max_backward_planes(gy, indices, gx, k * n_planes // chunks, (k + 1) * n_planes // chunks,
                             windows_overlap, zero)


# ------------------------------------------------------------------------------ avg forward


@njit(cache=True, inline="always")
def _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    if count_include_pad:
        return kh * kw
    top = oh * sh - ph
    left = ow * sw - pw
    rows = min(top + kh, h) - max(top, 0)
    cols = min(left + kw, w) - max(left, 0)
    return rows * cols


@njit(cache=True, inline="always")
def _avg_inside(xp, yp, oh, ow, top, left, kh, kw, zero):
    """One window wholly inside the plane: every tap counts, D = kh*kw, no bounds tests."""
    total = zero
    for i in range(kh):
        for j in range(kw):
            total += xp[top + i, left + j]
    yp[oh, ow] = total / (kh * kw)


@njit(cache=True)  # not inlined: few windows take it, and each copy costs compile time
def _avg_border(xp, yp, oh, ow, top, left, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    h, w = xp.shape
    total = zero
    for i in range(kh):
        r = top + i
        if r < 0 or r >= h:
            continue
        for j in range(kw):
            col = left + j
            if 0 <= col < w:
                total += xp[r, col]
    yp[oh, ow] = total / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)


@njit(cache=True, inline="always")
def _avg_forward_plane(xp, yp, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    """The windows inside the plane without bounds tests, the border windows checked."""
    h, w = xp.shape
    out_h, out_w = yp.shape
    row_lo, row_hi = _inside_span(out_h, h, kh, sh, ph, 1)
    col_lo, col_hi = _inside_span(out_w, w, kw, sw, pw, 1)
    for oh in range(out_h):
        top = oh * sh - ph
        if row_lo <= oh < row_hi:
            for ow in range(col_lo):
                _avg_border(xp, yp, oh, ow, top, ow * sw - pw, kh, kw, sh, sw, ph, pw, count_include_pad, zero)
            for ow in range(col_lo, col_hi):
                _avg_inside(xp, yp, oh, ow, top, ow * sw - pw, kh, kw, zero)
            for ow in range(col_hi, out_w):
                _avg_border(xp, yp, oh, ow, top, ow * sw - pw, kh, kw, sh, sw, ph, pw, count_include_pad, zero)
        else:
            for ow in range(out_w):
                _avg_border(xp, yp, oh, ow, top, ow * sw - pw, kh, kw, sh, sw, ph, pw, count_include_pad, zero)


@njit(cache=True)
def _avg_forward_planes(x, y, first, last, code, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    """Planes first..last-1 of the stacks x (P, H, W) -> y (P, H_out, W_out)."""
    if code == _K2_S2:
        for p in range(first, last):
            _avg_forward_plane(x[p], y[p], 2, 2, 2, 2, 0, 0, count_include_pad, zero)
    else:
        for p in range(first, last):
            _avg_forward_plane(x[p], y[p], kh, kw, sh, sw, ph, pw, count_include_pad, zero)


@njit(parallel=True, cache=True)
def _avg_forward_parallel(x, y, chunks, code, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    n_planes = x.shape[0]
    chunks = min(n_planes, chunks)
    for k in prange(chunks):
        _avg_forward_planes(x, y, k * n_planes // chunks, (k + 1) * n_planes // chunks,
                            code, kh, kw, sh, sw, ph, pw, count_include_pad, zero)


# ----------------------------------------------------------------------------- avg backward


@njit(cache=True, inline="always")
def _avg_backward_scatter_plane(gp, gxp, kh, kw, sh, sw, ph, pw, count_include_pad):
    """gxp (already zero) += gp/D spread over each window's taps inside the plane."""
    h, w = gxp.shape
    out_h, out_w = gp.shape
    for oh in range(out_h):
        for ow in range(out_w):
            share = gp[oh, ow] / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
            for i in range(kh):
                r = oh * sh - ph + i
                if r < 0 or r >= h:
                    continue
                for j in range(kw):
                    col = ow * sw - pw + j
                    if 0 <= col < w:
                        gxp[r, col] += share


@njit(cache=True, inline="always")
def _avg_backward_tiles_plane(gp, gxp, kh, kw, zero):
    """Non-overlapping kh x kw windows: every element of gxp written once, gy/(kh*kw) or zero."""
    h, w = gxp.shape
    out_h, out_w = gp.shape
    for oh in range(out_h):
        for i in range(kh):
            r = oh * kh + i
            for ow in range(out_w):
                share = gp[oh, ow] / (kh * kw)
                for j in range(kw):
                    gxp[r, ow * kw + j] = share
            for col in range(out_w * kw, w):
                gxp[r, col] = zero
    for r in range(out_h * kh, h):
        for col in range(w):
            gxp[r, col] = zero


@njit(cache=True)
def _avg_backward_planes(gy, gx, first, last, tile_h, tile_w, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    """Planes first..last-1: gy (P, H_out, W_out) -> gx (P, H, W)."""
    if tile_h == 2 and tile_w == 2:
        for p in range(first, last):
            _avg_backward_tiles_plane(gy[p], gx[p], 2, 2, zero)
    elif tile_h > 0:
        for p in range(first, last):
            _avg_backward_tiles_plane(gy[p], gx[p], tile_h, tile_w, zero)
    else:
        for p in range(first, last):
            _avg_backward_scatter_plane(gy[p], gx[p], kh, kw, sh, sw, ph, pw, count_include_pad)


@njit(parallel=True, cache=True)
def _avg_backward_parallel(gy, gx, chunks, tile_h, tile_w, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    n_planes = gy.shape[0]
    chunks = min(n_planes, chunks)
    for k in prange(chunks):
        _avg_backward_planes(gy, gx, k * n_planes // chunks, (k + 1) * n_planes // chunks,
                             tile_h, tile_w, kh, kw, sh, sw, ph, pw, count_include_pad, zero)


# ------------------------------------------------------------------------- public functions


def max_pool2d_forward(
    x: np.ndarray, kernel_hw: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[np.ndarray, np.ndarray]:
    """(y, indices): max over each window of x (N, C, H, W); indices are int64 h*W+w.

    y and indices are (N, C, H_out, W_out) with the output size of :mod:`window`.
    """
    n, c, h, w = x.shape
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    xs = _planes(x)
    y = np.empty((n * c, out_h, out_w), dtype=xs.dtype)
    indices = np.empty((n * c, out_h, out_w), dtype=np.int64)
    geometry = (_window_code(kernel_hw, stride, padding, dilation), kernel_hw[0], kernel_hw[1],
                stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1])
    if xs.size < SERIAL_BELOW:
        _max_forward_planes(xs, y, indices, 0, n * c, *geometry)
    else:
        _max_forward_parallel(xs, y, indices, _chunks(), *geometry)
    return y.reshape(n, c, out_h, out_w), indices.reshape(n, c, out_h, out_w)


def max_pool2d_backward(
    gy: np.ndarray,
    indices: np.ndarray,
    in_hw: Pair,
    kernel_hw: Pair | None = None,
    stride: Pair | None = None,
    padding: Pair | None = None,
    dilation: Pair | None = None,
) -> np.ndarray:
    """gx (N, C, H, W): each gy[n,c,oh,ow] added at x[n, c, indices[n,c,oh,ow]].

    gy and indices are (N, C, H_out, W_out), indices as ``max_pool2d_forward`` returned them
    for the same window geometry.  With non-overlapping windows (stride = kernel, no padding
    or dilation) each input receives at most one gradient, which is then stored instead of
    added; without the whole geometry the windows are assumed to overlap.
    """
    n, c = gy.shape[:2]
    h, w = in_hw
    gys = _planes(gy)
    index_planes = _planes(np.asarray(indices, dtype=np.int64))
    geometry = (kernel_hw, stride, padding, dilation)
    overlap = any(part is None for part in geometry) or not _non_overlapping(*geometry)
    gx = np.empty((n * c, h, w), dtype=gys.dtype)
    if gx.size < SERIAL_BELOW:
        _max_backward_planes(gys, index_planes, gx, 0, n * c, overlap, gys.dtype.type(0))
    else:
        _max_backward_parallel(gys, index_planes, gx, _chunks(), overlap, gys.dtype.type(0))
    return gx.reshape(n, c, h, w)


def avg_pool2d_forward(
    x: np.ndarray, kernel_hw: Pair, stride: Pair, padding: Pair, count_include_pad: bool = True
) -> np.ndarray:
    """y (N, C, H_out, W_out): mean over each window of x (N, C, H, W) (zero padding)."""
    n, c, h, w = x.shape
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, (1, 1))
    xs = _planes(x)
    y = np.empty((n * c, out_h, out_w), dtype=xs.dtype)
    geometry = (_window_code(kernel_hw, stride, padding, (1, 1)), kernel_hw[0], kernel_hw[1],
                stride[0], stride[1], padding[0], padding[1], bool(count_include_pad), xs.dtype.type(0))
    if xs.size < SERIAL_BELOW:
        _avg_forward_planes(xs, y, 0, n * c, *geometry)
    else:
        _avg_forward_parallel(xs, y, _chunks(), *geometry)
    return y.reshape(n, c, out_h, out_w)


def avg_pool2d_backward(
    gy: np.ndarray, in_hw: Pair, kernel_hw: Pair, stride: Pair, padding: Pair, count_include_pad: bool = True
) -> np.ndarray:
    """gx (N, C, H, W): every window of gy (N, C, H_out, W_out) spreads gy/D over its taps."""
    n, c = gy.shape[:2]
    h, w = in_hw
    gys = _planes(gy)
    tile_h = tile_w = 0
    if _non_overlapping(kernel_hw, stride, padding, (1, 1)):
        tile_h, tile_w = kernel_hw
    allocate = np.empty if tile_h > 0 else np.zeros
    gx = allocate((n * c, h, w), dtype=gys.dtype)
    geometry = (tile_h, tile_w, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                padding[0], padding[1], bool(count_include_pad), gys.dtype.type(0))
    if gx.size < SERIAL_BELOW:
        _avg_backward_planes(gys, gx, 0, n * c, *geometry)
    else:
        _avg_backward_parallel(gys, gx, _chunks(), *geometry)
    return gx.reshape(n, c, h, w)

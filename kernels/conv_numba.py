"""conv2d on the CPU with Numba: parallel im2col/col2im kernels feeding BLAS.

The arithmetic is the GEMM formulation of :mod:`conv_numpy` (see its docstring); what Numba
replaces is the data movement around it, which dominates for the small channel counts of
real networks:

* ``im2col`` runs in parallel over (image n, input channel c): iteration (n, c) writes only
  the kh*kw rows c*kh*kw .. (c+1)*kh*kw-1 of ``cols[n]``, so no two iterations touch the
  same memory.  Padding is never materialised: out-of-range taps are written as zeros, and
  the in-range span of output columns for each tap is computed once instead of tested per
  pixel.
* ``col2im`` (the input gradient) runs in parallel over (n, c): iteration (n, c) owns the
  plane ``gx[n, c]`` and adds into it the kh*kw column rows of that channel; no races, no
  atomics.

* stride 1 (the common case) needs no gather at all: read the zero-padded input of one
  channel as a single long row, x_flat[c, r*Wp + q] = x_pad[c, r, q] with Wp = W + 2*pw.
  Output position (oh, ow) and tap (i, j) read x_pad[c, oh + i*dh, ow + j*dw], which is

      x_flat[c, p + i*dh*Wp + j*dw]      at the "wide" position p = oh*Wp + ow,

  so over p = 0 .. H_out*Wp - 1 the column row of tap (i, j) is one contiguous slice of
  x_flat shifted by i*dh*Wp + j*dw: im2col becomes kh*kw long copies per channel.  The
  GEMM then also computes Wp - W_out "wide" columns per output row that are not outputs
  (2 of 34 for a 3x3, pad 1 layer on 32 columns: 6% more multiply-adds); they are
  dropped when the result is cropped back to W_out.  The input gradient of a stride-1
  conv is itself a stride-1 conv of gy (padded by d*(k-1) - p) with the weight flipped
  in space and transposed in channels, so it reuses the forward instead of col2im
  (when C_out <= C_in; otherwise its columns would be the larger ones); the
  weight gradient multiplies the wide columns by gy widened with zeros in the extra
  columns.  These kernels run on one thread: they sit between two multithreaded BLAS
  calls on a chunk sized to stay in cache, and measured faster serial than parallel
  (BLAS's workers still hold the other cores when the copy starts).

Every kernel takes all strides, paddings and dilations as plain ints, so Numba compiles one
specialisation per dtype (float32, float64) and caches it on disk (``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .conv_numpy import gemm_forward, gemm_input, gemm_weight
from .numba_threads import prefer_parking_threads
from .window import conv_output_hw

prefer_parking_threads()

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"]


@njit(cache=True, inline="always")
def _valid_span(out_size, size, stride, offset):
    """Output positions o in [lo, hi) with 0 <= o*stride + offset < size."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if size - 1 - offset >= 0:
        hi = (size - 1 - offset) // stride + 1
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    return lo, hi


@njit(parallel=True, cache=True)
def _im2col_kernel(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    n_img, n_chan, h, w = x.shape
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for i in range(kh):
            oh_lo, oh_hi = _valid_span(out_h, h, sh, i * dh - ph)
            for j in range(kw):
                ow_lo, ow_hi = _valid_span(out_w, w, sw, j * dw - pw)
                row = (c * kh + i) * kw + j
                for oh in range(out_h):
                    base = oh * out_w
                    if oh < oh_lo or oh >= oh_hi:
                        for ow in range(out_w):
                            cols[n, row, base + ow] = 0
                        continue
                    ih = oh * sh - ph + i * dh
                    for ow in range(ow_lo):
                        cols[n, row, base + ow] = 0
                    iw0 = j * dw - pw
                    if sw == 1:  # unit stride: a contiguous copy that LLVM vectorises
                        for ow in range(ow_lo, ow_hi):
                            cols[n, row, base + ow] = x[n, c, ih, ow + iw0]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            cols[n, row, base + ow] = x[n, c, ih, ow * sw + iw0]
                    for ow in range(ow_hi, out_w):
                        cols[n, row, base + ow] = 0


@njit(parallel=True, cache=True)
def _col2im_kernel(dcols, gx, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    n_img, n_chan, h, w = gx.shape
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for i in range(kh):
            oh_lo, oh_hi = _valid_span(out_h, h, sh, i * dh - ph)
            for j in range(kw):
                ow_lo, ow_hi = _valid_span(out_w, w, sw, j * dw - pw)
                row = (c * kh + i) * kw + j
                iw0 = j * dw - pw
                for oh in range(oh_lo, oh_hi):
                    ih = oh * sh - ph + i * dh
                    base = oh * out_w
                    if sw == 1:
                        for ow in range(ow_lo, ow_hi):
                            gx[n, c, ih, ow + iw0] += dcols[n, row, base + ow]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            gx[n, c, ih, ow * sw + iw0] += dcols[n, row, base + ow]


def im2col(x, kernel_hw, stride, padding, dilation):
    """Columns (N, C*kh*kw, H_out*W_out) of ``x`` (N, C, H, W); same layout as conv_numpy.im2col."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    cols = np.empty((n, c * kernel_hw[0] * kernel_hw[1], out_h * out_w), dtype=x.dtype)
    _im2col_kernel(x, cols, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                   padding[0], padding[1], dilation[0], dilation[1], out_h, out_w)
    return cols


def col2im(dcols, in_hw, kernel_hw, stride, padding, dilation):
    """Adjoint of :func:`im2col`: (N, C*kh*kw, L) -> (N, C, H, W)."""
    dcols = np.ascontiguousarray(dcols)
    kh, kw = kernel_hw
    n, c = dcols.shape[0], dcols.shape[1] // (kh * kw)
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, stride, padding, dilation)
    gx = np.zeros((n, c, in_hw[0], in_hw[1]), dtype=dcols.dtype)
    _col2im_kernel(dcols, gx, kh, kw, stride[0], stride[1],
                   padding[0], padding[1], dilation[0], dilation[1], out_h, out_w)
    return gx


# Columns for a whole batch can be far larger than the caches (32 x 576 x 1024 floats for a
# VGG layer); the drivers below therefore walk the batch in chunks whose columns fit in
# about this many bytes, so that the GEMM reads them back from cache (the stride-1 path
# also cuts one image into bands of output rows when its columns alone are larger).
# Measured on the VGG-like layer: 2.5-8 MiB equally fast, 1 MiB and less 10-15% slower.
_COLUMN_BUDGET_BYTES = 4 << 20


def _batch_chunks(x_shape, kernel_hw, out_hw, itemsize):
    n, c = x_shape[0], x_shape[1]
    per_image = c * kernel_hw[0] * kernel_hw[1] * out_hw[0] * out_hw[1] * itemsize
    step = max(1, min(n, _COLUMN_BUDGET_BYTES // max(per_image, 1)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


# ------------------------------------------------------------------ stride 1: shifted rows
# False sends stride 1 through the general im2col/col2im kernels too (tests compare both)
_SHIFTED = True


@njit(cache=True)
def _shifted_rows_kernel(x, x_pad, cols, ph, pw, kh, kw, dh, dw, p0, fill):
    """cols[n, (c*kh + i)*kw + j, p] = x_flat[n, c, p0 + p + i*dh*Wp + j*dw] (see the module
    docstring); with ``fill`` the interior of each padded image ``x_pad`` is copied from x
    first.  The borders and tail of ``x_pad`` must be zero (they are never written)."""
    n_img, n_chan, h, w = x.shape
    wp = w + 2 * pw
    length = cols.shape[2]
    for n in range(n_img):
        for c in range(n_chan):
            if fill:
                for r in range(h):
                    base = (ph + r) * wp + pw
                    for q in range(w):
                        x_pad[n, c, base + q] = x[n, c, r, q]
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    shift = p0 + i * dh * wp + j * dw
                    for p in range(length):
                        cols[n, row, p] = x_pad[n, c, shift + p]


@njit(cache=True)
def _crop_kernel(wide, out, wp):
    """out[n, c, r, q] = wide[n, c, r*Wp + q] for q < W_out: drop the extra wide columns."""
    n_img, n_chan, h, w = out.shape
    for n in range(n_img):
        for c in range(n_chan):
            for r in range(h):
                for q in range(w):
                    out[n, c, r, q] = wide[n, c, r * wp + q]


@njit(cache=True)
def _widen_kernel(g, wide, wp):
    """wide[n, c, r*Wp + q] = g[n, c, r, q] for q < W_out and 0 for W_out <= q < Wp."""
    n_img, n_chan, h, w = g.shape
    for n in range(n_img):
        for c in range(n_chan):
            for r in range(h):
                for q in range(w):
                    wide[n, c, r * wp + q] = g[n, c, r, q]
                for q in range(w, wp):
                    wide[n, c, r * wp + q] = 0


class _ShiftedRows:
    """Geometry, work plan and scratch buffers of the stride-1 (shifted rows) columns.

    The work is cut so that one piece's columns fit in ``_COLUMN_BUDGET_BYTES`` (about one
    core's L2 cache, where the GEMM then finds them): several whole images when an image's
    columns are small, else bands of output rows of one image."""

    def __init__(self, x_shape, kernel_hw, padding, dilation, dtype):
        n, c_in, h, w = x_shape
        (kh, kw), (ph, pw), (dh, dw) = kernel_hw, padding, dilation
        hp, self.wp = h + 2 * ph, w + 2 * pw
        self.out_hw = (hp - dh * (kh - 1), self.wp - dw * (kw - 1))
        self.geometry = (ph, pw, kh, kw, dh, dw)
        self.rows = c_in * kh * kw
        self.dtype = np.dtype(dtype)
        row_bytes = self.rows * self.wp * self.dtype.itemsize  # columns of one output row
        image_rows = self.out_hw[0]
        if image_rows * row_bytes <= _COLUMN_BUDGET_BYTES:
            self.images, self.band = max(1, min(n, _COLUMN_BUDGET_BYTES // max(image_rows * row_bytes, 1))), image_rows
        else:
            self.images, self.band = 1, max(1, _COLUMN_BUDGET_BYTES // row_bytes)
        # the last tap's slice runs dw*(kw - 1) past the padded image: a zero tail
        self.x_pad = np.zeros((self.images, c_in, hp * self.wp + dw * (kw - 1)), dtype=dtype)
        self._cols = np.empty(self.images * self.rows * self.band * self.wp, dtype=dtype)

    def pieces(self, n):
        """(images, output rows r0:r1) of each piece, bands of an image in order."""
        for start in range(0, n, self.images):
            part = slice(start, min(start + self.images, n))
            for r0 in range(0, self.out_hw[0], self.band):
                yield part, r0, min(r0 + self.band, self.out_hw[0])

    def scratch(self, m, channels, r0, r1):
        """An uninitialised (m, channels, (r1 - r0)*Wp) buffer for wide rows r0:r1."""
        return np.empty((m, channels, (r1 - r0) * self.wp), dtype=self.dtype)

    def columns(self, x_part, r0, r1):
        """Wide columns (m, C_in*kh*kw, (r1 - r0)*Wp) of output rows r0:r1 of the m images
        ``x_part``; the padded images are refreshed when a piece starts at row 0."""
        m = x_part.shape[0]
        cols = self._cols[: m * self.rows * (r1 - r0) * self.wp].reshape(m, self.rows, (r1 - r0) * self.wp)
        _shifted_rows_kernel(x_part, self.x_pad, cols, *self.geometry, r0 * self.wp, r0 == 0)
        return cols


def _stride1_forward(x, w, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    n, c_out = x.shape[0], w.shape[0]
    og, k = c_out // groups, w.shape[1] * w.shape[2] * w.shape[3]
    plan = _ShiftedRows(x.shape, w.shape[2:], padding, dilation, x.dtype)
    y = np.empty((n, c_out) + plan.out_hw, dtype=x.dtype)
    w_g = np.ascontiguousarray(w).reshape(groups, og, k)
    for part, r0, r1 in plan.pieces(n):
        cols = plan.columns(x[part], r0, r1)
        m, length = cols.shape[0], cols.shape[2]
        wide = plan.scratch(m, c_out, r0, r1)
        np.matmul(w_g, cols.reshape(m, groups, k, length), out=wide.reshape(m, groups, og, length))
        _crop_kernel(wide, y[part, :, r0:r1], plan.wp)
    return y


def _flipped_weight(w, groups):
    """w (C_out, Cg, kh, kw) -> (C_in, Og, kh, kw) with w'[g*Cg + c, o, i, j] =
    w[g*Og + o, c, kh-1-i, kw-1-j]: the weight of the conv that is conv2d's input gradient."""
    c_out, cg, kh, kw = w.shape
    og = c_out // groups
    flipped = w.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(flipped).reshape(groups * cg, og, kh, kw)


def _stride1_input_padding(w_shape, in_hw, out_hw, padding, dilation):
    """Padding of the stride-1 conv of gy that gives the input gradient, or None when there
    is none (padding > dilation*(k - 1) would need a negative one)."""
    flipped = tuple(d * (k - 1) - p for d, k, p in zip(dilation, w_shape[2:], padding))
    if min(flipped) < 0:
        return None
    if conv_output_hw(out_hw, w_shape[2:], (1, 1), flipped, dilation) != tuple(in_hw):
        return None
    return flipped


def _stride1_backward_weight(x, gy, kernel_hw, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    n, c_in = x.shape[:2]
    c_out = gy.shape[1]
    og, cg = c_out // groups, c_in // groups
    k = cg * kernel_hw[0] * kernel_hw[1]
    plan = _ShiftedRows(x.shape, kernel_hw, padding, dilation, x.dtype)
    if tuple(gy.shape[2:]) != plan.out_hw:
        raise ValueError(f"conv2d_backward_weight: gy of shape {gy.shape} does not match the conv2d output "
                         f"{plan.out_hw} of input {x.shape} with kernel {tuple(kernel_hw)}")
    product = np.empty((plan.images, groups, k, og), dtype=x.dtype)
    gw_t = np.zeros((groups, k, og), dtype=x.dtype)  # gw transposed: cols @ gy^T runs faster in BLAS
    for part, r0, r1 in plan.pieces(n):
        cols = plan.columns(x[part], r0, r1)
        m, length = cols.shape[0], cols.shape[2]
        wide = plan.scratch(m, c_out, r0, r1)
        _widen_kernel(gy[part, :, r0:r1], wide, plan.wp)
        g_t = wide.reshape(m, groups, og, length).swapaxes(-1, -2)
        np.matmul(cols.reshape(m, groups, k, length), g_t, out=product[:m])
        gw_t += product[0] if m == 1 else product[:m].sum(axis=0)
    gw = gw_t.transpose(0, 2, 1).reshape(c_out, cg, kernel_hw[0], kernel_hw[1])
    return np.ascontiguousarray(gw)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w): (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
    if tuple(stride) == (1, 1) and _SHIFTED:
        return _stride1_forward(x, w, tuple(padding), tuple(dilation), groups)
    kernel_hw = (w.shape[2], w.shape[3])
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    y = np.empty((x.shape[0], w.shape[0], out_hw[0], out_hw[1]), dtype=x.dtype)
    for part in _batch_chunks(x.shape, kernel_hw, out_hw, x.itemsize):
        cols = im2col(x[part], kernel_hw, stride, padding, dilation)
        y[part] = gemm_forward(cols, w, groups, out_hw)
    return y


def conv2d_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = dL/dx given gy (N, C_out, H_out, W_out)."""
    kernel_hw = (w.shape[2], w.shape[3])
    in_hw = tuple(in_hw)
    # the flipped conv gathers C_out*kh*kw column rows where col2im scatters C_in*kh*kw:
    # it pays when C_out <= C_in (measured: 1.7x faster on 64 -> 64, 3x slower on 1 -> 6)
    if tuple(stride) == (1, 1) and w.shape[0] <= w.shape[1] * groups and _SHIFTED:
        flipped = _stride1_input_padding(w.shape, in_hw, gy.shape[2:], padding, dilation)
        if flipped is not None:
            return _stride1_forward(gy, _flipped_weight(w, groups), flipped, tuple(dilation), groups)
    x_shape = (gy.shape[0], w.shape[1] * groups)
    gx = np.empty((gy.shape[0], x_shape[1], in_hw[0], in_hw[1]), dtype=gy.dtype)
    for part in _batch_chunks(x_shape, kernel_hw, gy.shape[2:], gy.itemsize):
        dcols = gemm_input(gy[part], w, groups)
        gx[part] = col2im(dcols, in_hw, kernel_hw, stride, padding, dilation)
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    kernel_hw = tuple(kernel_hw)
    if tuple(stride) == (1, 1) and _SHIFTED:
        return _stride1_backward_weight(x, gy, kernel_hw, tuple(padding), tuple(dilation), groups)
    weight_shape = (gy.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1])
    gw = np.zeros(weight_shape, dtype=x.dtype)
    for part in _batch_chunks(x.shape, kernel_hw, gy.shape[2:], x.itemsize):
        cols = im2col(x[part], kernel_hw, stride, padding, dilation)
        gw += gemm_weight(cols, gy[part], groups, weight_shape)
    return gw

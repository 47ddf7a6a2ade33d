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
# about this many bytes, so that the GEMM reads them back from cache.
_COLUMN_BUDGET_BYTES = 4 << 20


def _batch_chunks(x_shape, kernel_hw, out_hw, itemsize):
    n, c = x_shape[0], x_shape[1]
    per_image = c * kernel_hw[0] * kernel_hw[1] * out_hw[0] * out_hw[1] * itemsize
    step = max(1, min(n, _COLUMN_BUDGET_BYTES // max(per_image, 1)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w): (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
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
    x_shape = (gy.shape[0], w.shape[1] * groups)
    gx = np.empty((gy.shape[0], x_shape[1], in_hw[0], in_hw[1]), dtype=gy.dtype)
    for part in _batch_chunks(x_shape, kernel_hw, gy.shape[2:], gy.itemsize):
        dcols = gemm_input(gy[part], w, groups)
        gx[part] = col2im(dcols, in_hw, kernel_hw, stride, padding, dilation)
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    kernel_hw = tuple(kernel_hw)
    weight_shape = (gy.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1])
    gw = np.zeros(weight_shape, dtype=x.dtype)
    for part in _batch_chunks(x.shape, kernel_hw, gy.shape[2:], x.itemsize):
        cols = im2col(x[part], kernel_hw, stride, padding, dilation)
        gw += gemm_weight(cols, gy[part], groups, weight_shape)
    return gw

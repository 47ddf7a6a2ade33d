"""Reference max/avg 2-D pooling on the array library (NumPy, or CuPy with the same code).

Input x is (N, C, H, W); output y is (N, C, H_out, W_out) with the window geometry of
:mod:`window`.  Windows are read through one strided view of the padded input (no Python
loop over pixels):

    max:  y[n,c,oh,ow] = max_{i,j} x_pad[n, c, oh*sh + i*dh, ow*sw + j*dw]   (pad = -inf)
          indices[n,c,oh,ow] = ih*W + iw of that maximum in the unpadded plane (as PyTorch's
          ``return_indices``: the first maximum on ties, the last NaN if any), or -1 for a window lying wholly in the padding (its output is
          -inf); the gradient sends gy[n,c,oh,ow] to x[n, c, indices]:
          gx[n,c,h,w] = sum over outputs whose index is h*W+w of gy.
    avg:  y[n,c,oh,ow] = (1/D) sum_{i,j} x_pad[n, c, oh*sh + i, ow*sw + j]   (pad = 0)
          with D = kh*kw (count_include_pad) or the number of taps inside the unpadded
          input; gx[n,c,h,w] = sum over windows covering (h, w) of gy/D.
"""
from __future__ import annotations

from .arrays import array_module
from .conv_numpy import window_view
from .window import conv_output_hw

__all__ = [
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_divisor",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]


def _pad(x, padding, value):
    xp = array_module(x)
    if padding == (0, 0):
        return xp.ascontiguousarray(x)
    widths = ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2)
    return xp.pad(x, widths, constant_values=value)


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation):
    """(y, indices): max over each window of x (N, C, H, W); indices are int64 h*W+w."""
    xp = array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_hw
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    view = window_view(_pad(x, padding, -xp.inf), kernel_hw, stride, dilation, (out_h, out_w))
    taps = view.reshape(n, c, kh * kw, out_h, out_w)
    best = xp.argmax(taps, axis=2)  # the first maximum, or the first NaN
    # PyTorch (and the Numba and CUDA paths) let the *last* NaN of a window win; computed
    # without a data-dependent branch, so that CuPy arrays never wait on a host check
    nan = xp.isnan(taps)
    last_nan = kh * kw - 1 - xp.argmax(nan[:, :, ::-1], axis=2)
    best = xp.where(nan.any(axis=2), last_nan, best)
    y = xp.take_along_axis(taps, best[:, :, None], axis=2)[:, :, 0]
    oh = xp.arange(out_h).reshape(out_h, 1)
    ow = xp.arange(out_w).reshape(1, out_w)
    ih = oh * stride[0] - padding[0] + (best // kw) * dilation[0]
    iw = ow * stride[1] - padding[1] + (best % kw) * dilation[1]
    inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
    return y, xp.where(inside, ih * w + iw, -1).astype(xp.int64)


def max_pool2d_backward(gy, indices, in_hw, kernel_hw=None, stride=None, padding=None, dilation=None):
    """gx (N, C, H, W): each gy[n,c,oh,ow] added at x[n, c, indices[n,c,oh,ow]].

    The window geometry is accepted for a common signature with the CUDA path; the indices
    alone determine the result here.
    """
    xp = array_module(gy)
    n, c = gy.shape[:2]
    plane = in_hw[0] * in_hw[1]
    offsets = (xp.arange(n * c, dtype=xp.int64) * plane).reshape(n * c, 1)
    outputs = gy.shape[2] * gy.shape[3]
    picked = indices.reshape(n * c, outputs)
    flat = xp.where(picked >= 0, picked + offsets, 0).ravel()
    weights = xp.where(picked >= 0, gy.reshape(n * c, outputs), 0).ravel()
    gx = xp.bincount(flat, weights=weights, minlength=n * c * plane)
    return gx.astype(gy.dtype, copy=False).reshape(n, c, in_hw[0], in_hw[1])


def _taps_inside(out_size, size, kernel, stride, padding, xp):
    """For each output position along one axis, how many of its taps land inside [0, size)."""
    first = xp.arange(out_size) * stride - padding
    taps = first.reshape(-1, 1) + xp.arange(kernel).reshape(1, -1)
    return ((taps >= 0) & (taps < size)).sum(axis=1)


def avg_pool2d_divisor(in_hw, kernel_hw, stride, padding, count_include_pad, dtype, xp):
    """The divisor D (H_out, W_out) of each window (a scalar kh*kw when padding counts)."""
    if count_include_pad:
        return kernel_hw[0] * kernel_hw[1]
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, stride, padding, (1, 1))
    rows = _taps_inside(out_h, in_hw[0], kernel_hw[0], stride[0], padding[0], xp)
    cols = _taps_inside(out_w, in_hw[1], kernel_hw[1], stride[1], padding[1], xp)
    return (rows.reshape(-1, 1) * cols.reshape(1, -1)).astype(dtype)


def avg_pool2d_forward(x, kernel_hw, stride, padding, count_include_pad=True):
    """y (N, C, H_out, W_out): mean over each window (zero padding; divisor as documented)."""
    xp = array_module(x)
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, (1, 1))
    view = window_view(_pad(x, padding, 0), kernel_hw, stride, (1, 1), out_hw)
    divisor = avg_pool2d_divisor(x.shape[2:], kernel_hw, stride, padding, count_include_pad, x.dtype, xp)
    return (view.sum(axis=(2, 3)) / divisor).astype(x.dtype, copy=False)


def avg_pool2d_backward(gy, in_hw, kernel_hw, stride, padding, count_include_pad=True):
    """gx (N, C, H, W): every window spreads gy/D evenly over its taps."""
    xp = array_module(gy)
    n, c, out_h, out_w = gy.shape
    divisor = avg_pool2d_divisor(in_hw, kernel_hw, stride, padding, count_include_pad, gy.dtype, xp)
    share = (gy / divisor).astype(gy.dtype, copy=False)
    g_pad = xp.zeros((n, c, in_hw[0] + 2 * padding[0], in_hw[1] + 2 * padding[1]), dtype=gy.dtype)
    for i in range(kernel_hw[0]):
        rows = slice(i, i + stride[0] * (out_h - 1) + 1, stride[0])
        for j in range(kernel_hw[1]):
            cols = slice(j, j + stride[1] * (out_w - 1) + 1, stride[1])
            g_pad[:, :, rows, cols] += share
    inner = g_pad[:, :, padding[0] : padding[0] + in_hw[0], padding[1] : padding[1] + in_hw[1]]
    return xp.ascontiguousarray(inner)

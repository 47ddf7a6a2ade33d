"""max/avg 2-D pooling on the CPU with Numba, parallel over (image, channel) planes.

Same formulas and index convention as :mod:`pool_numpy`.  Iteration (n, c) of every
``prange`` reads and writes only the plane (n, c), so the backward scatter of max pooling
(several outputs may pick the same input) is race-free without atomics.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_threads import prefer_parking_threads
from .window import conv_output_hw

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]

prefer_parking_threads()


@njit(parallel=True, cache=True)
def _max_forward(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw):
    n_img, n_chan, h, w = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for oh in range(out_h):
            for ow in range(out_w):
                best = -np.inf
                best_at = -1
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= h:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j * dw
                        if iw < 0 or iw >= w:
                            continue
                        v = x[n, c, ih, iw]
                        if best_at < 0 or v > best or v != v:  # v != v: NaN wins, as in PyTorch
                            best = v
                            best_at = ih * w + iw
                y[n, c, oh, ow] = best
                indices[n, c, oh, ow] = best_at


@njit(parallel=True, cache=True)
def _max_backward(gy, indices, gx):
    n_img, n_chan, h, w = gx.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for oh in range(out_h):
            for ow in range(out_w):
                at = indices[n, c, oh, ow]
                if at >= 0:  # -1: a window wholly in the padding, which picked nothing
                    gx[n, c, at // w, at % w] += gy[n, c, oh, ow]


@njit(cache=True, inline="always")
def _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    if count_include_pad:
        return kh * kw
    top = oh * sh - ph
    left = ow * sw - pw
    rows = min(top + kh, h) - max(top, 0)
    cols = min(left + kw, w) - max(left, 0)
    return rows * cols


@njit(parallel=True, cache=True)
def _avg_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad):
    n_img, n_chan, h, w = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for oh in range(out_h):
            for ow in range(out_w):
                total = x[n, c, 0, 0] * 0
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j
                        if 0 <= iw < w:
                            total += x[n, c, ih, iw]
                y[n, c, oh, ow] = total / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)


@njit(parallel=True, cache=True)
def _avg_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad):
    n_img, n_chan, h, w = gx.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for oh in range(out_h):
            for ow in range(out_w):
                share = gy[n, c, oh, ow] / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
                for i in range(kh):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    for j in range(kw):
                        iw = ow * sw - pw + j
                        if 0 <= iw < w:
                            gx[n, c, ih, iw] += share


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation):
    """(y, indices): max over each window of x (N, C, H, W); indices are int64 h*W+w."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    y = np.empty((n, c, out_h, out_w), dtype=x.dtype)
    indices = np.empty((n, c, out_h, out_w), dtype=np.int64)
    _max_forward(x, y, indices, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                 padding[0], padding[1], dilation[0], dilation[1])
    return y, indices


def max_pool2d_backward(gy, indices, in_hw, kernel_hw=None, stride=None, padding=None, dilation=None):
    """gx (N, C, H, W): each gy[n,c,oh,ow] added at x[n, c, indices[n,c,oh,ow]].

    The window geometry is accepted for a common signature with the CUDA path; the indices
    alone determine the result here.
    """
    gy = np.ascontiguousarray(gy)
    gx = np.zeros(gy.shape[:2] + tuple(in_hw), dtype=gy.dtype)
    _max_backward(gy, np.ascontiguousarray(indices, dtype=np.int64), gx)
    return gx


def avg_pool2d_forward(x, kernel_hw, stride, padding, count_include_pad=True):
    """y (N, C, H_out, W_out): mean over each window (zero padding)."""
    x = np.ascontiguousarray(x)
    out_h, out_w = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, (1, 1))
    y = np.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    _avg_forward(x, y, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                 padding[0], padding[1], bool(count_include_pad))
    return y


def avg_pool2d_backward(gy, in_hw, kernel_hw, stride, padding, count_include_pad=True):
    """gx (N, C, H, W): every window spreads gy/D evenly over its taps."""
    gy = np.ascontiguousarray(gy)
    gx = np.zeros(gy.shape[:2] + tuple(in_hw), dtype=gy.dtype)
    _avg_backward(gy, gx, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                  padding[0], padding[1], bool(count_include_pad))
    return gx

"""max/avg 2-D pooling on NVIDIA GPUs with Numba CUDA kernels (CuPy arrays in and out).

Same formulas and index convention as :mod:`pool_numpy`.  Forward kernels run one thread
per output element.  Backward kernels run one thread per input element x[n, c, ih, iw] in
gather form: the thread visits the outputs whose window contains (ih, iw) -- those with
oh*sh = ih + ph - i*dh for a tap i, likewise along w -- and sums their contributions, so
every thread owns what it writes and no atomics are needed.
"""
from __future__ import annotations

import math

from numba import cuda

from .arrays import array_module
from .window import conv_output_hw

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"]

_THREADS = 128


@cuda.jit(cache=True)
def _max_forward(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw):
    t = cuda.grid(1)
    n_img, n_chan, out_h, out_w = y.shape
    if t < n_img * n_chan * out_h * out_w:
        ow = t % out_w
        oh = (t // out_w) % out_h
        c = (t // (out_w * out_h)) % n_chan
        n = t // (out_w * out_h * n_chan)
        h, w = x.shape[2], x.shape[3]
        best_at = -1
        best = -math.inf
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


@cuda.jit(cache=True)
def _max_backward(gy, indices, gx, kh, kw, sh, sw, ph, pw, dh, dw, zero):
    t = cuda.grid(1)
    n_img, n_chan, h, w = gx.shape
    if t < n_img * n_chan * h * w:
        iw = t % w
        ih = (t // w) % h
        c = (t // (w * h)) % n_chan
        n = t // (w * h * n_chan)
        out_h, out_w = gy.shape[2], gy.shape[3]
        me = ih * w + iw
        acc = zero
        for i in range(kh):
            top = ih + ph - i * dh
            if top < 0 or top % sh != 0 or top // sh >= out_h:
                continue
            for j in range(kw):
                left = iw + pw - j * dw
                if left < 0 or left % sw != 0 or left // sw >= out_w:
                    continue
                if indices[n, c, top // sh, left // sw] == me:
                    acc += gy[n, c, top // sh, left // sw]
        gx[n, c, ih, iw] = acc


@cuda.jit(device=True)
def _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    if count_include_pad:
        return kh * kw
    top = oh * sh - ph
    left = ow * sw - pw
    return (min(top + kh, h) - max(top, 0)) * (min(left + kw, w) - max(left, 0))


@cuda.jit(cache=True)
def _avg_forward(x, y, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    t = cuda.grid(1)
    n_img, n_chan, out_h, out_w = y.shape
    if t < n_img * n_chan * out_h * out_w:
        ow = t % out_w
        oh = (t // out_w) % out_h
        c = (t // (out_w * out_h)) % n_chan
        n = t // (out_w * out_h * n_chan)
        h, w = x.shape[2], x.shape[3]
        acc = zero
        for i in range(kh):
            ih = oh * sh - ph + i
            if ih < 0 or ih >= h:
                continue
            for j in range(kw):
                iw = ow * sw - pw + j
                if iw >= 0 and iw < w:
                    acc += x[n, c, ih, iw]
        y[n, c, oh, ow] = acc / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)


@cuda.jit(cache=True)
def _avg_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    t = cuda.grid(1)
    n_img, n_chan, h, w = gx.shape
    if t < n_img * n_chan * h * w:
        iw = t % w
        ih = (t // w) % h
        c = (t // (w * h)) % n_chan
        n = t // (w * h * n_chan)
        out_h, out_w = gy.shape[2], gy.shape[3]
        acc = zero
        for i in range(kh):
            top = ih + ph - i
            if top < 0 or top % sh != 0 or top // sh >= out_h:
                continue
            oh = top // sh
            for j in range(kw):
                left = iw + pw - j
                if left < 0 or left % sw != 0 or left // sw >= out_w:
                    continue
                ow = left // sw
                acc += gy[n, c, oh, ow] / _divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
        gx[n, c, ih, iw] = acc


def _blocks(count):
    return max(1, math.ceil(count / _THREADS))


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation):
    """(y, indices): max over each window of x (N, C, H, W); indices are int64 h*W+w."""
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    out_h, out_w = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    y = xp.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    indices = xp.empty(y.shape, dtype=xp.int64)
    _max_forward[_blocks(y.size), _THREADS](x, y, indices, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                                            padding[0], padding[1], dilation[0], dilation[1])
    return y, indices


def max_pool2d_backward(gy, indices, in_hw, kernel_hw, stride, padding, dilation):
    """gx (N, C, H, W): each gy[n,c,oh,ow] added at x[n, c, indices[n,c,oh,ow]].

    Unlike the CPU paths this one needs the window geometry, to find the outputs that may
    have picked each input without scanning them all.
    """
    xp = array_module(gy)
    gy = xp.ascontiguousarray(gy)
    gx = xp.empty(gy.shape[:2] + tuple(in_hw), dtype=gy.dtype)
    _max_backward[_blocks(gx.size), _THREADS](gy, xp.ascontiguousarray(indices), gx, kernel_hw[0], kernel_hw[1],
                                              stride[0], stride[1], padding[0], padding[1],
                                              dilation[0], dilation[1], gy.dtype.type(0))
    return gx


def avg_pool2d_forward(x, kernel_hw, stride, padding, count_include_pad=True):
    """y (N, C, H_out, W_out): mean over each window (zero padding)."""
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    out_h, out_w = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, (1, 1))
    y = xp.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    _avg_forward[_blocks(y.size), _THREADS](x, y, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                                            padding[0], padding[1], bool(count_include_pad), x.dtype.type(0))
    return y


def avg_pool2d_backward(gy, in_hw, kernel_hw, stride, padding, count_include_pad=True):
    """gx (N, C, H, W): every window spreads gy/D evenly over its taps."""
    xp = array_module(gy)
    gy = xp.ascontiguousarray(gy)
    gx = xp.empty(gy.shape[:2] + tuple(in_hw), dtype=gy.dtype)
    _avg_backward[_blocks(gx.size), _THREADS](gy, gx, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                                              padding[0], padding[1], bool(count_include_pad), gy.dtype.type(0))
    return gx

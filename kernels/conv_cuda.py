"""conv2d on NVIDIA GPUs with Numba CUDA kernels, direct (no im2col buffer).

Arrays are CuPy arrays (passed to Numba through ``__cuda_array_interface__``); under
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) NumPy arrays work too, which is how
the index logic is tested without a GPU.  Layouts and formulas are those of
:mod:`conv_numpy`; each kernel is written in "gather" form so that every thread owns the
element it writes and no atomics are needed:

* forward: one thread per output y[n, o, oh, ow], summing over the Cg*kh*kw taps of its
  group;
* input gradient: one thread per input x[n, c, ih, iw], summing gy over the outputs
  (o in c's group, oh, ow) whose window tap (i, j) lands on it, i.e. those with
  oh*sh = ih + ph - i*dh (divisible by sh, 0 <= oh < H_out), likewise for ow;
* weight gradient: one block per weight element w[o, c, i, j]; its threads stride over
  the N*H_out*W_out products gy*x and the partial sums are reduced in shared memory
  (in float64: it is a long sum).

Accumulators start from a zero of the array dtype passed in as an argument, so float32
stays float32 arithmetic on the GPU.
"""
from __future__ import annotations

import math

from numba import config as numba_config
from numba import cuda, float64

from .arrays import array_module
from .window import conv_output_hw

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"]

_THREADS = 128        # threads per block of the one-thread-per-element kernels
# Threads per block (a power of two) of the weight-gradient reduction; the simulator runs
# each thread as a Python thread, so there it uses fewer (same code path, any power of two).
_REDUCE_THREADS = 8 if numba_config.ENABLE_CUDASIM else 128


@cuda.jit(cache=True)
def _forward_kernel(x, w, y, sh, sw, ph, pw, dh, dw, groups, zero):
    t = cuda.grid(1)
    n_img, c_out, out_h, out_w = y.shape
    if t < n_img * c_out * out_h * out_w:
        ow = t % out_w
        oh = (t // out_w) % out_h
        o = (t // (out_w * out_h)) % c_out
        n = t // (out_w * out_h * c_out)
        c_group, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        h, width = x.shape[2], x.shape[3]
        c0 = (o // (c_out // groups)) * c_group
        acc = zero
        for cc in range(c_group):
            for i in range(kh):
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= h:
                    continue
                for j in range(kw):
                    iw = ow * sw - pw + j * dw
                    if iw >= 0 and iw < width:
                        acc += w[o, cc, i, j] * x[n, c0 + cc, ih, iw]
        y[n, o, oh, ow] = acc


@cuda.jit(cache=True)
def _backward_input_kernel(gy, w, gx, sh, sw, ph, pw, dh, dw, groups, zero):
    t = cuda.grid(1)
    n_img, c_in, h, width = gx.shape
    if t < n_img * c_in * h * width:
        iw = t % width
        ih = (t // width) % h
        c = (t // (width * h)) % c_in
        n = t // (width * h * c_in)
        c_out, c_group, kh, kw = w.shape[0], w.shape[1], w.shape[2], w.shape[3]
        out_h, out_w = gy.shape[2], gy.shape[3]
        o_group = c_out // groups
        g = c // c_group
        cc = c - g * c_group
        acc = zero
        for i in range(kh):
            top = ih + ph - i * dh
            if top < 0 or top % sh != 0 or top // sh >= out_h:
                continue
            oh = top // sh
            for j in range(kw):
                left = iw + pw - j * dw
                if left < 0 or left % sw != 0 or left // sw >= out_w:
                    continue
                ow = left // sw
                for o in range(g * o_group, (g + 1) * o_group):
                    acc += w[o, cc, i, j] * gy[n, o, oh, ow]
        gx[n, c, ih, iw] = acc


@cuda.jit(cache=True)
def _backward_weight_kernel(x, gy, gw, sh, sw, ph, pw, dh, dw, groups):
    partial = cuda.shared.array(_REDUCE_THREADS, dtype=float64)
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    c_out, c_group, kh, kw = gw.shape
    j = b % kw
    i = (b // kw) % kh
    cc = (b // (kw * kh)) % c_group
    o = b // (kw * kh * c_group)
    n_img, h, width = x.shape[0], x.shape[2], x.shape[3]
    out_h, out_w = gy.shape[2], gy.shape[3]
    c = (o // (c_out // groups)) * c_group + cc
    acc = 0.0
    for p in range(tid, n_img * out_h * out_w, _REDUCE_THREADS):
        ow = p % out_w
        oh = (p // out_w) % out_h
        n = p // (out_w * out_h)
        ih = oh * sh - ph + i * dh
        iw = ow * sw - pw + j * dw
        if ih >= 0 and ih < h and iw >= 0 and iw < width:
            acc += gy[n, o, oh, ow] * x[n, c, ih, iw]
    partial[tid] = acc
    cuda.syncthreads()
    stride = _REDUCE_THREADS // 2
    while stride > 0:  # every thread reaches every barrier: no early exit in this loop
        if tid < stride:
            partial[tid] += partial[tid + stride]
        cuda.syncthreads()
        stride //= 2
    if tid == 0:
        gw[o, cc, i, j] = partial[0]


def _blocks(count):
    return max(1, math.ceil(count / _THREADS))


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) on the GPU: (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
    xp = array_module(x)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    out_h, out_w = conv_output_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    y = xp.empty((x.shape[0], w.shape[0], out_h, out_w), dtype=x.dtype)
    _forward_kernel[_blocks(y.size), _THREADS](x, w, y, stride[0], stride[1], padding[0], padding[1],
                                               dilation[0], dilation[1], groups, x.dtype.type(0))
    return y


def conv2d_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = dL/dx given gy (N, C_out, H_out, W_out)."""
    xp = array_module(gy)
    gy, w = xp.ascontiguousarray(gy), xp.ascontiguousarray(w)
    gx = xp.empty((gy.shape[0], w.shape[1] * groups, in_hw[0], in_hw[1]), dtype=gy.dtype)
    _backward_input_kernel[_blocks(gx.size), _THREADS](gy, w, gx, stride[0], stride[1], padding[0],
                                                       padding[1], dilation[0], dilation[1], groups, gy.dtype.type(0))
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    xp = array_module(x)
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    gw = xp.empty((gy.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1]), dtype=x.dtype)
    _backward_weight_kernel[gw.size, _REDUCE_THREADS](x, gy, gw, stride[0], stride[1], padding[0],
                                                      padding[1], dilation[0], dilation[1], groups)
    return gw

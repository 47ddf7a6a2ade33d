"""Reference conv2d on the array library (NumPy, or CuPy for the same code on the GPU).

Layouts follow PyTorch: input ``x`` is (N, C_in, H, W), weight ``w`` is
(C_out, C_in/groups, kh, kw), output ``y`` is (N, C_out, H_out, W_out); ``stride``,
``padding`` and ``dilation`` are (h, w) pairs of ints.  With G = groups, Cg = C_in/G,
Og = C_out/G, K = Cg*kh*kw and L = H_out*W_out:

    y[n, g*Og+o, p] = sum_k w[g*Og+o, k] * cols[n, g*K+k, p]         (forward, a GEMM)
    gw[g*Og+o, k]   = sum_{n,p} gy[n, g*Og+o, p] * cols[n, g*K+k, p]  (weight gradient)
    dcols[n, g*K+k, p] = sum_o w[g*Og+o, k] * gy[n, g*Og+o, p]       (then col2im -> gx)

where ``cols`` (N, C_in*kh*kw, L) is im2col of the zero-padded input: row c*kh*kw+i*kw+j,
column oh*W_out+ow holds x_pad[n, c, oh*sh + i*dh, ow*sw + j*dw].  im2col here is one
strided view (``as_strided``) copied once; col2im adds each of the kh*kw taps back with a
strided slice, so the only Python loop is over kernel taps, never over pixels.
"""
from __future__ import annotations

from .arrays import array_module
from .window import conv_output_hw

__all__ = [
    "window_view",
    "im2col",
    "col2im",
    "gemm_forward",
    "gemm_weight",
    "gemm_input",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
]


def window_view(x_pad, kernel_hw, stride, dilation, out_hw):
    """Read-only view (N, C, kh, kw, H_out, W_out) of every window tap of a padded input."""
    xp = array_module(x_pad)
    n, c = x_pad.shape[:2]
    s_n, s_c, s_h, s_w = x_pad.strides
    shape = (n, c, kernel_hw[0], kernel_hw[1], out_hw[0], out_hw[1])
    strides = (s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1])
    return xp.lib.stride_tricks.as_strided(x_pad, shape=shape, strides=strides)


def im2col(x, kernel_hw, stride, padding, dilation):
    """Columns (N, C*kh*kw, H_out*W_out) of the zero-padded input ``x`` (N, C, H, W)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    out_hw = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    x_pad = x
    if padding != (0, 0):
        x_pad = xp.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    x_pad = xp.ascontiguousarray(x_pad)
    view = window_view(x_pad, kernel_hw, stride, dilation, out_hw)
    return view.reshape(n, c * kernel_hw[0] * kernel_hw[1], out_hw[0] * out_hw[1])


def col2im(dcols, in_hw, kernel_hw, stride, padding, dilation):
    """Adjoint of :func:`im2col`: sum columns (N, C*kh*kw, L) back into (N, C, H, W)."""
    xp = array_module(dcols)
    kh, kw = kernel_hw
    n = dcols.shape[0]
    c = dcols.shape[1] // (kh * kw)
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, stride, padding, dilation)
    taps = dcols.reshape(n, c, kh, kw, out_h, out_w)
    h_pad, w_pad = in_hw[0] + 2 * padding[0], in_hw[1] + 2 * padding[1]
    g_pad = xp.zeros((n, c, h_pad, w_pad), dtype=dcols.dtype)
    for i in range(kh):
        top = i * dilation[0]
        rows = slice(top, top + stride[0] * (out_h - 1) + 1, stride[0])
        for j in range(kw):
            left = j * dilation[1]
            cols = slice(left, left + stride[1] * (out_w - 1) + 1, stride[1])
            g_pad[:, :, rows, cols] += taps[:, :, i, j]
    inner = g_pad[:, :, padding[0] : padding[0] + in_hw[0], padding[1] : padding[1] + in_hw[1]]
    return xp.ascontiguousarray(inner)


def gemm_forward(cols, w, groups, out_hw):
    """y (N, C_out, H_out, W_out) = per-group w (Og, K) @ cols (K, L), batched over N and G."""
    xp = array_module(cols)
    n = cols.shape[0]
    c_out = w.shape[0]
    k = cols.shape[1] // groups
    w_g = w.reshape(groups, c_out // groups, k)
    y = xp.matmul(w_g, cols.reshape(n, groups, k, cols.shape[2]))
    return y.reshape(n, c_out, out_hw[0], out_hw[1])


def gemm_weight(cols, gy, groups, weight_shape):
    """gw (C_out, Cg, kh, kw) = sum over n of gy[n, g] (Og, L) @ cols[n, g]^T (L, K)."""
    xp = array_module(cols)
    n = cols.shape[0]
    c_out = weight_shape[0]
    k = cols.shape[1] // groups
    gy_g = gy.reshape(n, groups, c_out // groups, cols.shape[2])
    cols_g = cols.reshape(n, groups, k, cols.shape[2])
    gw = xp.matmul(gy_g, cols_g.swapaxes(-1, -2)).sum(axis=0)
    return gw.reshape(weight_shape)


def gemm_input(gy, w, groups):
    """dcols (N, C_in*kh*kw, L) = per-group w^T (K, Og) @ gy[n, g] (Og, L)."""
    xp = array_module(gy)
    n, c_out = gy.shape[:2]
    k = w.shape[1] * w.shape[2] * w.shape[3]
    positions = gy.shape[2] * gy.shape[3]
    w_g = w.reshape(groups, c_out // groups, k)
    dcols = xp.matmul(w_g.swapaxes(-1, -2), gy.reshape(n, groups, c_out // groups, positions))
    return dcols.reshape(n, groups * k, positions)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w): (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
    kernel_hw = (w.shape[2], w.shape[3])
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    cols = im2col(x, kernel_hw, stride, padding, dilation)
    return gemm_forward(cols, w, groups, out_hw)


def conv2d_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = dL/dx given gy (N, C_out, H_out, W_out); ``in_hw`` = (H, W)."""
    kernel_hw = (w.shape[2], w.shape[3])
    dcols = gemm_input(gy, w, groups)
    return col2im(dcols, tuple(in_hw), kernel_hw, stride, padding, dilation)


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    cols = im2col(x, tuple(kernel_hw), stride, padding, dilation)
    weight_shape = (gy.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1])
    return gemm_weight(cols, gy, groups, weight_shape)

"""2-D pooling (PyTorch's arguments): max, average and adaptive average.

    max_pool2d:  y[n,c,p,q] = max_{i,j} x_pad[n, c, p*sh + i*dh, q*sw + j*dw]      (pad = -inf)
                 dx: gy[n,c,p,q] goes to the input element that was the maximum
    avg_pool2d:  y[n,c,p,q] = (1/D) sum_{i,j} x_pad[n, c, p*sh + i, q*sw + j]        (pad = 0)
                 D = kh*kw, or the taps inside the input when count_include_pad=False;
                 dx: each window spreads gy/D over its taps
    H_out = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1      (ceil_mode is not supported)

Both backward passes are linear in gy and are Functions themselves, each the other's
adjoint (max: scatter to the argmax positions / gather from them; avg: spread / average),
so gradients of gradients work.  The arithmetic runs in the kernel path chosen by
``minidl.config``.
"""
from __future__ import annotations

from .. import backend, config
from ..autograd import Function
from ..kernels.window import conv_output_hw, pair
from ..tensor import Tensor
from .linalg import matmul

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


class MaxPool2d(Function):
    """y = max over each window;  dx = scatter of gy to the argmax of each window."""

    def __init__(self, kernel_hw: tuple, stride: tuple, padding: tuple, dilation: tuple):
        self.geometry = (kernel_hw, stride, padding, dilation)

    def forward(self, x):
        kernel = config.select("max_pool2d", backend.get_array_module(x))
        y, self.indices = kernel.max_pool2d_forward(x, *self.geometry)
        self.in_hw = tuple(x.shape[2:])
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self.indices, self.in_hw, self.geometry)(gy)


class MaxPool2dGrad(Function):
    """gx[n, c, h, w] = sum of gy[n, c, p, q] over outputs whose argmax is (h, w);
    its adjoint gathers: ggy[n, c, p, q] = ggx[n, c, argmax(p, q)]."""

    def __init__(self, indices, in_hw: tuple, geometry: tuple):
        self.indices, self.in_hw, self.geometry = indices, in_hw, geometry

    def forward(self, gy):
        kernel = config.select("max_pool2d", backend.get_array_module(gy))
        return kernel.max_pool2d_backward(gy, self.indices, self.in_hw, *self.geometry)

    def backward(self, ggx):
        return GatherArgmax(self.indices, self.in_hw, self.geometry)(ggx)


class GatherArgmax(Function):
    """y[n, c, p, q] = v[n, c, h, w] at the flat index h*W + w = indices[n, c, p, q];
    its adjoint is MaxPool2dGrad (scatter-add back to those positions)."""

    def __init__(self, indices, in_hw: tuple, geometry: tuple):
        self.indices, self.in_hw, self.geometry = indices, in_hw, geometry

    def forward(self, v):
        xp = backend.get_array_module(v)
        n, c = v.shape[:2]
        flat = self.indices.reshape(n, c, self.indices.shape[2] * self.indices.shape[3])
        picked = xp.take_along_axis(v.reshape(n, c, v.shape[2] * v.shape[3]), xp.maximum(flat, 0), axis=2)
        picked = xp.where(flat >= 0, picked, 0)  # -1: a window wholly in the padding
        return picked.reshape(self.indices.shape)

    def backward(self, gy):
        return MaxPool2dGrad(self.indices, self.in_hw, self.geometry)(gy)


class AvgPool2d(Function):
    """y = window mean (divisor D);  dx = AvgPool2dGrad(gy), each window's gy/D spread over its taps."""

    def __init__(self, kernel_hw: tuple, stride: tuple, padding: tuple, count_include_pad: bool):
        self.geometry = (kernel_hw, stride, padding, count_include_pad)

    def forward(self, x):
        self.in_hw = tuple(x.shape[2:])
        kernel = config.select("avg_pool2d", backend.get_array_module(x))
        return kernel.avg_pool2d_forward(x, *self.geometry)

    def backward(self, gy):
        return AvgPool2dGrad(self.in_hw, self.geometry)(gy)


class AvgPool2dGrad(Function):
    """gx = adjoint of average pooling applied to gy; its own adjoint is average pooling."""

    def __init__(self, in_hw: tuple, geometry: tuple):
        self.in_hw, self.geometry = in_hw, geometry

    def forward(self, gy):
        kernel = config.select("avg_pool2d", backend.get_array_module(gy))
        return kernel.avg_pool2d_backward(gy, self.in_hw, *self.geometry)

    def backward(self, ggx):
        return AvgPool2d(*self.geometry)(ggx)


# ------------------------------------------------------------------------ argument checks

def _pool_geometry(op: str, x, kernel_size, stride, padding, dilation) -> tuple:
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"{op}: expected a 4-d input (N, C, H, W), got shape {shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float input, got {x.dtype}")
    values = {}
    for name, value, minimum in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("dilation", dilation, 1)):
        try:
            values[name] = pair(value, name)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{op}: {error}") from None
        if min(values[name]) < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    kernel_hw, stride, padding, dilation = (values[k] for k in ("kernel_size", "stride", "padding", "dilation"))
    reach = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel_hw))
    if any(2 * p > k for p, k in zip(padding, kernel_hw)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel_hw}")
    out_hw = conv_output_hw(shape[2:], kernel_hw, stride, padding, dilation)
    if min(out_hw) < 1:
        raise ValueError(
            f"{op}: kernel {kernel_hw} (reach {reach}) is larger than the padded input "
            f"{(shape[2] + 2 * padding[0], shape[3] + 2 * padding[1])} (input shape {shape})"
        )
    return kernel_hw, stride, padding, dilation


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple,
    stride: int | tuple | None = None,
    padding: int | tuple = 0,
    dilation: int | tuple = 1,
    return_indices: bool = False,
):
    """Max pooling, as ``torch.nn.functional.max_pool2d`` (without ceil_mode).

    x (N, C, H, W) -> y (N, C, H_out, W_out); ``stride`` defaults to ``kernel_size``;
    padding (implicit -inf) at most half the kernel size. With ``return_indices=True``
    also returns the int64 flat index h*W + w of each maximum within its plane (-1, and
    an output of -inf, for a window that a large dilation puts wholly in the padding).
    """
    geometry = _pool_geometry("max_pool2d", x, kernel_size, kernel_size if stride is None else stride,
                              padding, dilation)
    f = MaxPool2d(*geometry)
    y = f(x)
    if return_indices:
        return y, Tensor(f.indices)
    return y


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple,
    stride: int | tuple | None = None,
    padding: int | tuple = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """Average pooling, as ``torch.nn.functional.avg_pool2d`` (without ceil_mode).

    x (N, C, H, W) -> y (N, C, H_out, W_out); ``stride`` defaults to ``kernel_size``;
    the zero padding counts in the divisor unless ``count_include_pad=False``.
    """
    kernel_hw, stride, padding, _ = _pool_geometry(
        "avg_pool2d", x, kernel_size, kernel_size if stride is None else stride, padding, 1
    )
    return AvgPool2d(kernel_hw, stride, padding, bool(count_include_pad))(x)


def _bin_means(in_size: int, out_size: int, xp, dtype):
    """(out_size, in_size) matrix whose row i averages input [floor(i*in/out), ceil((i+1)*in/out)),
    built on ``xp``'s device."""
    i = xp.arange(out_size).reshape(-1, 1)
    j = xp.arange(in_size).reshape(1, -1)
    start = (i * in_size) // out_size
    stop = -((-(i + 1) * in_size) // out_size)
    inside = (j >= start) & (j < stop)
    return (inside / (stop - start)).astype(dtype)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple) -> Tensor:
    """Adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    x (N, C, H, W) -> (N, C, Ho, Wo); output row i averages input rows
    floor(i*H/Ho) .. ceil((i+1)*H/Ho) - 1 (likewise columns). Each output is the mean of a
    rectangle, so y = A_h @ x @ A_w^T with the averaging matrices A_h (Ho, H), A_w (Wo, W);
    the gradient is the matmul gradient, A_h^T @ gy @ A_w. ``None`` in output_size keeps
    that input size.
    """
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-d input (N, C, H, W), got shape {shape}")
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    sizes = tuple(shape[2 + a] if output_size[a] is None else output_size[a] for a in range(2))
    if len(output_size) != 2 or min(sizes) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive (or None), got {output_size!r}")
    xp = backend.get_array_module(x.data)
    a_h = _bin_means(shape[2], sizes[0], xp, x.dtype)
    a_w = _bin_means(shape[3], sizes[1], xp, x.dtype)
    return matmul(matmul(a_h, x), a_w.T)

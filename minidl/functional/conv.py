"""2-D convolution and transposed convolution (PyTorch's layouts and arguments).

    conv2d:            x (N, C_in, H, W), w (C_out, C_in/groups, kh, kw) -> y (N, C_out, H_out, W_out)
        y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] * x_pad[n, c, p*sh + i*dh, q*sw + j*dw]
        H_out = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1        (likewise W_out)

    conv_transpose2d:  x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw) -> (N, C_out, H_out, W_out)
        the adjoint (input gradient) of conv2d, H_out = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1

The three linear maps involved close under differentiation, so every backward is built
from the same three Functions and gradients of any order work:

    Conv2d(x, w)            dL/dx = ConvTranspose2d(gy, w)      dL/dw = Conv2dGradWeight(x, gy)
    ConvTranspose2d(u, w)   dL/du = Conv2d(gz, w)               dL/dw = Conv2dGradWeight(gz, u)
    Conv2dGradWeight(x, g)  dL/dx = ConvTranspose2d(g, ggw)     dL/dg = Conv2d(x, ggw)

The arithmetic runs in the kernel path chosen by ``minidl.config`` (``minidl.kernels``:
NumPy im2col, Numba CPU, Numba CUDA).
"""
from __future__ import annotations

from .. import backend, config
from ..autograd import Function
from ..kernels.window import conv_output_hw, pair
from ..tensor import Tensor

__all__ = ["conv2d", "conv_transpose2d"]


def _kernel(x):
    return config.select("conv2d", backend.get_array_module(x))


def _crop_to(t: Tensor, hw: tuple) -> Tensor:
    """t[:, :, :H, :W] when t is larger than ``hw`` (an output_padding >= stride leaves rows
    of a transposed convolution that no input position reaches)."""
    if tuple(t.shape[2:]) == tuple(hw):
        return t
    return t[:, :, : hw[0], : hw[1]]


class Conv2d(Function):
    """y = conv2d(x, w) without bias;  dx = conv_transpose2d(gy, w),  dw[o, c, i, j] =
    sum_{n, p, q} gy[n, o, p, q] * x_pad[n, g(o)*Cg + c, p*sh + i*dh, q*sw + j*dw]."""

    def __init__(self, stride: tuple, padding: tuple, dilation: tuple, groups: int):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x, w):
        return _kernel(x).conv2d_forward(x, w, self.stride, self.padding, self.dilation, self.groups)

    def backward(self, gy):
        x, w = self.inputs
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(*geometry, out_hw=tuple(x.shape[2:]))(gy, w)
        if self.needs_input_grad[1]:
            gw = Conv2dGradWeight(*geometry, kernel_hw=tuple(w.shape[2:]))(x, gy)
        return gx, gw


class ConvTranspose2d(Function):
    """z = conv_transpose2d(u, w) without bias, the input gradient of conv2d with output
    size ``out_hw``;  du = conv2d(gz, w),  dw = Conv2dGradWeight(gz, u)."""

    def __init__(self, stride: tuple, padding: tuple, dilation: tuple, groups: int, out_hw: tuple):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.out_hw = out_hw

    def forward(self, u, w):
        footprint = conv_output_hw(self.out_hw, w.shape[2:], self.stride, self.padding, self.dilation)
        if tuple(u.shape[2:]) != footprint:  # output_padding >= stride: rows of zeros below/right
            xp = backend.get_array_module(u)
            extra = ((0, 0), (0, 0), (0, footprint[0] - u.shape[2]), (0, footprint[1] - u.shape[3]))
            u = xp.pad(u, extra)
        return _kernel(u).conv2d_backward_input(
            u, w, self.out_hw, self.stride, self.padding, self.dilation, self.groups
        )

    def backward(self, gz):
        u, w = self.inputs
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        gu = gw = None
        if self.needs_input_grad[0]:
            gu = _crop_to(Conv2d(*geometry)(gz, w), u.shape[2:])
        if self.needs_input_grad[1]:
            gw = Conv2dGradWeight(*geometry, kernel_hw=tuple(w.shape[2:]))(gz, _pad_to(u, gz, w, geometry))
        return gu, gw


def _pad_to(u: Tensor, gz: Tensor, w: Tensor, geometry) -> Tensor:
    """u zero-extended to the output size conv2d gives on gz (only differs when an
    output_padding >= stride made the transposed output larger than u's footprint)."""
    stride, padding, dilation, _ = geometry
    hw = conv_output_hw(gz.shape[2:], w.shape[2:], stride, padding, dilation)
    if tuple(u.shape[2:]) == tuple(hw):
        return u
    from .shape import pad

    return pad(u, ((0, 0), (0, 0), (0, hw[0] - u.shape[2]), (0, hw[1] - u.shape[3])))


class Conv2dGradWeight(Function):
    """gw = dL/dw of conv2d given its input x and output gradient g (bilinear in x, g);
    dx = conv_transpose2d(g, ggw),  dg = conv2d(x, ggw)."""

    def __init__(self, stride: tuple, padding: tuple, dilation: tuple, groups: int, kernel_hw: tuple):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.kernel_hw = kernel_hw

    def forward(self, x, g):
        return _kernel(x).conv2d_backward_weight(
            x, g, self.kernel_hw, self.stride, self.padding, self.dilation, self.groups
        )

    def backward(self, ggw):
        x, g = self.inputs
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        gx = gg = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(*geometry, out_hw=tuple(x.shape[2:]))(g, ggw)
        if self.needs_input_grad[1]:
            gg = _crop_to(Conv2d(*geometry)(x, ggw), g.shape[2:])
        return gx, gg


# ------------------------------------------------------------------------ argument checks

def _positive_pair(value, name: str, op: str, minimum: int) -> tuple:
    try:
        result = pair(value, name)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{op}: {error}") from None
    if min(result) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return result


def _check_operands(op: str, x, weight, bias, groups: int, weight_in_axis: int) -> None:
    """Shapes and dtypes of (x, weight, bias); ``weight_in_axis`` is the weight axis that
    holds the input channels (1 for conv2d, 0 for conv_transpose2d)."""
    x_shape, w_shape = tuple(x.shape), tuple(weight.shape)
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected a 4-d input (N, C_in, H, W), got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"{op}: expected a 4-d weight, got shape {w_shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c_in = x_shape[1]
    if c_in % groups:
        raise ValueError(f"{op}: input channels {c_in} (input shape {x_shape}) not divisible by groups={groups}")
    if weight_in_axis == 1:
        expected = w_shape[1] * groups
        if c_in != expected:
            raise ValueError(
                f"{op}: channel mismatch: input {x_shape} has {c_in} channels, but weight {w_shape} "
                f"with groups={groups} expects {expected} (weight is (C_out, C_in/groups, kh, kw))"
            )
        if w_shape[0] % groups:
            raise ValueError(f"{op}: output channels {w_shape[0]} (weight {w_shape}) not divisible by groups={groups}")
        c_out = w_shape[0]
    else:
        if c_in != w_shape[0]:
            raise ValueError(
                f"{op}: channel mismatch: input {x_shape} has {c_in} channels, but weight {w_shape} "
                f"expects {w_shape[0]} (weight is (C_in, C_out/groups, kh, kw))"
            )
        c_out = w_shape[1] * groups
    if x.dtype != weight.dtype or x.dtype.kind != "f":
        raise TypeError(f"{op}: input and weight must share a float dtype, got {x.dtype} and {weight.dtype}")
    if bias is not None:
        if tuple(bias.shape) != (c_out,):
            raise ValueError(f"{op}: bias of shape {tuple(bias.shape)} does not match {c_out} output channels")
        if bias.dtype != x.dtype:
            raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {x.dtype}")


def _same_padding(x: Tensor, kernel_hw: tuple, dilation: tuple):
    """(x, padding) for padding='same' at stride 1: total padding d*(k-1) per axis, split
    evenly, the odd extra row/column going to the bottom/right (as PyTorch does)."""
    total = [d * (k - 1) for d, k in zip(dilation, kernel_hw)]
    before = tuple(t // 2 for t in total)
    extra = [t - 2 * b for t, b in zip(total, before)]
    if any(extra):
        from .shape import pad

        x = pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    return x, before


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple = 1,
    padding: int | tuple | str = 0,
    dilation: int | tuple = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    x (N, C_in, H, W), weight (C_out, C_in/groups, kh, kw), bias (C_out,) or None
    -> (N, C_out, H_out, W_out) with H_out = floor((H + 2*ph - dh*(kh-1) - 1)/sh) + 1.
    ``padding`` is an int, a pair, "valid" (0) or "same" (stride 1 only). groups = C_in
    gives a depthwise convolution.
    """
    op = "conv2d"
    _check_operands(op, x, weight, bias, groups, weight_in_axis=1)
    stride = _positive_pair(stride, "stride", op, 1)
    dilation = _positive_pair(dilation, "dilation", op, 1)
    kernel_hw = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
            x, padding = _same_padding(x, kernel_hw, dilation)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        padding = _positive_pair(padding, "padding", op, 0)
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    reach = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel_hw))
    if padded[0] < reach[0] or padded[1] < reach[1]:
        raise ValueError(
            f"{op}: kernel {kernel_hw} (dilation {dilation}, reach {reach}) is larger than the padded "
            f"input {padded} (input shape {tuple(x.shape)}, padding {padding})"
        )
    y = Conv2d(stride, padding, dilation, groups)(x, weight)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple = 1,
    padding: int | tuple = 0,
    output_padding: int | tuple = 0,
    groups: int = 1,
    dilation: int | tuple = 1,
) -> Tensor:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    x (N, C_in, H, W), weight (C_in, C_out/groups, kh, kw), bias (C_out,) or None
    -> (N, C_out, H_out, W_out) with H_out = (H-1)*sh - 2*ph + dh*(kh-1) + oph + 1.
    It is the gradient of conv2d with respect to its input; ``output_padding`` (smaller
    than stride or dilation) picks among the input sizes that conv2d maps to H.
    """
    op = "conv_transpose2d"
    _check_operands(op, x, weight, bias, groups, weight_in_axis=0)
    stride = _positive_pair(stride, "stride", op, 1)
    padding = _positive_pair(padding, "padding", op, 0)
    dilation = _positive_pair(dilation, "dilation", op, 1)
    output_padding = _positive_pair(output_padding, "output_padding", op, 0)
    for axis in range(2):
        if output_padding[axis] >= max(stride[axis], dilation[axis]):
            raise ValueError(
                f"{op}: output_padding {output_padding} must be smaller than stride {stride} or "
                f"dilation {dilation} on each axis"
            )
    kernel_hw = tuple(weight.shape[2:])
    out_hw = tuple(
        (x.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel_hw[a] - 1) + output_padding[a] + 1
        for a in range(2)
    )
    if min(out_hw) < 1:
        raise ValueError(f"{op}: input {tuple(x.shape)} with kernel {kernel_hw}, stride {stride}, padding "
                         f"{padding} gives an empty output {out_hw}")
    y = ConvTranspose2d(stride, padding, dilation, groups, out_hw=out_hw)(x, weight)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y

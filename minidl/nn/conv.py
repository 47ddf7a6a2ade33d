"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d`` over ``F.conv2d``/``F.conv_transpose2d``.

Conv2d:          x (N, C_in, H, W) -> (N, C_out, H_out, W_out),
                 H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1,
                 weight (C_out, C_in / groups, kh, kw), bias (C_out,).
ConvTranspose2d: x (N, C_in, H, W) -> (N, C_out, H_out, W_out),
                 H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1,
                 weight (C_in, C_out / groups, kh, kw), bias (C_out,).

Both start as PyTorch does: weight ~ kaiming_uniform_(a = sqrt(5)), i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.shape[1] * kh * kw, and the bias
from the same interval. An unbatched input (C, H, W) gives an unbatched output.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..functional.conv import conv2d, conv_transpose2d
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]


def _pair(value: Any, name: str, layer: str) -> tuple:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")


class _ConvNd(Module):
    """Shared parameters, initialisation and input checks of Conv2d and ConvTranspose2d."""

    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, groups: int, bias: bool, padding_mode: str, device: Any, dtype: Any):
        super().__init__()
        name = type(self).__name__
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride, "stride", name)
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", name)
        self.dilation = _pair(dilation, "dilation", name)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        xp = backend.array_module_for(device or "cpu")
        dt = backend.default_dtype() if dtype is None else np.dtype(dtype)
        self.weight = Parameter(xp.zeros(shape, dtype=dt))
        if bias:
            self.bias = Parameter(xp.zeros((self.out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_, a = sqrt(5)); bias alike."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in > 0:
                bound = 1.0 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _batched(self, x: Tensor) -> tuple[Tensor, bool]:
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}): "
                f"expected input of shape (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.ndim == 3:
            return x.unsqueeze(0), True
        return x, False

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) layer; see the module docstring for shapes.

    ``padding`` may be an int, a pair, "valid" or "same" (stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple, stride: int | tuple = 1,
                 padding: int | tuple | str = 0, dilation: int | tuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"Conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, unbatched = self._batched(x)
        y = conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.squeeze(0) if unbatched else y


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the gradient of Conv2d w.r.t. its input), for decoders
    and generators; see the module docstring for shapes. ``forward(x, output_size)`` may
    name the wanted (H_out, W_out), which sets output_padding for that call."""

    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple, stride: int | tuple = 1,
                 padding: int | tuple = 0, output_padding: int | tuple = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple = 1, padding_mode: str = "zeros", device: Any = None, dtype: Any = None):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.output_padding = _pair(output_padding, "output_padding", "ConvTranspose2d")

    def _output_padding(self, x: Tensor, output_size: Sequence[int] | None) -> tuple:
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        pads = []
        for a in range(2):
            smallest = ((x.shape[2 + a] - 1) * self.stride[a] - 2 * self.padding[a]
                        + self.dilation[a] * (self.kernel_size[a] - 1) + 1)
            extra = size[a] - smallest
            if not 0 <= extra < max(self.stride[a], self.dilation[a]):
                raise ValueError(
                    f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from input "
                    f"{tuple(x.shape)}: sizes {smallest}..{smallest + max(self.stride[a], self.dilation[a]) - 1} "
                    f"are possible on axis {2 + a}"
                )
            pads.append(extra)
        return tuple(pads)

    def forward(self, x: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        x, unbatched = self._batched(x)
        out_pad = self._output_padding(x, output_size)
        y = conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, out_pad, self.groups,
                             self.dilation)
        return y.squeeze(0) if unbatched else y

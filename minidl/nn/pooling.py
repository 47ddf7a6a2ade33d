"""Pooling layers: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` over ``minidl.functional.pool``.

x (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1
(stride defaults to kernel_size). An unbatched input (C, H, W) gives an unbatched output.
``ceil_mode=True`` is not supported (a clear error says so).
"""
from __future__ import annotations

from typing import Any

from ..functional.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from ..tensor import Tensor
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


def _batched(layer: str, x: Tensor) -> tuple[Tensor, bool]:
    if x.ndim not in (3, 4):
        raise ValueError(f"{layer}: expected input of shape (N, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _no_ceil(layer: str, ceil_mode: bool) -> None:
    if ceil_mode:
        raise ValueError(f"{layer}: ceil_mode=True is not supported; pad the input or pick sizes that divide evenly")


class MaxPool2d(Module):
    """y[n, c, i, j] = max of x over the (dilated) window at (i s, j s); padding counts as -inf.
    The gradient flows to the position of each maximum."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        _no_ceil("MaxPool2d", ceil_mode)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        x, unbatched = _batched("MaxPool2d", x)
        out = max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.return_indices)
        if not unbatched:
            return out
        if self.return_indices:
            return out[0].squeeze(0), Tensor(out[1].data[0])
        return out.squeeze(0)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """y[n, c, i, j] = mean of x over the window at (i s, j s); zero padding counts in the
    divisor unless ``count_include_pad=False``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        _no_ceil("AvgPool2d", ceil_mode)
        if divisor_override is not None:
            raise ValueError("AvgPool2d: divisor_override is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        x, unbatched = _batched("AvgPool2d", x)
        y = avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` (Ho, Wo): output cell i averages input rows
    floor(i H / Ho) .. ceil((i + 1) H / Ho) - 1 (likewise columns); ``1`` gives global pooling."""

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        x, unbatched = _batched("AdaptiveAvgPool2d", x)
        y = adaptive_avg_pool2d(x, self.output_size)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

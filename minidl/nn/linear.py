"""Affine layers and shape helpers: ``Linear``, ``Bilinear``, ``Identity``, ``Flatten``, ``Unflatten``."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..functional.linalg import linear
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Linear", "Bilinear", "Identity", "Flatten", "Unflatten"]


def _empty(shape: tuple, device: Any, dtype: Any) -> Parameter:
    xp = backend.array_module_for(device or "cpu")
    dt = backend.default_dtype() if dtype is None else np.dtype(dtype)
    return Parameter(xp.zeros(shape, dtype=dt))


def _check_positive(layer: str, **sizes: int) -> None:
    for name, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{layer}: {name} must be a non-negative integer, got {v!r}")


class Linear(Module):
    """y = x W^T + b for x (*, in_features) -> y (*, out_features).

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) both start as
    U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default (``kaiming_uniform_``
    with a = sqrt(5) for the weight).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        _check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = _empty((self.out_features, self.in_features), device, dtype)
        if bias:
            self.bias = _empty((self.out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw the weight and bias from PyTorch's default distributions."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear(in_features={self.in_features}, out_features={self.out_features}): expected "
                f"input of shape (*, {self.in_features}), got {tuple(x.shape)}"
            )
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y_k = x1^T A_k x2 + b_k for x1 (*, in1), x2 (*, in2) -> y (*, out).

    ``weight`` (out, in1, in2) and ``bias`` (out,) start as U(-1/sqrt(in1), 1/sqrt(in1)).
    Built from differentiable ops: y = ((x1 @ A) * x2).sum(-1) per output k.
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        _check_positive("Bilinear", in1_features=in1_features, in2_features=in2_features,
                        out_features=out_features)
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = _empty((out_features, in1_features, in2_features), device, dtype)
        if bias:
            self.bias = _empty((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in1_features) if self.in1_features > 0 else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        if x1.ndim == 0 or x1.shape[-1] != self.in1_features or x2.ndim == 0 \
                or x2.shape[-1] != self.in2_features or x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(
                f"Bilinear({self.in1_features}, {self.in2_features}, {self.out_features}): expected inputs "
                f"(*, {self.in1_features}) and (*, {self.in2_features}) with the same leading shape, "
                f"got {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        lead = x1.shape[:-1]
        a = x1.reshape(-1, 1, 1, self.in1_features)             # (n, 1, 1, in1)
        t = (a @ self.weight.unsqueeze(0)).squeeze(-2)            # (n, out, in2)
        y = (t * x2.reshape(-1, 1, self.in2_features)).sum(axis=-1)  # (n, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Identity(Module):
    """y = x (any arguments to the constructor are ignored, as in PyTorch)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Merge dimensions start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) with the defaults."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size``: (N, 12) -> (N, 3, 4)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        d = self.dim % x.ndim
        size = int(np.prod(self.unflattened_size))
        known = [s for s in self.unflattened_size if s != -1]
        if -1 not in self.unflattened_size and size != x.shape[d] or \
                -1 in self.unflattened_size and x.shape[d] % max(int(np.prod(known)), 1) != 0:
            raise ValueError(
                f"Unflatten: dimension {self.dim} of size {x.shape[d]} cannot be split into {self.unflattened_size}"
            )
        return x.reshape(*x.shape[:d], *self.unflattened_size, *x.shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"

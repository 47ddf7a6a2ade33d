"""Activations not covered by ``elementwise.py``: ELU, SELU, SiLU (swish), Mish, hardtanh.

(relu, leaky_relu, gelu, sigmoid, tanh and softplus live with the elementwise ops.)
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, _new_tensor
from .elementwise import sigmoid, softplus, tanh, where

__all__ = ["elu", "selu", "silu", "mish", "hardtanh"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class ELU(Function):
    """y = x for x > 0, alpha (e^x - 1) otherwise;  dy/dx = 1 for x > 0, y + alpha otherwise."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        positive = _new_tensor(x.data > 0, False, None, 0)
        return where(positive, gy, gy * (self.output() + self.alpha))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """ELU: x for x > 0, alpha (e^x - 1) otherwise (same shape as x)."""
    return ELU(alpha)(x)


def selu(x: Tensor) -> Tensor:
    """SELU: scale * elu(x, alpha) with PyTorch's constants (alpha ~ 1.6733, scale ~ 1.0507)."""
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def silu(x: Tensor) -> Tensor:
    """SiLU (swish): y = x sigmoid(x);  dy/dx = s (1 + x (1 - s)), s = sigmoid(x)."""
    return x * sigmoid(x)


def mish(x: Tensor) -> Tensor:
    """Mish: y = x tanh(softplus(x))."""
    return x * tanh(softplus(x))


class HardTanh(Function):
    """y = clip(x, lo, hi);  dy/dx = 1 strictly inside (lo, hi), 0 outside (PyTorch's rule)."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.clip(x, self.lo, self.hi).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0].data
        inside = (x > self.lo) & (x < self.hi)
        return gy * _new_tensor(inside.astype(gy.dtype), False, None, 0)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clip(x, min_val, max_val) with zero gradient at and beyond the limits."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) is greater than max_val ({max_val})")
    return HardTanh(min_val, max_val)(x)

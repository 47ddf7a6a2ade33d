"""Dropout: ``dropout`` (elementwise) and ``dropout2d`` (whole channels), inverted scaling.

In training each element (or channel) is kept with probability 1 - p and scaled by
1 / (1 - p), so E[y] = x and nothing needs rescaling at evaluation time:

    y = x * m / (1 - p),   m ~ Bernoulli(1 - p);     dy/dx = m / (1 - p)

The mask is drawn from minidl's seeded generator (``minidl.manual_seed``) on x's device.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, _new_tensor

__all__ = ["dropout", "dropout2d"]


class Dropout(Function):
    """y = x * scale_mask;  dx = gy * scale_mask (the same mask: zero where x was dropped)."""

    def __init__(self, p: float, mask_shape: tuple):
        self.p, self.mask_shape = p, mask_shape

    def forward(self, x):
        xp = backend.get_array_module(x)
        u = backend.random_floats(backend.random_generator(xp), "random", self.mask_shape,
                                  x.dtype if x.dtype.kind == "f" else backend.default_dtype())
        keep = u >= self.p
        scale = 0.0 if self.p >= 1.0 else 1.0 / (1.0 - self.p)
        self.mask = keep.astype(x.dtype) * x.dtype.type(scale)
        return x * self.mask

    def backward(self, gy):
        return gy * _new_tensor(self.mask, False, None, 0)


def _check_p(op: str, p: float) -> float:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability p must be in [0, 1], got {p!r}")
    return float(p)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element of x with probability p and scale the rest by 1 / (1 - p).

    Identity when ``training`` is False or p == 0. Same shape as x.
    """
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return x
    if not isinstance(x, Tensor):
        x = Tensor(x)
    return Dropout(p, tuple(x.shape))(x)


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero whole channels: x (N, C, H, W) or (C, H, W); each (n, c) map is kept with
    probability 1 - p and scaled by 1 / (1 - p)."""
    p = _check_p("dropout2d", p)
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected input of shape (N, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    if not training or p == 0.0:
        return x
    mask_shape = tuple(x.shape[:-2]) + (1, 1)
    return Dropout(p, mask_shape)(x)

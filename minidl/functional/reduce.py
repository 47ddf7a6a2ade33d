"""Reductions and the softmax family.

Axes follow NumPy (``axis``, ``keepdims``); PyTorch's ``dim``/``keepdim`` are accepted as
aliases. The backward of a reduction broadcasts the upstream gradient back over the
reduced axes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, _new_tensor

__all__ = [
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin",
    "logsumexp", "softmax", "log_softmax", "sum_to",
]

_builtin_max = max


def _resolve(axis, keepdims, dim=None, keepdim=None):
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis, bool(keepdims)


def _normalize_axes(axis, ndim: int, op: str) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not -ndim <= a < _builtin_max(ndim, 1):
            raise IndexError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(out)


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand_back(gy: Tensor, x_shape: tuple, axes: tuple, keepdims: bool) -> Tensor:
    """Broadcast a reduced gradient back to ``x_shape``."""
    if not keepdims:
        gy = gy.reshape(_kept_shape(x_shape, axes))
    return broadcast_to(gy, x_shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting to x's shape would have added;
    dy/dx broadcasts the gradient back (the adjoint of ``broadcast_to``)."""

    def __init__(self, shape: tuple):
        self.shape = tuple(shape)

    def forward(self, x):
        return _sum_to_array(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].data.shape)


def _sum_to_array(x, shape: tuple):
    """The raw-array ``sum_to``: sum ``x`` over the axes that broadcasting ``shape`` to
    x's shape added (leading axes, and size-1 axes of ``shape``); ``x`` itself if none."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1
    )
    y = x.sum(axis=axes, keepdims=True) if axes else x
    return y.reshape(shape) if lead else y


def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``x`` down to ``shape`` (which must broadcast to x's shape)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo(shape)(x)


class Sum(Function):
    """y = sum of x over ``axis``;  dy/dx = 1 (the gradient is broadcast back)."""

    def __init__(self, axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axes(self.axis, x.ndim, "sum")
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand_back(gy, self.inputs[0].data.shape, self.axes, self.keepdims)


def sum(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    return Sum(axis, keepdims)(x)


def _count(x: Tensor, axis) -> int:
    axes = _normalize_axes(axis, x.ndim, "mean")
    return int(np.prod([x.shape[a] for a in axes])) if axes else 1


def mean(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Mean over ``axis``: sum(x) / n."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    x = x if isinstance(x, Tensor) else Tensor(x)
    return sum(x, axis, keepdims) * (1.0 / _builtin_max(_count(x, axis), 1))


def var(x, axis=None, keepdims: bool = False, ddof: int = 0, *, dim=None, keepdim=None,
        unbiased: bool | None = None, correction: int | None = None) -> Tensor:
    """Variance sum((x - mean)^2) / (n - ddof).

    The default follows NumPy (``ddof=0``, the biased estimate); PyTorch's ``torch.var``
    defaults to Bessel's correction: pass ``ddof=1`` (or ``unbiased=True``/``correction=1``).
    """
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    if unbiased is not None:
        ddof = int(unbiased)
    if correction is not None:
        ddof = correction
    x = x if isinstance(x, Tensor) else Tensor(x)
    n = _count(x, axis)
    if n - ddof <= 0:
        raise ValueError(f"var: {n} element(s) over axis {axis} is too few for ddof={ddof}")
    d = x - mean(x, axis, keepdims=True)
    return sum(d * d, axis, keepdims) * (1.0 / (n - ddof))


def std(x, axis=None, keepdims: bool = False, ddof: int = 0, *, dim=None, keepdim=None) -> Tensor:
    """Standard deviation sqrt(var(x, axis, ddof))."""
    from .elementwise import sqrt

    return sqrt(var(x, axis, keepdims, ddof, dim=dim, keepdim=keepdim))


class _Extreme(Function):
    """y = max (or min) of x over ``axis``;  dy/dx = 1 at the extreme, 0 elsewhere.

    Ties share the gradient evenly (1/k each for k tied elements), as PyTorch's
    ``amax``/``amin`` do. (PyTorch's ``max(dim)`` instead gives it all to one index.)
    """

    name_ = "max"

    def __init__(self, axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.name_}: the tensor is empty (shape {x.shape})")
        self.axes = _normalize_axes(self.axis, x.ndim, self.name_)
        reduce = x.max if self.name_ == "max" else x.min
        return reduce(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        y = self.output().data
        if not self.keepdims:
            y = y.reshape(_kept_shape(x.shape, self.axes))
        hit = (x.data == y)
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        return _expand_back(gy, x.shape, self.axes, self.keepdims) * _new_tensor(
            share.astype(x.dtype), False, None, 0
        )


class Max(_Extreme):
    name_ = "max"


class Min(_Extreme):
    name_ = "min"


def max(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Largest value over ``axis`` (values only, as NumPy; use ``argmax`` for indices)."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    return Max(axis, keepdims)(x)


def min(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Smallest value over ``axis`` (values only, as NumPy)."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    return Min(axis, keepdims)(x)


amax, amin = max, min


def argmax(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Index of the largest value along ``axis`` (of the flattened tensor when None)."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    data = x.data if isinstance(x, Tensor) else x
    return _new_tensor(data.argmax(axis=axis, keepdims=keepdims), False, None, 0)


def argmin(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Index of the smallest value along ``axis``."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    data = x.data if isinstance(x, Tensor) else x
    return _new_tensor(data.argmin(axis=axis, keepdims=keepdims), False, None, 0)


class LogSumExp(Function):
    """y = log sum exp(x) over ``axis``, computed as m + log sum exp(x - m) with m = max x;
    dy/dx = exp(x - y) = softmax(x)."""

    def __init__(self, axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.axes = _normalize_axes(self.axis, x.ndim, "logsumexp")
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        from .elementwise import exp

        x = self.inputs[0]
        y = _expand_back(self.output(), x.shape, self.axes, self.keepdims)
        return _expand_back(gy, x.shape, self.axes, self.keepdims) * exp(x - y)


def logsumexp(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """log(sum(exp(x))) over ``axis``, without overflow."""
    axis, keepdims = _resolve(axis, keepdims, dim, keepdim)
    return LogSumExp(axis, keepdims)(x)


class Softmax(Function):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis``;
    dx = y * (gy - sum(gy * y, axis))."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        _normalize_axes(self.axis, x.ndim, "softmax")
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        return e

    def backward(self, gy):
        y = self.output()
        gyy = gy * y
        return gyy - y * sum(gyy, self.axis, keepdims=True)


def softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    """Softmax along ``axis`` (default: last)."""
    return Softmax(axis if dim is None else dim)(x)


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis``;  dx = gy - exp(y) * sum(gy, axis)."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        _normalize_axes(self.axis, x.ndim, "log_softmax")
        z = x - x.max(axis=self.axis, keepdims=True)
        return z - xp.log(xp.exp(z).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        from .elementwise import exp

        return gy - exp(self.output()) * sum(gy, self.axis, keepdims=True)


def log_softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably."""
    return LogSoftmax(axis if dim is None else dim)(x)


from .shape import broadcast_to  # noqa: E402

"""Elementwise ops: arithmetic with NumPy broadcasting, and the common activations.

Each op is a ``Function``: ``forward`` on raw arrays, ``backward`` with Tensor ops (so it
is differentiable again). For a binary op whose operands were broadcast, the gradient of
each operand is the upstream gradient summed back to the operand's shape (``sum_to``).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _new_tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "sin", "cos",
    "tanh", "sigmoid", "relu", "leaky_relu", "gelu", "softplus", "erf", "clip", "clamp",
    "maximum", "minimum", "where", "astype", "sign",
]


def _constant(array) -> Tensor:
    """A Tensor that is a constant of the graph (no creator, no grad)."""
    return _new_tensor(array, False, None, 0)


def _unbroadcast(g: Tensor, shape: tuple) -> Tensor:
    return g if g.data.shape == shape else sum_to(g, shape)


def _broadcast_error(op: str, a, b) -> ValueError:
    return ValueError(f"{op}: cannot broadcast shapes {a.shape} and {b.shape} (NumPy broadcasting rules)")


# --------------------------------------------------------------------------- arithmetic

class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1 (summed over broadcast axes)."""

    def forward(self, a, b):
        try:
            return a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        return _unbroadcast(gy, a.data.shape), _unbroadcast(gy, b.data.shape)


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        try:
            return a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        gb = -_unbroadcast(gy, b.data.shape) if self.needs_input_grad[1] else None
        return _unbroadcast(gy, a.data.shape), gb


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a."""

    def forward(self, a, b):
        try:
            return a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        ga = _unbroadcast(gy * b, a.data.shape) if self.needs_input_grad[0] else None
        gb = _unbroadcast(gy * a, b.data.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2."""

    def forward(self, a, b):
        try:
            return a / b
        except ValueError:
            raise _broadcast_error("div", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        ga = _unbroadcast(gy / b, a.data.shape) if self.needs_input_grad[0] else None
        gb = _unbroadcast(-gy * a / (b * b), b.data.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** b;  dy/da = b a^(b-1), dy/db = a^b log(a) (for a > 0)."""

    def forward(self, a, b):
        try:
            return a ** b
        except ValueError:
            raise _broadcast_error("pow", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = _unbroadcast(gy * b * a ** (b - 1), a.data.shape)
        if self.needs_input_grad[1]:
            xp = backend.get_array_module(a.data)
            safe_a = where(_constant(a.data > 0), a, _constant(xp.ones_like(a.data)))
            gb = _unbroadcast(gy * self.output() * log(safe_a), b.data.shape)
        return ga, gb


def add(a, b) -> Tensor:
    """a + b with broadcasting."""
    return Add()(a, b)


def sub(a, b) -> Tensor:
    """a - b with broadcasting."""
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    """a * b with broadcasting."""
    return Mul()(a, b)


def div(a, b) -> Tensor:
    """a / b with broadcasting."""
    return Div()(a, b)


def neg(x) -> Tensor:
    """-x."""
    return Neg()(x)


def pow(a, b) -> Tensor:
    """a ** b; ``b`` may be a number or a Tensor (the gradient w.r.t. ``b`` assumes a > 0)."""
    return Pow()(a, b)


# --------------------------------------------------------------------------- unary math

class Exp(Function):
    """y = e^x;  dy/dx = y."""

    def forward(self, x):
        return backend.get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    """y = ln x;  dy/dx = 1/x."""

    def forward(self, x):
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)."""

    def forward(self, x):
        return backend.get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2.0 * self.output())


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at x = 0, as in PyTorch)."""

    def forward(self, x):
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * _constant(backend.get_array_module(x).sign(x))


class Sin(Function):
    """y = sin x;  dy/dx = cos x."""

    def forward(self, x):
        return backend.get_array_module(x).sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


class Cos(Function):
    """y = cos x;  dy/dx = -sin x."""

    def forward(self, x):
        return backend.get_array_module(x).cos(x)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])


class Erf(Function):
    """y = erf(x);  dy/dx = 2/sqrt(pi) e^(-x^2)."""

    def forward(self, x):
        return backend.erf(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (2.0 / math.sqrt(math.pi)) * exp(-(x * x))


def exp(x) -> Tensor:
    """e^x elementwise."""
    return Exp()(x)


def log(x) -> Tensor:
    """Natural logarithm elementwise."""
    return Log()(x)


def sqrt(x) -> Tensor:
    """Square root elementwise."""
    return Sqrt()(x)


def abs(x) -> Tensor:
    """|x| elementwise; the gradient at 0 is 0."""
    return Abs()(x)


def sin(x) -> Tensor:
    """sin x elementwise."""
    return Sin()(x)


def cos(x) -> Tensor:
    """cos x elementwise."""
    return Cos()(x)


def erf(x) -> Tensor:
    """The error function elementwise."""
    return Erf()(x)


def sign(x) -> Tensor:
    """sign(x) as a constant (no gradient)."""
    x = x.data if isinstance(x, Tensor) else x
    return _constant(backend.get_array_module(x).sign(x))


# --------------------------------------------------------------------------- activations

class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2."""

    def forward(self, x):
        return backend.get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1.0 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 (no overflow);  dy/dx = y (1 - y)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        return 0.5 * xp.tanh(0.5 * x) + 0.5

    def backward(self, gy):
        y = self.output()
        return gy * y * (1.0 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0 else 0.

    The backward multiplies by the mask x > 0: on the raw arrays for a plain backward, as
    a Tensor product (differentiable again) under ``create_graph=True``.
    """

    def forward(self, x):
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        mask = self.inputs[0].data > 0
        if is_grad_enabled():
            return gy * _constant(mask)
        gx = mask.astype(gy.data.dtype)  # a float mask times gy in place: faster than gy * bool mask
        gx *= gy.data
        return _constant(gx)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;  dy/dx = 1 or slope."""

    def __init__(self, slope: float):
        self.slope = slope

    def forward(self, x):
        return backend.get_array_module(x).where(x > 0, x, x * self.slope)

    def backward(self, gy):
        x = self.inputs[0].data
        xp = backend.get_array_module(x)
        return gy * _constant(xp.where(x > 0, 1.0, self.slope).astype(x.dtype))


class Softplus(Function):
    """y = log(1 + e^(beta x)) / beta, linear above ``threshold``;  dy/dx = sigmoid(beta x)."""

    def __init__(self, beta: float, threshold: float):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = backend.get_array_module(x)
        z = self.beta * x
        soft = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / self.beta
        return xp.where(z > self.threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        xp = backend.get_array_module(x.data)
        linear = _constant(self.beta * x.data > self.threshold)
        s = sigmoid(x * self.beta)
        return gy * where(linear, _constant(xp.ones_like(x.data)), s)


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    """Logistic sigmoid, numerically stable for large |x|."""
    return Sigmoid()(x)


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is 0 (as in PyTorch)."""
    return ReLU()(x)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return LeakyReLU(negative_slope)(x)


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, stable; returns x where beta x > threshold (PyTorch's rule)."""
    return Softplus(beta, threshold)(x)


def gelu(x, approximate: str = "none") -> Tensor:
    """GELU: x * Phi(x) with Phi the standard normal CDF (``approximate="tanh"`` for the tanh form).

    d/dx [x Phi(x)] = Phi(x) + x phi(x); built from differentiable ops, so it has all orders.
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


# --------------------------------------------------------------------------- selection

class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 where lo <= x <= hi (inclusive, as in PyTorch), else 0."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = backend.get_array_module(x)
        y = x
        if self.lo is not None:
            y = xp.maximum(y, xp.asarray(self.lo, dtype=x.dtype))
        if self.hi is not None:
            y = xp.minimum(y, xp.asarray(self.hi, dtype=x.dtype))
        return y if y is not x else x.copy()

    def backward(self, gy):
        x = self.inputs[0].data
        xp = backend.get_array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        return gy * _constant(inside.astype(x.dtype))


def clip(x, min=None, max=None) -> Tensor:
    """Clamp x into [min, max] (either may be None)."""
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min ({min}) is greater than max ({max})")
    return Clip(min, max)(x)


clamp = clip


class _Extremum(Function):
    """y = max(a, b) (or min);  the gradient goes to the larger (smaller) operand, split
    half and half where a == b (PyTorch's rule for maximum/minimum)."""

    pick_max = True

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        try:
            return xp.maximum(a, b) if self.pick_max else xp.minimum(a, b)
        except ValueError:
            raise _broadcast_error("maximum" if self.pick_max else "minimum", a, b) from None

    def backward(self, gy):
        a, b = self.inputs
        xp = backend.get_array_module(a.data, b.data)
        wins = (a.data > b.data) if self.pick_max else (a.data < b.data)
        share = wins.astype(gy.dtype) + 0.5 * (a.data == b.data)
        share = xp.asarray(share, dtype=gy.dtype)
        ga = _unbroadcast(gy * _constant(share), a.data.shape) if self.needs_input_grad[0] else None
        gb = _unbroadcast(gy * _constant(1.0 - share), b.data.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Maximum(_Extremum):
    pick_max = True


class Minimum(_Extremum):
    pick_max = False


def maximum(a, b) -> Tensor:
    """Elementwise max of a and b, broadcast; ties split the gradient evenly."""
    return Maximum()(a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min of a and b, broadcast; ties split the gradient evenly."""
    return Minimum()(a, b)


class Where(Function):
    """y = a where cond else b;  dy/da = cond, dy/db = not cond (cond is a constant)."""

    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        try:
            return xp.where(self.cond, a, b)
        except ValueError:
            raise ValueError(
                f"where: cannot broadcast condition {self.cond.shape}, x {a.shape} and y {b.shape}"
            ) from None

    def backward(self, gy):
        a, b = self.inputs
        c = _constant(self.cond)
        zero = _constant(backend.get_array_module(gy.data).zeros((), dtype=gy.dtype))
        ga = _unbroadcast(where(c, gy, zero), a.data.shape) if self.needs_input_grad[0] else None
        gb = _unbroadcast(where(c, zero, gy), b.data.shape) if self.needs_input_grad[1] else None
        return ga, gb


def where(cond, a, b) -> Tensor:
    """Pick from ``a`` where ``cond`` is true, else from ``b`` (all broadcast together)."""
    c = cond.data if isinstance(cond, Tensor) else cond
    c = backend.get_array_module(c).asarray(c, dtype=bool)
    operands = [t.data for t in (a, b) if isinstance(t, Tensor)]
    if operands and backend.get_array_module(operands[0]) is not backend.get_array_module(c):
        raise RuntimeError(
            f"where: the condition is on {backend.device_of(c)} but the values are on "
            f"{backend.device_of(operands[0])}; move the condition with .to(device)"
        )
    return Where(c)(a, b)


# --------------------------------------------------------------------------- dtype, device

class AsType(Function):
    """y = x converted to ``dtype``;  the gradient is converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return astype(gy, self.in_dtype)


def astype(x, dtype) -> Tensor:
    """x as ``dtype`` (differentiable between floating dtypes)."""
    if isinstance(x, Tensor) and x.data.dtype == np.dtype(dtype):
        return x
    return AsType(dtype)(x)


class ToDevice(Function):
    """y = x copied to another device;  the gradient is copied back."""

    def __init__(self, device):
        self.device = backend.Device(device)

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.source)


def to_device(x: Tensor, device) -> Tensor:
    """x on ``device`` ("cpu" or "cuda"), differentiable."""
    return ToDevice(device)(x)


class Copy(Function):
    """y = a copy of x;  dy/dx = 1."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def identity_copy(x: Tensor) -> Tensor:
    """A copy of x that stays in the graph (``Tensor.clone``)."""
    return Copy()(x)


from .reduce import sum_to  # noqa: E402  (sum_to's backward is broadcast_to, defined above us)

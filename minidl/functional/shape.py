"""Ops that move elements without changing them: reshape, transpose, indexing, joining.

Their backward passes move the gradient back: reshape back, transpose by the inverse
permutation, scatter-add for indexing, slice for concatenation.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor

__all__ = [
    "reshape", "transpose", "permute", "swapaxes", "flatten", "squeeze", "unsqueeze",
    "broadcast_to", "getitem", "concat", "cat", "stack", "split", "pad",
]


def _shape_arg(shape: Sequence) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


class Reshape(Function):
    """y = x viewed with a new shape;  dx = gy reshaped back."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into {self.shape}") from None

    def backward(self, gy):
        return reshape(gy, self.inputs[0].data.shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """x with a new shape (one dimension may be -1)."""
    shape = _shape_arg(shape)
    if isinstance(x, Tensor) and x.data.shape == shape:
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    """y = x with axes permuted;  dx = gy permuted by the inverse permutation."""

    def __init__(self, axes: tuple | None):
        self.axes = axes

    def forward(self, x):
        if self.axes is not None and sorted(a % max(x.ndim, 1) for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes of {x.shape}")
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        inverse = tuple(np.argsort([a % gy.ndim for a in self.axes]))
        return transpose(gy, *inverse)


def transpose(x: Tensor, *axes) -> Tensor:
    """Permute axes (reverse them when none are given), as NumPy's ``transpose``.

    Note: PyTorch's ``transpose(a, b)`` swaps two axes; here that is ``swapaxes(x, a, b)``,
    and ``transpose(x, a, b)`` with exactly two axes on a tensor of more than 2 dims swaps too.
    """
    axes = _shape_arg(axes) if axes else None
    ndim = x.ndim if isinstance(x, Tensor) else np.ndim(x)
    if axes is not None and len(axes) == 2 and ndim > 2:
        return swapaxes(x, *axes)
    return Transpose(axes)(x)


permute = transpose


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """Exchange axes ``a`` and ``b``."""
    ndim = x.ndim
    perm = list(range(ndim))
    perm[a % ndim], perm[b % ndim] = perm[b % ndim], perm[a % ndim]
    return Transpose(tuple(perm))(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions start_dim..end_dim into one."""
    shape = x.shape
    if not shape:
        return reshape(x, 1)
    s, e = start_dim % len(shape), end_dim % len(shape)
    return reshape(x, shape[:s] + (-1,) + shape[e + 1:])


def squeeze(x: Tensor, axis=None, *, dim=None) -> Tensor:
    """Drop size-1 dimensions (all, or the given ``axis``)."""
    axis = axis if dim is None else dim
    shape = x.shape
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
        new = tuple(n for i, n in enumerate(shape) if not (i in axes and n == 1))
    return reshape(x, new)


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 dimension at ``axis``."""
    shape = list(x.shape)
    axis = axis % (len(shape) + 1)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


class BroadcastTo(Function):
    """y = x broadcast to ``shape``;  dx = sum_to(gy, x.shape)."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        xp = backend.get_array_module(x)
        try:
            return xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {self.shape}") from None

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].data.shape)


def broadcast_to(x: Tensor, *shape) -> Tensor:
    """x broadcast (read-only) to ``shape``."""
    shape = _shape_arg(shape)
    if isinstance(x, Tensor) and x.data.shape == shape:
        return x
    return BroadcastTo(shape)(x)


# --------------------------------------------------------------------------- indexing

def unwrap_key(key: Any, like: Any = None) -> Any:
    """Replace Tensors inside an index by their arrays.

    With ``like`` (the array being indexed) on a GPU, index arrays given as NumPy arrays or
    lists are copied to its device: CuPy indexes only with CuPy arrays.
    """
    if isinstance(key, Tensor):
        key = key.data
    elif isinstance(key, tuple):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
    elif isinstance(key, list):
        key = np.asarray(key)
    if like is None or backend.get_array_module(like) is np:
        return key
    device = backend.device_of(like)
    if isinstance(key, np.ndarray):
        return backend.to_device(key, device)
    if isinstance(key, tuple):
        return tuple(backend.to_device(np.asarray(k), device) if isinstance(k, (np.ndarray, list)) else k
                     for k in key)
    return key


def _is_basic(key: Any) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice, np.integer)) for k in keys)


class GetItem(Function):
    """y = x[key] (basic or advanced indexing);  dx = zeros with gy scattered (added) into
    the indexed places, so repeated indices accumulate."""

    def __init__(self, key):
        self.key = key

    def forward(self, x):
        try:
            return x[self.key]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (indexing a tensor of shape {x.shape})") from None

    def backward(self, gy):
        x = self.inputs[0]
        return GetItemGrad(self.key, x.data.shape, x.data.dtype)(gy)


class GetItemGrad(Function):
    """y = zeros(shape) with y[key] += g (scatter-add);  dg = gy[key]."""

    def __init__(self, key, shape: tuple, dtype):
        self.key, self.shape, self.dtype = key, shape, dtype

    def forward(self, g):
        xp = backend.get_array_module(g)
        out = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic(self.key):
            out[self.key] = g
        else:
            backend.scatter_add(out, self.key, g)
        return out

    def backward(self, gy):
        return getitem(gy, self.key)


def getitem(x: Tensor, key: Any) -> Tensor:
    """x[key]: slices, integers, None, Ellipsis, integer arrays, boolean masks."""
    return GetItem(unwrap_key(key, x.data if isinstance(x, Tensor) else x))(x)


class Concat(Function):
    """y = the inputs joined along ``axis``;  each dx_i = the slice of gy that came from x_i."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        xp = backend.get_array_module(*xs)
        try:
            y = xp.concatenate(xs, axis=self.axis)
        except ValueError:
            raise ValueError(f"concat: shapes {[x.shape for x in xs]} do not match except along axis {self.axis}") from None
        except np.exceptions.AxisError:
            raise IndexError(f"concat: axis {self.axis} is out of range for shapes {[x.shape for x in xs]}") from None
        self.bounds = np.cumsum([0] + [x.shape[self.axis] for x in xs])
        return y

    def backward(self, gy):
        axis = self.axis % gy.ndim
        grads = []
        for i, need in enumerate(self.needs_input_grad):
            if need:
                index = (slice(None),) * axis + (slice(int(self.bounds[i]), int(self.bounds[i + 1])),)
                grads.append(getitem(gy, index))
            else:
                grads.append(None)
        return tuple(grads)


def concat(tensors: Sequence[Tensor], axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors along an existing ``axis``."""
    if len(tensors) == 0:
        raise ValueError("concat: expected a non-empty sequence of tensors")
    return Concat(axis if dim is None else dim)(*tensors)


cat = concat


def stack(tensors: Sequence[Tensor], axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors of equal shape along a new ``axis``."""
    if len(tensors) == 0:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    axis = axis if dim is None else dim
    shapes = {tuple(np.shape(t.data if isinstance(t, Tensor) else t)) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return concat([unsqueeze(t if isinstance(t, Tensor) else Tensor(t), axis) for t in tensors], axis)


def split(x: Tensor, split_size_or_sections, axis: int = 0, *, dim=None) -> tuple:
    """Split x along ``axis`` into chunks of ``split_size`` (an int, PyTorch's rule) or of the
    given list of sizes."""
    axis = (axis if dim is None else dim) % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to {n}, the size of axis {axis}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, (slice(None),) * axis + (slice(start, start + s),)))
        start += s
    return tuple(out)


class Pad(Function):
    """y = x padded with a constant;  dx = the centre slice of gy."""

    def __init__(self, pad_width, value: float):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        xp = backend.get_array_module(x)
        try:
            return xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)
        except ValueError as e:
            raise ValueError(f"pad: bad pad_width {self.pad_width} for shape {x.shape}: {e}") from None

    def backward(self, gy):
        x_shape = self.inputs[0].data.shape
        pw = np.broadcast_to(np.asarray(self.pad_width, dtype=int), (len(x_shape), 2))
        index = tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(pw, x_shape))
        return getitem(gy, index)


def pad(x: Tensor, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's ``pad_width`` convention ((before, after) per axis)."""
    return Pad(pad_width, value)(x)


from .reduce import sum_to  # noqa: E402

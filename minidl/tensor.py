"""``Tensor``: an array (NumPy or CuPy) plus what autograd needs to know about it.

A Tensor made by an op remembers the ``Function`` that made it (``creator``) and that
Function's ``generation``; a leaf has no creator. Gradients land in ``.grad`` as Tensors.
The operators and methods below all delegate to the ops in ``minidl.functional``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import backend

_ndarray = np.ndarray
_object_new = object.__new__


def _as_array_like(x: Any, ref: "Tensor | None" = None):
    """Turn a Python number or array-like into an array for an op whose other operand is ``ref``.

    Python numbers take ``ref``'s floating dtype (so ``x * 2`` stays float32), or the default
    float dtype for a float meeting an integer tensor; arrays are kept as they are. A NumPy
    scalar (or 0-d array) meeting a GPU tensor is a number, not an array on another device:
    it joins ``ref`` on the GPU (as a 0-d CPU tensor does in PyTorch).
    """
    if backend.cupy is not None and isinstance(x, backend.cupy.ndarray):
        return x
    if isinstance(x, (_ndarray, np.generic)):
        if ref is not None and type(ref.data) is not _ndarray and np.ndim(x) == 0:
            return backend.get_array_module(ref.data).asarray(x)
        return np.asarray(x)
    xp = np if ref is None else backend.get_array_module(ref.data)
    if isinstance(x, (bool, int, float)):
        if ref is not None and ref.data.dtype.kind == "f":
            return xp.asarray(x, dtype=ref.data.dtype)
        if isinstance(x, float):
            return xp.asarray(x, dtype=backend.default_dtype())
        return xp.asarray(x)
    if isinstance(x, Tensor):
        return x.data
    return _from_python(x, None, xp)


def _from_python(data: Any, dtype: Any, xp=np):
    """An array from nested lists/numbers, with Python floats as the default float dtype."""
    arr = xp.asarray(data, dtype=dtype)
    if dtype is None and arr.dtype == np.float64 and not isinstance(data, (_ndarray, np.generic)):
        arr = arr.astype(backend.default_dtype())
    return arr


def _new_tensor(data, requires_grad: bool, creator, generation: int) -> "Tensor":
    """Fast construction used by ops (no argument checking)."""
    if type(data) is not _ndarray:
        if isinstance(data, np.generic):
            data = np.asarray(data)
        elif backend.cupy is None or not isinstance(data, backend.cupy.ndarray):
            raise TypeError(f"an op returned {type(data).__name__}; forward must return arrays")
    t = _object_new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t.creator = creator
    t.generation = generation
    t.name = None
    return t


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``Tensor(data, requires_grad=False)`` wraps ``data`` without copying when it is already
    an array; use ``minidl.tensor`` for a copy with dtype and device options.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "generation", "name", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None or not isinstance(data, _ndarray) and not (
            backend.cupy is not None and isinstance(data, backend.cupy.ndarray)
        ):
            xp = backend.get_array_module(data)
            data = _from_python(data, dtype, xp)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating tensors can require grad, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.generation = 0
        self.name = None

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def grad_fn(self):
        return self.creator

    @property
    def T(self) -> "Tensor":
        return _shape.transpose(self)

    @property
    def mT(self) -> "Tensor":
        return _shape.swapaxes(self, -1, -2)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != backend.default_dtype():
            extra += f", dtype={self.data.dtype}"
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self.creator is not None:
            extra += f", grad_fn=<{self.creator.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(backend.to_scalar(self.data))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        arr = backend.to_numpy(self.data)
        return arr if dtype is None else arr.astype(dtype)

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host for a GPU tensor)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors convert to a Python number, got shape {self.shape}")
        return backend.to_scalar(self.data)

    def tolist(self) -> Any:
        return backend.to_numpy(self.data).tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory)."""
        return _new_tensor(self.data, False, None, 0)

    def clone(self) -> "Tensor":
        return _elementwise.identity_copy(self)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating tensors can require grad, got dtype {self.dtype}")
        if not requires_grad and self.creator is not None:
            raise RuntimeError("requires_grad_(False) is only allowed on leaves; use detach()")
        self.requires_grad = requires_grad
        return self

    def to(self, device: Any = None, dtype: Any = None) -> "Tensor":
        """A copy on ``device`` ("cpu"/"cuda") and/or of ``dtype``; differentiable."""
        out = self
        if device is not None and backend.Device(device) != self.device:
            out = _elementwise.to_device(out, device)
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = out.astype(dtype)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def astype(self, dtype: Any) -> "Tensor":
        return _elementwise.astype(self, dtype)

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    # ------------------------------------------------------------------ autograd
    def backward(self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor w.r.t. every leaf into ``leaf.grad``.

        ``grad`` is the upstream gradient (needed unless this tensor has one element).
        """
        _autograd.backward(self, grad, retain_graph, create_graph)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return _elementwise.add(self, other)

    def __radd__(self, other):
        return _elementwise.add(other, self)

    def __sub__(self, other):
        return _elementwise.sub(self, other)

    def __rsub__(self, other):
        return _elementwise.sub(other, self)

    def __mul__(self, other):
        return _elementwise.mul(self, other)

    def __rmul__(self, other):
        return _elementwise.mul(other, self)

    def __truediv__(self, other):
        return _elementwise.div(self, other)

    def __rtruediv__(self, other):
        return _elementwise.div(other, self)

    def __pow__(self, other):
        return _elementwise.pow(self, other)

    def __rpow__(self, other):
        return _elementwise.pow(other, self)

    def __matmul__(self, other):
        return _linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _linalg.matmul(other, self)

    def __neg__(self):
        return _elementwise.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _elementwise.abs(self)

    def __getitem__(self, key):
        return _shape.getitem(self, key)

    def __setitem__(self, key, value):
        if self.requires_grad and _autograd.is_grad_enabled():
            raise RuntimeError("in-place assignment to a tensor that requires grad; wrap it in minidl.no_grad()")
        self.data[_shape.unwrap_key(key, self.data)] = value.data if isinstance(value, Tensor) else value

    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else _as_array_like(other, self)
        return Tensor(op(self.data, other))

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __invert__(self):
        return Tensor(~self.data)

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    # ------------------------------------------------------------------ methods
    def exp(self):
        return _elementwise.exp(self)

    def log(self):
        return _elementwise.log(self)

    def sqrt(self):
        return _elementwise.sqrt(self)

    def abs(self):
        return _elementwise.abs(self)

    def sin(self):
        return _elementwise.sin(self)

    def cos(self):
        return _elementwise.cos(self)

    def tanh(self):
        return _elementwise.tanh(self)

    def sigmoid(self):
        return _elementwise.sigmoid(self)

    def relu(self):
        return _elementwise.relu(self)

    def clip(self, min=None, max=None):
        return _elementwise.clip(self, min, max)

    clamp = clip

    def pow(self, exponent):
        return _elementwise.pow(self, exponent)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def var(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None):
        return _reduce.var(self, axis, keepdims, ddof, dim=dim, keepdim=keepdim)

    def std(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None):
        return _reduce.std(self, axis, keepdims, ddof, dim=dim, keepdim=keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.max(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.min(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def logsumexp(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce.logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def softmax(self, axis=-1, *, dim=None):
        return _reduce.softmax(self, axis, dim=dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return _reduce.log_softmax(self, axis, dim=dim)

    def reshape(self, *shape):
        return _shape.reshape(self, *shape)

    view = reshape

    def transpose(self, *axes):
        return _shape.transpose(self, *axes)

    def permute(self, *axes):
        return _shape.transpose(self, *axes)

    def swapaxes(self, a: int, b: int):
        return _shape.swapaxes(self, a, b)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return _shape.flatten(self, start_dim, end_dim)

    def squeeze(self, axis=None, *, dim=None):
        return _shape.squeeze(self, axis, dim=dim)

    def unsqueeze(self, axis: int):
        return _shape.unsqueeze(self, axis)

    def broadcast_to(self, *shape):
        return _shape.broadcast_to(self, *shape)

    expand = broadcast_to

    def matmul(self, other):
        return _linalg.matmul(self, other)


# The ops live on the floor above; they are looked up when a method runs, after import.
from . import autograd as _autograd  # noqa: E402
from .functional import elementwise as _elementwise  # noqa: E402
from .functional import linalg as _linalg  # noqa: E402
from .functional import reduce as _reduce  # noqa: E402
from .functional import shape as _shape  # noqa: E402

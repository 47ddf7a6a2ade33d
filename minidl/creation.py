"""Factory functions for tensors: ``tensor``, ``zeros``, ``ones``, ``randn``, ``arange``...

Random tensors draw from minidl's seeded generator (``minidl.manual_seed``), on the
device they are made for.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import backend
from .tensor import Tensor, _from_python

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "zeros_like",
    "ones_like", "full_like", "randn", "rand", "randint", "arange", "linspace", "eye",
]


def _shape(shape: Sequence) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _float_dtype(dtype: Any) -> np.dtype:
    return backend.default_dtype() if dtype is None else np.dtype(dtype)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = "cpu") -> Tensor:
    """A new Tensor holding a copy of ``data`` (a number, nested lists, an array or a Tensor).

    Python floats become the default dtype (float32); NumPy arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or backend.get_array_module(data) is not np:
        arr = data.astype(dtype) if dtype is not None else data.copy()
    else:
        arr = _from_python(data, dtype)
    return Tensor(backend.to_device(arr, device), requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = "cpu") -> Tensor:
    """Like ``tensor`` but shares memory with an array of the right dtype and device."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    if isinstance(data, np.ndarray) and backend.Device(device).type == "cpu":
        return Tensor(data if dtype is None else data.astype(dtype, copy=False))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with a NumPy array."""
    return Tensor(np.asarray(array))


def zeros(*shape, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    xp = backend.array_module_for(device)
    return Tensor(xp.zeros(_shape(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    xp = backend.array_module_for(device)
    return Tensor(xp.ones(_shape(shape), dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def full(shape: Sequence[int], fill_value: float, dtype: Any = None, device: Any = "cpu",
         requires_grad: bool = False) -> Tensor:
    xp = backend.array_module_for(device)
    return Tensor(xp.full(tuple(shape), fill_value, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


empty = zeros


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    xp = backend.get_array_module(x.data)
    return Tensor(xp.zeros_like(x.data, dtype=dtype), requires_grad=requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    xp = backend.get_array_module(x.data)
    return Tensor(xp.ones_like(x.data, dtype=dtype), requires_grad=requires_grad)


def full_like(x: Tensor, fill_value: float, dtype: Any = None) -> Tensor:
    xp = backend.get_array_module(x.data)
    return Tensor(xp.full_like(x.data, fill_value, dtype=dtype))


def randn(*shape, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal samples from minidl's seeded generator."""
    xp = backend.array_module_for(device)
    data = backend.random_floats(backend.random_generator(xp), "normal", _shape(shape), _float_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from minidl's seeded generator."""
    xp = backend.array_module_for(device)
    data = backend.random_floats(backend.random_generator(xp), "random", _shape(shape), _float_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randint(low: int, high: int, size: Sequence[int], device: Any = "cpu") -> Tensor:
    """Integers uniform in [low, high) (int64)."""
    xp = backend.array_module_for(device)
    return Tensor(backend.random_generator(xp).integers(low, high, size=tuple(size)).astype(np.int64))


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None, device: Any = "cpu") -> Tensor:
    xp = backend.array_module_for(device)
    if stop is None:
        start, stop = 0, start
    return Tensor(xp.arange(start, stop, step, dtype=dtype))


def linspace(start: float, stop: float, num: int, dtype: Any = None, device: Any = "cpu") -> Tensor:
    xp = backend.array_module_for(device)
    return Tensor(xp.linspace(start, stop, num, dtype=_float_dtype(dtype)))


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = "cpu") -> Tensor:
    xp = backend.array_module_for(device)
    return Tensor(xp.eye(n, m, dtype=_float_dtype(dtype)))

"""The one place that knows NumPy from CuPy.

Everything above this floor writes array code once against ``xp`` (the array module of
its inputs) and never imports CuPy itself. Moving data between devices is always
explicit: ``Tensor.to("cuda")``; an op that meets arrays of two devices raises an error.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

try:  # CuPy is optional: minidl imports and runs fully without it.
    if os.environ.get("MINIDL_DISABLE_CUPY"):
        raise ImportError("disabled by MINIDL_DISABLE_CUPY")
    import cupy  # type: ignore

    try:
        _CUDA_OK = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver / no device
        _CUDA_OK = False
except Exception:
    cupy = None
    _CUDA_OK = False

_INSTALL_HINT = (
    "CuPy with a CUDA device is needed for device='cuda': install it with "
    "`pip install -e \".[gpu]\"` (cupy-cuda12x) on a machine with an NVIDIA GPU"
)


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _CUDA_OK


def get_array_module(*arrays: Any):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


class Device:
    """A device name: ``"cpu"`` or ``"cuda"`` (``"cuda:0"``)."""

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device" = "cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda', got {spec!r}")
        name, _, idx = spec.partition(":")
        if name not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device {spec!r}; expected 'cpu' or 'cuda[:N]'")
        self.type = name
        self.index = int(idx) if idx else (0 if name == "cuda" else None)

    def __eq__(self, other: object) -> bool:
        other = Device(other) if isinstance(other, str) else other
        return isinstance(other, Device) and self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    __str__ = __repr__


def device_of(array: Any) -> Device:
    """The device an array lives on."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return Device(f"cuda:{array.device.id}")
    return Device("cpu")


def array_module_for(device: "str | Device"):
    """The array module (numpy or cupy) that holds arrays on ``device``."""
    device = Device(device)
    if device.type == "cpu":
        return np
    if not _CUDA_OK:
        raise RuntimeError(_INSTALL_HINT)
    return cupy


# Hooks that see every explicit transfer, so tests can prove a training step makes none.
_transfer_hooks: list[Callable[[str, Any], None]] = []
_count_host_arrays = [0]  # > 0 inside count_host_transfers(include_host_arrays=True)


def add_transfer_hook(fn: Callable[[str, Any], None]) -> Callable[[], None]:
    """Call ``fn(direction, array)`` on every transfer: "to_host" (device to host, including
    ``Tensor.item()``/``.numpy()`` on a GPU tensor) or "to_device". Returns a remover."""
    _transfer_hooks.append(fn)
    return lambda: _transfer_hooks.remove(fn)


def _notify(direction: str, array: Any) -> None:
    for hook in _transfer_hooks:
        hook(direction, array)


class count_host_transfers:
    """Count device-to-host copies inside a ``with`` block: ``with count_host_transfers() as c: ...``
    then ``c.count``.

    With ``include_host_arrays=True`` every conversion to a host value is counted even for
    arrays already on the host, so the absence of hidden round trips in a training step can
    be checked on a machine without a GPU (where no real copy ever happens).
    """

    def __init__(self, include_host_arrays: bool = False):
        self.include_host_arrays = include_host_arrays
        self.count = 0
        self.events: list[str] = []

    def _hook(self, direction: str, array: Any) -> None:
        if direction == "to_host":
            self.count += 1
            self.events.append(f"{type(array).__name__}{getattr(array, 'shape', '')}")

    def __enter__(self):
        self._remove = add_transfer_hook(self._hook)
        if self.include_host_arrays:
            _count_host_arrays[0] += 1
        return self

    def __exit__(self, *exc):
        self._remove()
        if self.include_host_arrays:
            _count_host_arrays[0] -= 1
        return False


def to_device(array: Any, device: "str | Device") -> Any:
    """Copy ``array`` to ``device`` (a no-op when it is already there)."""
    device = Device(device)
    if device.type == "cpu":
        if cupy is not None and isinstance(array, cupy.ndarray):
            _notify("to_host", array)
            return cupy.asnumpy(array)
        if _count_host_arrays[0]:
            _notify("to_host", array)
        return np.asarray(array)
    xp = array_module_for(device)
    if isinstance(array, xp.ndarray) and array.device.id == device.index:
        return array
    _notify("to_device", array)
    with xp.cuda.Device(device.index):
        return xp.asarray(array)


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy view/copy of any array (CuPy arrays are copied to the host)."""
    return to_device(array, "cpu")


def to_scalar(array: Any) -> Any:
    """The single element of an array as a Python number (a device-to-host copy on the GPU)."""
    return to_numpy(array).reshape(()).item()


def erf(x: Any) -> Any:
    """The error function of an array, on its own device (SciPy or CuPy's SciPy)."""
    if cupy is not None and isinstance(x, cupy.ndarray):
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    from scipy.special import erf as scipy_erf

    return scipy_erf(x)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` in place, with repeated indices accumulating.

    NumPy spells it ``np.add.at``; CuPy spells it ``cupyx.scatter_add`` (``cupy.add.at``
    exists only in recent CuPy releases). ``index`` is anything ``target[index]`` accepts.
    """
    if cupy is not None and isinstance(target, cupy.ndarray):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


_default_dtype = np.dtype(np.float32)


def default_dtype() -> np.dtype:
    """The dtype given to Python floats (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype given to Python floats: float32 or float64."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64, np.float16):
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


class _RNG:
    """The seeded random generators: one NumPy ``Generator`` and, lazily, one CuPy one.

    ``minidl.manual_seed(s)`` reseeds both, so that a run is reproducible on either device.
    """

    def __init__(self, seed: int | None = None):
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        self._seed = seed
        self.numpy = np.random.default_rng(seed)
        self._cupy = None

    def for_module(self, xp):
        if xp is np:
            return self.numpy
        if self._cupy is None:
            self._cupy = xp.random.default_rng(self._seed)
        return self._cupy


    def get_state(self) -> tuple:
        return (self._seed, self.numpy, self._cupy)

    def set_state(self, state: tuple) -> None:
        self._seed, self.numpy, self._cupy = state


rng = _RNG(0)


class fork_rng:
    """Run a block with minidl's generators reseeded by ``seed``, then restore them exactly,
    so that the block (say, fitting an ensemble member) leaves the caller's random stream
    untouched. ``seed=None`` forks without reseeding (the block's draws are still undone).
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __enter__(self):
        self.saved = rng.get_state()
        if self.seed is not None:
            rng.seed(int(self.seed))
        else:
            import copy

            rng.set_state(copy.deepcopy(self.saved))
        return self

    def __exit__(self, *exc):
        rng.set_state(self.saved)
        return False


def manual_seed(seed: int) -> None:
    """Reseed minidl's generators (parameter initialisation, dropout, random tensors)."""
    rng.seed(seed)


def random_generator(xp=np):
    """The seeded generator for array module ``xp`` (numpy or cupy).

    Only the methods both libraries' Generators share are safe to call on it: ``random``,
    ``standard_normal``, ``uniform``, ``integers`` (CuPy's has no ``normal``,
    ``permutation``, ``choice`` or ``shuffle``: use ``loc + scale * standard_normal(...)``
    and ``random(n).argsort()``).
    """
    return rng.for_module(xp)


def random_floats(gen: Any, kind: str, shape: tuple, dtype: Any) -> Any:
    """``gen.random(shape)`` (``kind="random"``) or ``gen.standard_normal(shape)`` drawn
    directly in ``dtype`` when the generator supports it (float32/float64), which spares a
    float64 temporary on the GPU; other dtypes are drawn in float64 and cast."""
    dtype = np.dtype(dtype)
    draw = gen.random if kind == "random" else gen.standard_normal
    if dtype in (np.float32, np.float64):
        return draw(shape, dtype=dtype)
    return draw(shape).astype(dtype)

"""Running a trained model: ``inference_mode()`` and ``predict(model, X, batch_size)``.

``inference_mode()`` is ``no_grad()`` plus a flag that code can read with
``is_inference_mode()``: no graph is recorded (outputs have no creator, so every Function
and whatever it computed for a backward is freed at once), no Function keeps its inputs,
no parameter gets a ``.grad``, and ops skip work done only for a backward (e.g.
``FakeQuantize``'s mask). The tests check this by counting live Functions and by the
memory an output holds; ``python -m minidl compress`` measures it. ``predict`` runs a model in eval mode over a large input in
batches (so peak memory is one batch's activations), restoring the model's modes after.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import backend
from ..autograd import set_grad_enabled
from ..nn import Module
from ..tensor import Tensor

__all__ = ["inference_mode", "is_inference_mode", "predict", "model_device", "batch_to"]


class _State:
    depth = 0


def is_inference_mode() -> bool:
    """True inside ``inference_mode()``."""
    return _State.depth > 0


class inference_mode(set_grad_enabled):
    """``with inference_mode():`` (or as a decorator) runs ops without recording a graph.

    Unlike ``no_grad``, it also says so to code that asks (``is_inference_mode()``), so that
    layers and helpers can skip work done only for training (gradient buffers, saved
    activations). Nesting is allowed; ``inference_mode(False)`` is a no-op context.
    """

    def __init__(self, mode: bool = True):
        super().__init__(not mode)
        self.active = bool(mode)

    def __enter__(self):
        if self.active:
            _State.depth += 1
            return super().__enter__()
        self.prev = None
        return self

    def __exit__(self, *exc):
        if self.active:
            _State.depth -= 1
            return super().__exit__(*exc)
        return False

    def __call__(self, fn: Callable) -> Callable:
        import functools

        active = self.active

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(active):
                return fn(*args, **kwargs)

        return wrapper


def model_device(model: Any) -> backend.Device:
    """The device of a module's first parameter (the CPU for anything else)."""
    if isinstance(model, Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.device
    return backend.Device("cpu")


def batch_to(x: Any, model: Any) -> Tensor:
    """An array (or Tensor) as a Tensor on ``model``'s device (no copy when it is already there)."""
    data = x.data if isinstance(x, Tensor) else x
    return Tensor(backend.to_device(data if hasattr(data, "shape") else np.asarray(data), model_device(model)))


def _slice(X: Any, start: int, stop: int) -> Any:
    if isinstance(X, (tuple, list)):
        return type(X)(_slice(x, start, stop) for x in X)
    return X[start:stop]


def _length(X: Any) -> int:
    if isinstance(X, (tuple, list)):
        return _length(X[0])
    return int(X.shape[0])


def _to_input(x: Any, device: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return tuple(_to_input(v, device) for v in x)
    data = x.data if isinstance(x, Tensor) else x
    return Tensor(backend.to_device(np.asarray(data) if not hasattr(data, "shape") else data, device))


def predict(model: Callable, X: Any, batch_size: int = 256, device: Any = None, output: str = "numpy") -> Any:
    """Outputs of ``model`` on ``X`` (N, ...) computed batch by batch in eval mode.

    Args:
        model: a Module (set to eval mode for the call, its modes restored after) or any
            callable on Tensors.
        X: an array or Tensor with N rows (or a tuple of them for several inputs).
        batch_size: rows per forward pass.
        device: where to run (default: the model's parameters' device, else the CPU).
        output: "numpy" for a NumPy array (N, ...), "tensor" for a Tensor.
    Returns the outputs of all batches concatenated along axis 0.
    """
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    if output not in ("numpy", "tensor"):
        raise ValueError(f"predict: output must be 'numpy' or 'tensor', got {output!r}")
    is_module = isinstance(model, Module)
    device = model_device(model) if device is None else backend.Device(device)
    modes = [(m, m.training) for m in model.modules()] if is_module else []
    n = _length(X)
    pieces = []
    try:
        if is_module:
            model.eval()
        with inference_mode():
            for start in range(0, n, batch_size):
                xb = _to_input(_slice(X, start, min(start + batch_size, n)), device)
                y = model(*xb) if isinstance(xb, tuple) else model(xb)
                pieces.append(backend.to_numpy(y.data))
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    out = np.concatenate(pieces, axis=0) if pieces else np.zeros((0,))
    return Tensor(out) if output == "tensor" else out

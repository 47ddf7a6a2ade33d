"""Reverse-mode automatic differentiation: ``Function``, grad mode, and the graph walk.

A ``Function`` computes its forward pass on raw arrays and its backward pass with Tensor
operations, so that a backward pass is itself recorded when ``create_graph=True`` and
gradients of gradients come for free. Each output Tensor points at the Function that made
it (``tensor.creator``); the Function holds its inputs strongly and its outputs by weak
reference, so a finished graph is freed by reference counting as soon as the loss goes.

The graph walk pops Functions from a heap keyed on generation (the longest path from a
leaf), so every Function runs after all the Functions that consume its outputs, without
recursion: a chain of 100,000 ops backpropagates in a loop.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import weakref
from typing import Any, Sequence

import numpy as np

from . import backend
from .tensor import Tensor, _as_array_like, _new_tensor


class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """True while operations are being recorded for backpropagation."""
    return _GradMode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):
    """``with minidl.no_grad():`` records nothing: no graph, no saved tensors."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turn recording back on inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


class Function:
    """Base class of every differentiable operation.

    Subclasses define ``forward(self, *arrays)`` on raw arrays (returning an array or a
    tuple of arrays) and ``backward(self, *grad_outputs)`` on Tensors (returning one
    Tensor, or None, per input). Inside ``backward``: ``self.inputs`` (the input Tensors),
    ``self.needs_input_grad`` (which inputs want a gradient) and ``self.output(i)``.
    Anything else the backward needs is kept as an attribute set in ``forward``.
    """

    generation = 0
    inputs: tuple | None = None
    needs_input_grad: tuple = ()
    _out_meta: tuple | None = None  # (shape, dtype) per output, kept for multi-output Functions

    def __call__(self, *inputs: Any):
        for x in inputs:
            if not isinstance(x, Tensor):
                inputs = _as_tensors(inputs)
                break
        else:
            if backend.cupy is not None and len(inputs) > 1:
                _check_same_device(inputs)
        ys = self.forward(*[t.data for t in inputs])
        if _GradMode.enabled:
            needs = []
            gen = 0
            for t in inputs:  # one pass: which inputs want a gradient, and the deepest generation
                needs.append(t.requires_grad)
                if t.generation > gen:
                    gen = t.generation
            if True in needs:
                self.inputs = inputs
                self.needs_input_grad = tuple(needs)
                self.generation = gen
                if not isinstance(ys, tuple):  # _out_meta stays None: one output
                    out = _new_tensor(ys, True, self, gen + 1)
                    self.outputs = (weakref.ref(out),)
                    return out
                outs = tuple([_new_tensor(y, True, self, gen + 1) for y in ys])
                self.outputs = tuple([weakref.ref(o) for o in outs])
                self._out_meta = tuple([(o.data.shape, o.data.dtype) for o in outs])
                return outs
        if not isinstance(ys, tuple):
            return _new_tensor(ys, False, None, 0)
        return tuple([_new_tensor(y, False, None, 0) for y in ys])

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} does not support backward")

    def output(self, i: int = 0) -> Tensor:
        """The i-th output Tensor (alive while backward runs through it)."""
        out = self.outputs[i]()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: output {i} was freed before backward")
        return out

    @property
    def name(self) -> str:
        return type(self).__name__


def _as_tensors(inputs: Sequence[Any]) -> tuple:
    """Wrap non-Tensor inputs (arrays, Python numbers) as constants; check devices agree."""
    ref = None
    for x in inputs:
        if isinstance(x, Tensor):
            ref = x
            break
    out = [x if isinstance(x, Tensor) else _new_tensor(_as_array_like(x, ref), False, None, 0) for x in inputs]
    if backend.cupy is not None and len(out) > 1:
        _check_same_device(out)
    return tuple(out)


def _check_same_device(tensors: Sequence[Tensor]) -> None:
    kinds = {type(t.data) for t in tensors}
    if len(kinds) == 1:  # fast path, run on every op when CuPy is installed
        if np.ndarray in kinds or len({t.data.device.id for t in tensors}) == 1:
            return
    devices = {str(backend.device_of(t.data)) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(
            "expected all tensors to be on the same device, found tensors on "
            + " and ".join(sorted(devices))
            + "; move them with .to(device) first"
        )


# ---------------------------------------------------------------------------- graph walk

def _accumulate(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a + b


def _zeros_for(f: Function, shape, dtype) -> Tensor:
    xp = backend.get_array_module(f.inputs[0].data)
    return _new_tensor(xp.zeros(shape, dtype=dtype), False, None, 0)


def _check_input_grad(f: Function, i: int, x: Tensor, gx: Any) -> Tensor:
    if not isinstance(gx, Tensor):
        raise TypeError(f"{f.name}.backward must return Tensors (or None), got {type(gx).__name__} for input {i}")
    if gx.data.shape != x.data.shape:
        raise RuntimeError(
            f"{f.name}.backward returned a gradient of shape {gx.data.shape} for input {i}, "
            f"whose shape is {x.data.shape}"
        )
    if gx.data.dtype != x.data.dtype:
        gx = gx.astype(x.data.dtype)
    return gx


def run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor],
    retain_graph: bool = False,
    create_graph: bool = False,
    capture: Sequence[Tensor] | None = None,
) -> list | None:
    """Backpropagate ``root_grads`` from ``roots`` through the recorded graph.

    Without ``capture`` the gradients accumulate into the ``.grad`` of leaves that require
    one. With ``capture`` (a list of tensors) nothing is written to ``.grad``; the summed
    gradient reaching each captured tensor is returned instead (None where none arrives).
    """
    captured = None if capture is None else {id(t): None for t in capture}
    pending: dict[int, list] = {}  # id(tensor) -> [tensor, grad]; holds the tensor alive
    heap: list = []
    seen: set[int] = set()
    counter = itertools.count()
    given: set[int] = set()  # ids of gradients already stored as some leaf's .grad

    def deliver(x: Tensor, g: Tensor) -> None:
        if captured is not None and id(x) in captured:
            captured[id(x)] = _accumulate(captured[id(x)], g)
        f = x.creator
        if f is None:
            if captured is None and x.requires_grad:
                if x.grad is not None:
                    x.grad = x.grad + g
                elif create_graph:
                    x.grad = g
                else:
                    x.grad = _owned_grad(g, given)
            return
        entry = pending.get(id(x))
        if entry is not None:  # f was queued when x's first gradient arrived
            entry[1] = entry[1] + g
            return
        pending[id(x)] = [x, g]  # the first gradient is adopted, not copied
        if id(f) not in seen:
            seen.add(id(f))
            heapq.heappush(heap, (-f.generation, next(counter), f))

    with set_grad_enabled(create_graph):
        for root, g in zip(roots, root_grads):
            if not root.requires_grad:
                raise RuntimeError(
                    "backward: the tensor does not require grad and was not made by an op that does; "
                    "set requires_grad=True on a leaf it depends on"
                )
            deliver(root, g)
        while heap:
            f = heapq.heappop(heap)[2]
            inputs = f.inputs
            if inputs is None:
                raise RuntimeError(
                    f"backward: trying to backpropagate through {f.name} a second time; its saved "
                    "values were freed after the first backward. Pass retain_graph=True to the "
                    "first backward call if you need to call it twice."
                )
            if f._out_meta is None:  # one output: pending holds it (alive) and its gradient
                entry = pending.pop(id(f.outputs[0]()), None)
                if entry is None:
                    raise RuntimeError(
                        f"backward: {f.name} was called more than once; a Function instance records "
                        "one call, so create a new instance for each call"
                    )
                out, gy = entry  # ``out`` stays alive through backward
                gxs = f.backward(gy)
            else:
                gys = []
                for ref in f.outputs:
                    out = ref()
                    entry = pending.pop(id(out), None) if out is not None else None
                    gys.append(None if entry is None else entry[1])
                gys = [_zeros_for(f, s, d) if g is None else g for g, (s, d) in zip(gys, f._out_meta)]
                gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if len(gxs) != len(inputs):
                raise RuntimeError(f"{f.name}.backward returned {len(gxs)} gradients for {len(inputs)} inputs")
            for i, need in enumerate(f.needs_input_grad):
                gx = gxs[i]
                if need and gx is not None:
                    x = inputs[i]
                    if type(gx) is not Tensor or gx.data.shape != x.data.shape or gx.data.dtype != x.data.dtype:
                        gx = _check_input_grad(f, i, x, gx)  # the error, or a cast to x's dtype
                    deliver(x, gx)
            if not retain_graph:
                f.inputs = None
    if captured is None:
        return None
    return [captured[id(t)] for t in capture]


def _default_root_grad(out: Tensor, where: str) -> Tensor:
    if out.data.size != 1:
        raise RuntimeError(
            f"{where}: a gradient can be implied only for a scalar output, but the output has "
            f"shape {out.data.shape}; pass grad (a tensor of that shape) explicitly"
        )
    xp = backend.get_array_module(out.data)
    return _new_tensor(xp.ones(out.data.shape, dtype=out.data.dtype), False, None, 0)


def _owned_grad(g: Tensor, given: set) -> Tensor:
    """A leaf's first gradient, safe to change in place (``clip_grad_norm_``, optimizers):
    a view (a read-only broadcast of the upstream gradient, say) or a Tensor that another
    leaf already holds (both inputs of an add get the same one) is copied."""
    data = g.data
    if getattr(data, "base", None) is not None or id(g) in given:
        g = _new_tensor(data.copy(), False, None, 0)
    given.add(id(g))
    return g


def _as_grad(g: Any, out: Tensor, where: str) -> Tensor:
    if g is None:
        return _default_root_grad(out, where)
    g = g if isinstance(g, Tensor) else _new_tensor(_as_array_like(g, out), False, None, 0)
    if g.data.shape != out.data.shape:
        raise RuntimeError(f"{where}: grad has shape {g.data.shape} but the output has shape {out.data.shape}")
    if backend.get_array_module(g.data) is not backend.get_array_module(out.data):
        raise RuntimeError(f"{where}: grad is on {g.device} but the output is on {out.device}; "
                           f"move it with .to({str(out.device)!r})")
    return g


def backward(tensor: Tensor, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf), times ``grad``, into every leaf's ``.grad``."""
    run_backward([tensor], [_as_grad(grad, tensor, "backward")], retain_graph or create_graph, create_graph)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> tuple:
    """Return d(outputs)/d(inputs) (vector-Jacobian products with ``grad_outputs``).

    Leaves' ``.grad`` are left untouched. With ``create_graph=True`` the returned gradients
    are themselves differentiable (for gradient penalties, Hessian-vector products...).
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor) and len(outs) == 1:
        gos = [grad_outputs] if not isinstance(grad_outputs, list) else grad_outputs
    else:
        gos = list(grad_outputs)
    if len(gos) == 1 and len(outs) > 1 and gos[0] is None:
        gos = [None] * len(outs)
    if len(gos) != len(outs):
        raise ValueError(f"grad: got {len(gos)} grad_outputs for {len(outs)} outputs")
    for t in ins:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError("grad: every input must be a Tensor with requires_grad=True")
    retain = create_graph if retain_graph is None else retain_graph
    grads = run_backward(outs, [_as_grad(g, o, "grad") for g, o in zip(gos, outs)], retain, create_graph, ins)
    for t, g in zip(ins, grads):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: an input of shape {t.shape} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(grads)

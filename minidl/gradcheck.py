"""Gradient checking by central differences: ``gradcheck`` and ``gradgradcheck``.

For a function ``y = f(x_1, ..., x_n)`` and a random upstream gradient ``v`` (one per
output), the analytic gradient of the scalar ``s = sum_k <v_k, y_k>`` with respect to each
input is compared with central differences

    ds/dx_j ~ (s(x + eps e_j) - s(x - eps e_j)) / (2 eps)

element by element (``fast=False``: the whole Jacobian, J[i, j] = dy_i/dx_j, is compared,
one backward pass per output element against one pair of forward passes per input
element), or along one random direction ``u`` (``fast=True``: ``v^T J u`` against the
derivative of ``s`` along ``u``, two forward passes in all).

Besides the values it checks that each gradient has its input's shape and dtype, that a
zero upstream gradient gives zero gradients (a backward that ignores ``v`` fails), and
that backward is reentrant (two calls give identical results). Points where the function
has a kink (left and right derivatives disagree) are skipped, not failed.
"""
from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from . import backend
from .autograd import grad as autograd_grad
from .tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the numeric one (the message says where)."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _float_outputs(outs: Sequence) -> list[int]:
    return [k for k, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind == "f"]


class _Problem:
    """f, its inputs, which are checked, and the random upstream gradients."""

    def __init__(self, fn: Callable, inputs: Sequence, seed: int):
        self.fn = fn
        self.inputs = list(inputs)
        self.checked = [i for i, x in enumerate(self.inputs) if isinstance(x, Tensor) and x.requires_grad]
        if not self.checked:
            raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
        self.rng = np.random.default_rng(seed)
        outs = _as_tuple(fn(*self.inputs))
        self.out_index = _float_outputs(outs)
        if not self.out_index:
            raise ValueError("gradcheck: the function returned no floating-point Tensor")
        self.out_shapes = [outs[k].shape for k in self.out_index]
        self.vs = []
        for k in self.out_index:
            xp = backend.get_array_module(outs[k].data)
            v = self.rng.standard_normal(outs[k].shape)
            self.vs.append(Tensor(xp.asarray(v, dtype=outs[k].dtype)))

    def outputs(self, inputs=None) -> list:
        outs = _as_tuple(self.fn(*(self.inputs if inputs is None else inputs)))
        return [outs[k] for k in self.out_index]

    def analytic(self, vs=None) -> list[np.ndarray]:
        """Gradients of sum <v, y> w.r.t. each checked input, as NumPy float64 arrays."""
        vs = self.vs if vs is None else vs
        outs = self.outputs()
        live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        targets = [self.inputs[i] for i in self.checked]
        if not live:
            return [np.zeros(t.shape) for t in targets]
        grads = autograd_grad([o for o, _ in live], targets, [v for _, v in live], allow_unused=True)
        result = []
        for i, t, g in zip(self.checked, targets, grads):
            if g is None:
                result.append(np.zeros(t.shape))
                continue
            if g.shape != t.shape:
                raise GradcheckError(f"gradcheck: the gradient of input {i} has shape {g.shape}, but the input has shape {t.shape}")
            if g.dtype != t.dtype:
                raise GradcheckError(f"gradcheck: the gradient of input {i} has dtype {g.dtype}, but the input has dtype {t.dtype}")
            result.append(g.numpy().astype(np.float64))
        return result

    def scalar(self, i: int | None = None, delta=None, vs=None) -> float:
        """s = sum_k <v_k, y_k> with input i shifted by ``delta`` (or all inputs by the dict ``delta``).

        The shifted inputs still require grad, so that a function which differentiates
        internally (as ``gradgradcheck``'s does) can be evaluated.
        """
        vs = self.vs if vs is None else vs
        shifted = list(self.inputs)
        shifts = {i: delta} if i is not None else (delta or {})
        for j, d in shifts.items():
            x = self.inputs[j]
            xp = backend.get_array_module(x.data)
            shifted[j] = Tensor(x.data + xp.asarray(d, dtype=x.dtype), requires_grad=True)
        outs = self.outputs(shifted)
        return float(sum(float((o.data.astype(np.float64) * v.data.astype(np.float64)).sum()) for o, v in zip(outs, vs)))

    def outputs_flat(self, i: int, delta) -> np.ndarray:
        x = self.inputs[i]
        xp = backend.get_array_module(x.data)
        shifted = list(self.inputs)
        shifted[i] = Tensor(x.data + xp.asarray(delta, dtype=x.dtype), requires_grad=True)
        outs = self.outputs(shifted)
        return np.concatenate([o.numpy().astype(np.float64).ravel() for o in outs])


def _close(a, n, atol: float, rtol: float):
    return np.abs(a - n) <= atol + rtol * np.abs(n)


def _check_consistency(p: _Problem, first: list[np.ndarray]) -> None:
    again = p.analytic()
    for i, a, b in zip(p.checked, first, again):
        if not np.array_equal(a, b):
            raise GradcheckError(f"gradcheck: backward is not reentrant: two backward passes gave different gradients for input {i}")
    zeros = [Tensor(backend.get_array_module(v.data).zeros_like(v.data)) for v in p.vs]
    for i, g in zip(p.checked, p.analytic(zeros)):
        if np.any(g != 0):
            raise GradcheckError(
                f"gradcheck: a zero upstream gradient gave a non-zero gradient for input {i} "
                f"(max |g| = {np.abs(g).max():.3g}); the backward ignores its upstream gradient"
            )


def _full_check(p: _Problem, eps: float, atol: float, rtol: float) -> None:
    """Compare whole Jacobians: numeric columns against analytic rows."""
    n_out = int(sum(np.prod(s) for s in p.out_shapes))
    # analytic Jacobian rows, one backward per output element
    rows = {i: np.zeros((n_out, p.inputs[i].size)) for i in p.checked}
    xp = backend.get_array_module(p.vs[0].data)
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in p.out_shapes])
    for r in range(n_out):
        k = int(np.searchsorted(offsets, r, side="right") - 1)
        onehots = []
        for kk, v in enumerate(p.vs):
            e = xp.zeros(v.shape, dtype=v.dtype)
            if kk == k:
                e.reshape(-1)[r - offsets[k]] = 1
            onehots.append(Tensor(e))
        for i, g in zip(p.checked, p.analytic(onehots)):
            rows[i][r] = g.ravel()
    for i in p.checked:
        x = p.inputs[i]
        analytic = rows[i]
        for j in range(x.size):
            d = np.zeros(x.shape)
            d.reshape(-1)[j] = eps
            plus, minus = p.outputs_flat(i, d), p.outputs_flat(i, -d)
            numeric = (plus - minus) / (2 * eps)
            ok = _close(analytic[:, j], numeric, atol, rtol)
            if ok.all():
                continue
            centre = p.outputs_flat(i, 0 * d)
            left, right = (centre - minus) / eps, (plus - centre) / eps
            kink = ~_close(left, right, atol * 10, rtol * 10)
            bad = ~ok & ~kink
            if bad.any():
                r = int(np.argmax(np.where(bad, np.abs(analytic[:, j] - numeric), -1)))
                raise GradcheckError(
                    f"gradcheck: Jacobian mismatch for input {i} (shape {x.shape}) at element "
                    f"{np.unravel_index(j, x.shape)}, output element {r}: analytic {analytic[r, j]:.8g}, "
                    f"numeric {numeric[r]:.8g} (atol={atol}, rtol={rtol})"
                )


def _vjp_check(p: _Problem, analytic: list[np.ndarray], eps: float, atol: float, rtol: float) -> None:
    """Compare v^T J element by element with central differences of s = <v, y>."""
    for i, a in zip(p.checked, analytic):
        x = p.inputs[i]
        worst = None
        for j in range(x.size):
            d = np.zeros(x.shape)
            d.reshape(-1)[j] = eps
            sp, sm = p.scalar(i, d), p.scalar(i, -d)
            numeric = (sp - sm) / (2 * eps)
            aj = a.reshape(-1)[j]
            if _close(aj, numeric, atol, rtol):
                continue
            s0 = p.scalar(i, 0 * d)
            left, right = (s0 - sm) / eps, (sp - s0) / eps
            if not _close(left, right, atol * 10, rtol * 10):
                continue  # a kink: the derivative does not exist here
            err = abs(aj - numeric)
            if worst is None or err > worst[0]:
                worst = (err, j, aj, numeric)
        if worst is not None:
            _, j, aj, numeric = worst
            raise GradcheckError(
                f"gradcheck: gradient mismatch for input {i} (shape {x.shape}) at element "
                f"{np.unravel_index(j, x.shape)}: analytic {aj:.8g}, numeric {numeric:.8g} "
                f"(atol={atol}, rtol={rtol}); the upstream gradient was random"
            )


def _fast_check(p: _Problem, analytic: list[np.ndarray], eps: float, atol: float, rtol: float) -> None:
    """Compare v^T J u with the derivative of s = <v, y> along a random direction u."""
    us = {i: p.rng.standard_normal(p.inputs[i].shape) for i in p.checked}
    predicted = sum(float((a * us[i]).sum()) for i, a in zip(p.checked, analytic))
    plus = p.scalar(None, {i: eps * u for i, u in us.items()})
    minus = p.scalar(None, {i: -eps * u for i, u in us.items()})
    numeric = (plus - minus) / (2 * eps)
    if not _close(predicted, numeric, atol, rtol):
        raise GradcheckError(
            f"gradcheck (fast): directional derivative mismatch over inputs {p.checked}: "
            f"analytic v^T J u = {predicted:.8g}, numeric {numeric:.8g} (atol={atol}, rtol={rtol})"
        )


def gradcheck(
    fn: Callable,
    inputs: Sequence[Tensor] | Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    fast: bool = False,
    seed: int = 0,
    full_jacobian: bool | None = None,
) -> bool:
    """Check ``fn``'s analytic gradients against central differences.

    Args:
        fn: takes the inputs (Tensors) and returns a Tensor or a tuple of Tensors.
        inputs: the inputs; those with ``requires_grad=True`` are checked (use float64).
        eps, atol, rtol: step and tolerances: |analytic - numeric| <= atol + rtol |numeric|.
        fast: compare one random directional derivative v^T J u instead of every element.
        full_jacobian: compare the whole Jacobian (one backward per output element); by
            default on when the outputs have at most 256 elements, otherwise the
            vector-Jacobian product with a random v is compared element by element.

    Returns True, or raises ``GradcheckError`` naming the input, element and both values.
    """
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {i} is {x.dtype}; central differences need float64 to be reliable",
                stacklevel=2,
            )
    p = _Problem(fn, inputs, seed)
    analytic = p.analytic()
    _check_consistency(p, analytic)
    if fast:
        _fast_check(p, analytic, eps, atol, rtol)
        return True
    if full_jacobian is None:
        full_jacobian = sum(int(np.prod(s)) for s in p.out_shapes) <= 256
    if full_jacobian:
        _full_check(p, eps, atol, rtol)
    _vjp_check(p, analytic, eps, atol, rtol)
    return True


def gradgradcheck(
    fn: Callable,
    inputs: Sequence[Tensor] | Tensor,
    grad_outputs: Sequence[Tensor] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    fast: bool = False,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of x, v -> d<v, fn(x)>/dx (built with create_graph).

    The upstream gradients ``v`` (random float64 by default) are checked as inputs too.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor) and o.dtype.kind == "f"]
    rng = np.random.default_rng(seed + 1)
    if grad_outputs is None:
        grad_outputs = [
            Tensor(backend.get_array_module(o.data).asarray(rng.standard_normal(o.shape), dtype=o.dtype), requires_grad=True)
            for o in outs
        ]
    n_in = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n_in], args[n_in:]
        ys = [o for o in _as_tuple(fn(*xs)) if isinstance(o, Tensor) and o.dtype.kind == "f"]
        pairs = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
        grads = autograd_grad([y for y, _ in pairs], [xs[i] for i in checked], [v for _, v in pairs],
                              create_graph=True, allow_unused=True)
        # An input the function does not use has a zero gradient, on that input's device.
        return tuple(g if g is not None else Tensor(backend.get_array_module(xs[i].data).zeros_like(xs[i].data))
                     for i, g in zip(checked, grads))

    return gradcheck(first_derivative, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     fast=fast, seed=seed)

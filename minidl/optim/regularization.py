"""Regularization as small, composable pieces used around an optimizer step.

* Penalties added to the loss (differentiable): ``l1_penalty``, ``l2_penalty``.
* Gradient surgery between ``backward()`` and ``step()``: ``clip_grad_norm_``,
  ``clip_grad_value_``.
* Changes to the weights after ``step()``: ``max_norm_`` (a constraint),
  ``decoupled_weight_decay_`` (what AdamW does inside its step, usable with any optimizer).

    loss = criterion(model(x), y) + l1_penalty(model.parameters(), 1e-4)
    loss.backward()
    clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    max_norm_(model.fc.weight, 3.0, dim=0)
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = [
    "l1_penalty", "l2_penalty", "clip_grad_norm_", "clip_grad_value_", "max_norm_",
    "decoupled_weight_decay_",
]


def _param_list(params: Tensor | Iterable[Tensor], where: str) -> list[Tensor]:
    plist = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(plist):
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: element {i} of params is a {type(p).__name__}; expected a Tensor")
    return plist


def _check_weight(weight: float, where: str) -> None:
    if not weight >= 0.0:
        raise ValueError(f"{where}: the penalty weight must be >= 0, got {weight}")


def l1_penalty(params: Tensor | Iterable[Tensor], weight: float) -> Tensor:
    r"""The lasso penalty ``weight · Σ_p Σ_i |p_i|`` as a differentiable scalar Tensor.

    Its (sub)gradient ``weight · sign(θ)`` pulls every weight toward zero by the same
    amount whatever its size, so weights the data do not need reach (about) zero:
    L1 gives sparse solutions. Add it to the loss before ``backward()``.
    """
    _check_weight(weight, "l1_penalty")
    plist = _param_list(params, "l1_penalty")
    if not plist:
        raise ValueError("l1_penalty: got no parameters")
    total = plist[0].abs().sum()
    for p in plist[1:]:
        total = total + p.abs().sum()
    return total * weight


def l2_penalty(params: Tensor | Iterable[Tensor], weight: float) -> Tensor:
    r"""The ridge penalty ``(weight / 2) · Σ_p ‖p‖²`` as a differentiable scalar Tensor.

    Its gradient is ``weight · θ``, exactly the coupled ``weight_decay`` of ``SGD``/``Adam``:
    ``SGD(params, lr)`` on ``loss + l2_penalty(params, λ)`` takes the same steps as
    ``SGD(params, lr, weight_decay=λ)`` on ``loss``. L2 shrinks weights in proportion to
    their size, so they get small but rarely exactly zero.
    """
    _check_weight(weight, "l2_penalty")
    plist = _param_list(params, "l2_penalty")
    if not plist:
        raise ValueError("l2_penalty: got no parameters")
    total = (plist[0] * plist[0]).sum()
    for p in plist[1:]:
        total = total + (p * p).sum()
    return total * (0.5 * weight)


def clip_grad_norm_(
    params: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    r"""Rescale all gradients together so that their joint norm is at most ``max_norm``.

    ``N = ‖(‖g₁‖_p, ‖g₂‖_p, ...)‖_p`` over every parameter's gradient (``p = inf``: the
    largest |g|); if ``N > max_norm`` each gradient is multiplied by
    ``max_norm / (N + 1e-6)`` (PyTorch's rule). Parameters without a gradient are skipped.
    Returns ``N`` (before clipping) as a 0-d Tensor.
    """
    plist = _param_list(params, "clip_grad_norm_")
    norm_type = float(norm_type)
    if not (norm_type > 0 or math.isinf(norm_type)):
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    grads = [p.grad.data for p in plist if p.grad is not None]
    if not grads:
        return Tensor(np.asarray(0.0))
    xp = backend.get_array_module(grads[0])
    if math.isinf(norm_type):
        norms = xp.stack([xp.max(xp.abs(g)) if g.size else xp.asarray(0.0, g.dtype) for g in grads])
        total = xp.max(norms)
    else:
        norms = xp.stack([xp.sum(xp.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads])
        total = xp.sum(norms ** norm_type) ** (1.0 / norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {float(total)}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    # The factor stays on the device: float(total) would sync the GPU on every step.
    coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)
    for p in plist:
        if p.grad is not None:
            p.grad.data *= coef.astype(p.grad.data.dtype, copy=False)
    return Tensor(xp.asarray(total))


def clip_grad_value_(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    r"""Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for p in _param_list(params, "clip_grad_value_"):
        if p.grad is not None:
            xp = backend.get_array_module(p.grad.data)
            xp.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)


def max_norm_(weight: Tensor, max_norm: float, dim: int = 0, norm_type: float = 2.0, eps: float = 1e-7) -> Tensor:
    r"""Max-norm constraint: rescale each slice ``weight[i]`` along ``dim`` to norm <= ``max_norm``.

    For every index ``i`` along ``dim``, ``n_i = ‖weight[..., i, ...]‖_p`` over all other axes;
    slices with ``n_i > max_norm`` are multiplied by ``max_norm / (n_i + eps)`` (as
    ``torch.renorm``). With a ``Linear`` weight ``(out, in)`` and ``dim=0`` this bounds each
    unit's incoming weight vector (Srivastava et al.'s dropout + max-norm). Apply it after
    ``optimizer.step()``; changes ``weight.data`` in place and returns ``weight``.
    """
    if not isinstance(weight, Tensor):
        raise TypeError(f"max_norm_: expected a Tensor, got {type(weight).__name__}")
    if not max_norm >= 0:
        raise ValueError(f"max_norm_: max_norm must be >= 0, got {max_norm}")
    w = weight.data
    if w.ndim == 0:
        raise ValueError("max_norm_: the weight must have at least one dimension")
    if not -w.ndim <= dim < w.ndim:
        raise ValueError(f"max_norm_: dim {dim} is out of range for a weight of shape {w.shape}")
    xp = backend.get_array_module(w)
    axes = tuple(a for a in range(w.ndim) if a != dim % w.ndim)
    if math.isinf(norm_type):
        norms = xp.max(xp.abs(w), axis=axes, keepdims=True) if axes else xp.abs(w)
    else:
        norms = xp.sum(xp.abs(w) ** norm_type, axis=axes, keepdims=True) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + eps), 1.0).astype(w.dtype)
    with no_grad():
        w *= scale
    return weight


def decoupled_weight_decay_(params: Tensor | Iterable[Tensor], lr: float, weight_decay: float) -> None:
    r"""Decoupled weight decay ``θ ← θ (1 − lr · weight_decay)``, in place.

    Call it next to ``optimizer.step()`` to give any optimizer AdamW-style decay: the
    shrinkage does not pass through the optimizer's gradient statistics.
    """
    if not weight_decay >= 0:
        raise ValueError(f"decoupled_weight_decay_: weight_decay must be >= 0, got {weight_decay}")
    factor = 1.0 - lr * weight_decay
    for p in _param_list(params, "decoupled_weight_decay_"):
        p.data *= factor

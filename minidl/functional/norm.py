"""Normalization ops: ``batch_norm`` and ``layer_norm``, each one fused ``Function``.

Both normalise x over a set of axes A (M elements per group), then scale and shift:

    mu = mean_A(x),  var = mean_A((x - mu)^2)  (biased),  s = 1 / sqrt(var + eps)
    x_hat = (x - mu) s,   y = gamma x_hat + beta

and share one hand-derived backward. With g = dy * gamma (broadcast),

    dx     = s (g - mean_A(g) - x_hat mean_A(g x_hat))
           = (1/M) gamma s (M dy - sum_A dy - x_hat sum_A(dy x_hat))
    dgamma = sum over the other axes of dy x_hat,   dbeta = sum over the other axes of dy.

batch_norm: x (N, C, *), A = every axis but the channel axis 1, gamma/beta (C,).
layer_norm: x (*, *normalized_shape), A = the trailing normalized axes,
gamma/beta of shape normalized_shape.

The backward is computed on raw arrays for a plain ``backward()``; when a graph of the
backward is being recorded (``create_graph=True``) the same formula is built from Tensor
ops on the input, so gradients of gradients are exact.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import backend
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _new_tensor
from .reduce import mean as _mean
from .reduce import sum as _sum

__all__ = ["batch_norm", "layer_norm"]


def _constant(array) -> Tensor:
    return _new_tensor(array, False, None, 0)


class _Normalize(Function):
    """y = gamma x_hat + beta with x_hat normalised over ``axes`` (see the module docstring).

    Inputs: x, then gamma if ``has_weight``, then beta if ``has_bias``. ``param_shape`` is
    the shape gamma/beta broadcast to against x; ``param_axes`` are the axes of x that
    gamma's gradient is summed over.
    """

    def __init__(self, axes: tuple, param_shape: tuple, param_axes: tuple, eps: float,
                 has_weight: bool, has_bias: bool):
        self.axes, self.param_shape, self.param_axes = axes, param_shape, param_axes
        self.eps, self.has_weight, self.has_bias = eps, has_weight, has_bias

    def forward(self, x, *params):
        xp = backend.get_array_module(x)
        mu = x.mean(axis=self.axes, keepdims=True)
        y = x - mu
        var = (y * y).mean(axis=self.axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        # Kept for the backward (per-group statistics, small) and for the caller.
        self.mu, self.var, self.inv_std = mu, var, inv_std
        y *= inv_std  # x_hat, in place: y is a fresh array
        i = 0
        if self.has_weight:
            y *= params[i].reshape(self.param_shape)
            i += 1
        if self.has_bias:
            y += params[i].reshape(self.param_shape)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        if is_grad_enabled():
            return self._backward_differentiable(gy)
        return self._backward_arrays(gy)

    def _backward_arrays(self, gy):
        x = self.inputs[0].data
        g = gy.data
        x_hat = x - self.mu
        x_hat *= self.inv_std
        need = self.needs_input_grad
        grads = [None]
        i = 1
        g_xhat = g * x_hat  # feeds dgamma and, times gamma, the x_hat term of dx
        if self.has_weight:
            gamma = self.inputs[1].data.reshape(self.param_shape)
            if need[1]:
                grads.append(_constant(g_xhat.sum(axis=self.param_axes).reshape(self.inputs[1].shape)))
            else:
                grads.append(None)
            i += 1
        if self.has_bias:
            grads.append(_constant(g.sum(axis=self.param_axes).reshape(self.inputs[i].shape)) if need[i] else None)
        if need[0]:
            gg = g * gamma if self.has_weight else g
            if not self.has_weight:
                m2 = g_xhat.mean(axis=self.axes, keepdims=True)
            elif self.param_axes == self.axes:  # batch norm: gamma is constant over the axes A
                m2 = g_xhat.mean(axis=self.axes, keepdims=True) * gamma
            else:
                m2 = (g_xhat * gamma).mean(axis=self.axes, keepdims=True)
            gx = gg - gg.mean(axis=self.axes, keepdims=True)
            x_hat *= m2
            gx -= x_hat
            gx *= self.inv_std
            grads[0] = _constant(gx.astype(x.dtype, copy=False))
        return tuple(grads)

    def _backward_differentiable(self, gy):
        x = self.inputs[0]
        mu = _mean(x, self.axes, keepdims=True)
        d = x - mu
        var = _mean(d * d, self.axes, keepdims=True)
        inv_std = (var + self.eps) ** -0.5
        x_hat = d * inv_std
        need = self.needs_input_grad
        grads = []
        gamma = self.inputs[1].reshape(self.param_shape) if self.has_weight else None
        if need[0]:
            gg = gy * gamma if gamma is not None else gy
            gx = inv_std * (gg - _mean(gg, self.axes, keepdims=True)
                            - x_hat * _mean(gg * x_hat, self.axes, keepdims=True))
            grads.append(gx)
        else:
            grads.append(None)
        i = 1
        if self.has_weight:
            grads.append(_sum(gy * x_hat, self.param_axes).reshape(self.inputs[i].shape) if need[i] else None)
            i += 1
        if self.has_bias:
            grads.append(_sum(gy, self.param_axes).reshape(self.inputs[i].shape) if need[i] else None)
        return tuple(grads)


def _params(weight, bias) -> tuple:
    return tuple(p for p in (weight, bias) if p is not None)


def _shape_of(t) -> tuple:
    return tuple(t.shape) if t is not None else None


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization of x (N, C) or (N, C, *) per channel; returns y of x's shape.

    training (or no running statistics): normalise with the batch mean and the biased
    batch variance over every axis but 1, and, when running statistics are given, update
    them in place:  running_mean <- (1 - momentum) running_mean + momentum mean,
    running_var <- (1 - momentum) running_var + momentum var * n / (n - 1)  (unbiased),
    n = N * prod(spatial).  Evaluation: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta.
    ``running_mean``, ``running_var``, ``weight`` and ``bias`` have shape (C,).
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C) or (N, C, *), got {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(
                f"batch_norm: {name} has shape {tuple(t.shape)} but the input {tuple(x.shape)} "
                f"has {c} channels (expected ({c},))"
            )
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    axes = (0,) + tuple(range(2, x.ndim))
    param_shape = (1, c) + (1,) * (x.ndim - 2)
    use_batch_stats = training or running_mean is None
    if not use_batch_stats:
        xp = backend.get_array_module(x.data)
        inv_std = 1.0 / xp.sqrt(running_var.data + eps)
        scale = _constant(inv_std.reshape(param_shape).astype(x.dtype, copy=False))
        shift = _constant(running_mean.data.reshape(param_shape).astype(x.dtype, copy=False))
        y = (x - shift) * scale
        if weight is not None:
            y = y * weight.reshape(param_shape)
        if bias is not None:
            y = y + bias.reshape(param_shape)
        return y
    n = x.size // c
    if n <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input of shape {tuple(x.shape)}"
        )
    f = _Normalize(axes, param_shape, axes, eps, weight is not None, bias is not None)
    y = f(x, *_params(weight, bias))
    if training and running_mean is not None:
        rm, rv = running_mean.data, running_var.data
        # momentum may be a 0-d array on the device (BatchNorm's cumulative average)
        m = momentum if isinstance(momentum, (int, float)) else backend.get_array_module(rm).asarray(momentum, rm.dtype)
        batch_mean = f.mu.reshape(c)
        batch_var = f.var.reshape(c) * (n / (n - 1))
        rm[...] = (1.0 - m) * rm + m * batch_mean.astype(rm.dtype, copy=False)
        rv[...] = (1.0 - m) * rv + m * batch_var.astype(rv.dtype, copy=False)
    return y


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the trailing dimensions ``normalized_shape`` of x (*, *normalized_shape).

    y = gamma (x - mu) / sqrt(var + eps) + beta with mu and the biased var taken over those
    trailing dimensions for each leading index; gamma and beta have shape normalized_shape.
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[-k:]) != shape:
        raise ValueError(
            f"layer_norm: input of shape {tuple(x.shape)} does not end with normalized_shape {shape} "
            f"(expected (*, {', '.join(str(s) for s in shape)}))"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(t.shape)}, expected normalized_shape {shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    param_axes = tuple(range(x.ndim - k))
    f = _Normalize(axes, shape, param_axes, eps, weight is not None, bias is not None)
    return f(x, *_params(weight, bias))

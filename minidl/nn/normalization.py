"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``.

BatchNorm follows PyTorch exactly: in training it normalises with the batch mean and the
biased batch variance and updates the running statistics with the unbiased one,

    running_mean <- (1 - momentum) running_mean + momentum mean_batch
    running_var  <- (1 - momentum) running_var  + momentum var_batch * n / (n - 1)

(``momentum=None``: a cumulative average, momentum = 1 / num_batches_tracked); in
evaluation it normalises with the running statistics. ``weight`` (gamma) starts at 1,
``bias`` (beta) at 0; the buffers are ``running_mean``, ``running_var`` and
``num_batches_tracked``, so state dicts map 1:1 to PyTorch's.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import backend
from ..functional.norm import batch_norm, layer_norm
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _array(shape: tuple, fill: float, device: Any, dtype: Any):
    xp = backend.array_module_for(device or "cpu")
    dt = backend.default_dtype() if dtype is None else np.dtype(dtype)
    return xp.full(shape, fill, dtype=dt)


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d; subclasses say which input ranks they accept."""

    _ranks: tuple = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive integer, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features = int(num_features)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(_array((num_features,), 1.0, device, dtype))
            self.bias = Parameter(_array((num_features,), 0.0, device, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            xp = backend.array_module_for(device or "cpu")
            self.register_buffer("running_mean", Tensor(_array((num_features,), 0.0, device, dtype)))
            self.register_buffer("running_var", Tensor(_array((num_features,), 1.0, device, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, gamma = 1 and beta = 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input of shape {self._layout} with "
                f"C = {self.num_features}, got {tuple(x.shape)}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:  # cumulative average, kept on the device (no sync)
            momentum = 1.0 / (self.num_batches_tracked.data + 1.0)
        use_batch_stats = self.training or not self.track_running_stats
        y = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                       training=use_batch_stats, momentum=momentum, eps=self.eps)
        if counting:  # counted only once the batch was accepted
            self.num_batches_tracked.data[...] += 1
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over x (N, C) or (N, C, L), per channel C (see the module docstring)."""

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over x (N, C, H, W), per channel C (see the module docstring)."""

    _ranks = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """y = gamma (x - mu) / sqrt(var + eps) + beta over the trailing ``normalized_shape``
    dimensions of x (*, *normalized_shape); ``weight`` = 1 and ``bias`` = 0 of that shape."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_array(self.normalized_shape, 1.0, device, dtype))
            if bias:
                self.bias = Parameter(_array(self.normalized_shape, 0.0, device, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm({self.normalized_shape}): expected input of shape "
                f"(*, {', '.join(map(str, self.normalized_shape))}), got {tuple(x.shape)}"
            )
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

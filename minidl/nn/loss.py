"""Losses as modules: ``loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1); loss_fn(logits, y)``.

Each module holds its options and calls the function of the same name in
``minidl.functional.loss`` (where the formulas and shapes are documented). Class or element
weights (``weight``, ``pos_weight``) are registered as buffers, so they follow
``module.to(device)`` and appear in ``state_dict`` under PyTorch's keys. Options are
checked when the module is built, so a typo fails at construction, not at the first batch.
PyTorch's deprecated ``size_average``/``reduce`` arguments do not exist here.
"""
from __future__ import annotations

from typing import Any

from ..creation import tensor
from ..functional import loss as L
from ..tensor import Tensor
from .module import Module

__all__ = [
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss",
]


def _as_buffer(name: str, value: Any, class_weight: bool = False) -> Tensor | None:
    """``value`` (a Tensor, array or list, or None) as a constant Tensor for a buffer."""
    if value is None:
        return None
    t = value.detach() if isinstance(value, Tensor) else tensor(value)
    if t.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}")
    if class_weight and t.ndim != 1:
        raise ValueError(f"{name} must be a 1-d tensor of per-class weights (C,), got shape {t.shape}")
    return t


class _Loss(Module):
    """Holds ``reduction`` (checked at construction) for every loss module."""

    _reductions: tuple = L._REDUCTIONS

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        L._check_reduction(type(self).__name__, reduction, self._reductions)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """``F.cross_entropy``: logits (N, C) or (N, C, d1, ...) against class indices (N, d1, ...)
    or class probabilities of the logits' shape; weight (C,) is a buffer."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        L._check_ignore_index(type(self).__name__, ignore_index)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.register_buffer("weight", _as_buffer("CrossEntropyLoss: weight", weight, class_weight=True))
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        if self.ignore_index != -100:
            extra += f", ignore_index={self.ignore_index}"
        if self.label_smoothing:
            extra += f", label_smoothing={self.label_smoothing}"
        return extra


class NLLLoss(_Loss):
    """``F.nll_loss``: log-probabilities (N, C, ...) against class indices (N, ...); weight (C,) is a buffer."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        L._check_ignore_index(type(self).__name__, ignore_index)
        self.register_buffer("weight", _as_buffer("NLLLoss: weight", weight, class_weight=True))
        self.ignore_index = int(ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        return extra + (f", ignore_index={self.ignore_index}" if self.ignore_index != -100 else "")


class MSELoss(_Loss):
    """``F.mse_loss``: (input - target)^2, same shapes, reduced."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """``F.l1_loss``: |input - target|, same shapes, reduced."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """``F.huber_loss``: quadratic for |input - target| < delta, linear (slope delta) beyond."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = float(delta)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.huber_loss(input, target, self.reduction, self.delta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, delta={self.delta}"


class SmoothL1Loss(_Loss):
    """``F.smooth_l1_loss``: 0.5 d^2 / beta for d = |input - target| < beta, d - 0.5 beta beyond."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta}")
        self.beta = float(beta)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.smooth_l1_loss(input, target, self.reduction, self.beta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"


class BCELoss(_Loss):
    """``F.binary_cross_entropy``: probabilities in [0, 1] against targets of the same shape;
    weight (broadcast to the input) is a buffer."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _as_buffer("BCELoss: weight", weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``F.binary_cross_entropy_with_logits``: logits against targets of the same shape, stable
    for any logit; weight and pos_weight (e.g. (C,), broadcast along the last axis) are buffers."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction)
        self.register_buffer("weight", _as_buffer("BCEWithLogitsLoss: weight", weight))
        self.register_buffer("pos_weight", _as_buffer("BCEWithLogitsLoss: pos_weight", pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class KLDivLoss(_Loss):
    """``F.kl_div``: KL(target || exp(input)) with input = log-probabilities; ``reduction``
    may also be ``"batchmean"`` (the per-sample KL; PyTorch's default ``"mean"`` divides by
    every element instead)."""

    _reductions = L._REDUCTIONS + ("batchmean",)

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = bool(log_target)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return L.kl_div(input, target, self.reduction, self.log_target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, log_target={self.log_target}"


class CosineEmbeddingLoss(_Loss):
    """``F.cosine_embedding_loss``: 1 - cos for pairs labelled 1, max(0, cos - margin) for -1;
    inputs (N, D), labels (N,)."""

    def __init__(self, margin: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return L.cosine_embedding_loss(input1, input2, target, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, {super().extra_repr()}"


class MarginRankingLoss(_Loss):
    """``F.margin_ranking_loss``: max(0, -y (x1 - x2) + margin), all three of one shape."""

    def __init__(self, margin: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return L.margin_ranking_loss(input1, input2, target, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, {super().extra_repr()}"

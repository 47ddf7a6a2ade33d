"""Dropout layers: ``Dropout`` (elementwise) and ``Dropout2d`` (whole channels).

Inverted dropout: in training, elements are zeroed with probability p and the survivors
scaled by 1 / (1 - p), so the expected activation is unchanged; in evaluation
(``module.eval()``) the layer is the identity.
"""
from __future__ import annotations

from ..functional.dropout import _check_p, dropout, dropout2d
from ..tensor import Tensor
from .module import Module

__all__ = ["Dropout", "Dropout2d"]


class Dropout(Module):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p) per element, in training; y = x in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = _check_p(type(self).__name__, p)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Like Dropout, but one Bernoulli draw per channel of x (N, C, H, W): whole feature maps drop."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout2d(x, self.p, self.training)

"""Plain (full-batch) gradient descent."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["GD"]


class GD(Optimizer):
    r"""Steepest descent: ``θ ← θ − η ∇L(θ)``.

    Meant for full-batch gradients (the gradient of the loss over the whole training set),
    where it is the textbook method whose behaviour on ill-conditioned problems motivates
    momentum and adaptive methods. It is ``SGD`` with every option off; with mini-batch
    gradients it *is* stochastic gradient descent.

    Args:
        params: Tensors, or dicts (parameter groups) with ``"params"`` and their own ``lr``.
        lr: the step size η (>= 0).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3):
        super().__init__(params, {"lr": lr})

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        p.data -= group["lr"] * grad

"""Adagrad: per-coordinate step sizes from the sum of squared gradients."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), PyTorch's equations.

    At step t (counting from 1), with ``g`` the gradient (negated when ``maximize``)::

        g  ← g + λ θ                       (weight_decay λ)
        η_t = η / (1 + (t − 1) · lr_decay)
        G  ← G + g²                        (G starts at initial_accumulator_value)
        θ  ← θ − η_t · g / (√G + ε)

    Coordinates with large past gradients take small steps, rare ones large steps; the
    effective step only shrinks, which suits sparse problems and convex objectives.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict, index: int) -> None:
        super()._check_options(group, index)
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            if not group[key] >= 0.0:
                raise ValueError(f"Adagrad: invalid {key} {group[key]} in group {index}; expected >= 0")

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        state["step"] += 1
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        lr_t = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += g * g
        p.data -= lr_t * g / (xp.sqrt(state["sum"]) + group["eps"])

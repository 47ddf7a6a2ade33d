"""AdamW: Adam with weight decay decoupled from the gradient."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .adam import adam_moment_step, check_adam_options
from .optimizer import Optimizer

__all__ = ["AdamW"]


class AdamW(Optimizer):
    r"""AdamW (Loshchilov & Hutter, 2019) with optional AMSGrad, PyTorch's equations.

    At step t (from 1), with ``g`` the gradient (negated when ``maximize``)::

        θ ← θ (1 − η λ)                       (decoupled weight decay λ, default 1e-2)
        m ← β₁ m + (1 − β₁) g ;  v ← β₂ v + (1 − β₂) g²
        v̂ ← max(v̂, v)   if amsgrad
        θ ← θ − η · (m / (1 − β₁ᵗ)) / (√(v̂ / (1 − β₂ᵗ)) + ε)

    The decay shrinks θ directly instead of entering ``g`` (as Adam's ``weight_decay``
    does), so it is not rescaled by the adaptive denominator: every weight decays at the
    same rate whatever its gradient history.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict, index: int) -> None:
        super()._check_options(group, index)
        check_adam_options("AdamW", group, index)

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        g = -grad if group["maximize"] else grad
        p.data *= 1 - group["lr"] * group["weight_decay"]
        adam_moment_step(p, g, state, group, xp)

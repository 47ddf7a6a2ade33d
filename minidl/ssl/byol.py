"""BYOL (Grill et al., 2020): predict the target network's projection of one view from the
online network's projection of the other view; no negatives.

    online:  y = f(x), z = g(y), p = q(z)     trained by gradient descent
    target:  z' = g'(f'(x'))                  no gradient; EMA of (f, g)
    loss = byol_loss(p(view1), z'(view2)) + byol_loss(p(view2), z'(view1))   (2 - 2 cos each)
    theta' <- tau_k theta' + (1 - tau_k) theta,  tau_k = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2

The predictor q on the online side only, the stop-gradient on the target and the slowly
moving target together keep the representation from collapsing to a constant. tau rises
from tau_base to 1 by a cosine over training.
"""
from __future__ import annotations

from typing import Any

from ..autograd import no_grad
from ..functional.shape import concat
from ..nn import Module, Sequential
from ..tensor import Tensor
from .augment import TwoViews
from .encoders import feature_dim_of, prediction_head, projection_head
from .losses import byol_loss
from .momentum import cosine_momentum, ema_update_, momentum_copy
from .pretraining import as_images, run_pretraining

__all__ = ["BYOL", "pretrain"]


class BYOL(Module):
    """Online network (encoder, projector, predictor) and its EMA target (encoder, projector).

    Args:
        encoder: maps images to (N, encoder.feature_dim) features.
        projection_dim, hidden_dim: projector output and hidden sizes (the predictor uses
            the same hidden size).
        base_momentum: tau_base, the target's EMA momentum at the first step.
    """

    def __init__(self, encoder: Module, projection_dim: int = 64, hidden_dim: int = 128,
                 base_momentum: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"BYOL: base_momentum must be in [0, 1], got {base_momentum}")
        self.encoder = encoder
        self.online = Sequential(encoder, projection_head(feature_dim_of(encoder, "BYOL"), hidden_dim, projection_dim))
        self.predictor = prediction_head(projection_dim, hidden_dim)
        self.target = momentum_copy(self.online)
        self.base_momentum = float(base_momentum)
        self.current_momentum = float(base_momentum)

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        p = self.predictor(self.online(concat([view1, view2], axis=0)))  # predictions: view1 then view2
        with no_grad():
            z = self.target(concat([view2, view1], axis=0))              # each prediction's target: other view
        # byol_loss averages over both directions; BYOL sums them, hence the 2.
        return 2.0 * byol_loss(p, z)

    def after_step(self, step: int, total_steps: int) -> None:
        """Move the target towards the online network with the cosine-scheduled momentum."""
        self.current_momentum = cosine_momentum(step, total_steps, self.base_momentum)
        ema_update_(self.target, self.online, self.current_momentum)


def pretrain(encoder: Module, unlabeled_data: Any, epochs: int = 30, batch_size: int = 256, lr: float = 2e-3,
             seed: int | None = 0, progress: bool = True, *, base_momentum: float = 0.99, projection_dim: int = 64,
             hidden_dim: int = 128, weight_decay: float = 1e-5, views: TwoViews | None = None,
             history: list | None = None) -> Module:
    """Pretrain ``encoder`` with BYOL on ``unlabeled_data`` (N, C, H, W) and return it.

    Adam with a cosine-decayed learning rate; after each step the target follows the
    online network with momentum rising from ``base_momentum`` to 1. The mean loss of each
    epoch is appended to ``history`` if given.
    """
    images = as_images(unlabeled_data, "byol.pretrain")
    model = BYOL(encoder, projection_dim, hidden_dim, base_momentum)
    run_pretraining(model, images, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed, views=views, progress=progress, desc="BYOL", history=history)
    encoder.eval()
    return encoder

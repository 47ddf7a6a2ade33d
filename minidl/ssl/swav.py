"""SwAV (Caron et al., 2020): cluster the views online and predict one view's cluster
assignment (its code) from the other view.

    z = normalize(g(f(x)))                      unit embeddings (2N, D)
    c = normalize(prototypes)                   K learnable unit prototypes (K, D)
    scores = z c^T                              cosine to each prototype (N, K) per view
    codes = sinkhorn_knopp(scores, epsilon)     soft assignments, no gradient; every
                                                prototype used equally over the batch
    loss = swav_loss(scores1, scores2, temperature)
         = -(q2 . log softmax(scores1 / t) + q1 . log softmax(scores2 / t)) / 2

The equipartition constraint of Sinkhorn-Knopp is what prevents the trivial solution of
one cluster for everything. The prototypes are held still for the first
``freeze_prototypes_steps`` steps (as SwAV does for its first epoch).
"""
from __future__ import annotations

from typing import Any

from ..functional.loss import normalize
from ..functional.shape import concat
from ..nn import Linear, Module
from ..tensor import Tensor
from .augment import TwoViews
from .encoders import feature_dim_of, projection_head
from .losses import swav_loss
from .pretraining import as_images, run_pretraining

__all__ = ["SwAV", "pretrain"]


class SwAV(Module):
    """Encoder, projector and K prototypes; ``forward(view1, view2)`` is the swapped loss.

    Args:
        encoder: maps images to (N, encoder.feature_dim) features.
        projection_dim, hidden_dim: projector output and hidden sizes.
        num_prototypes: K.
        temperature, epsilon, sinkhorn_iters: of ``swav_loss`` / ``sinkhorn_knopp``.
        freeze_prototypes_steps: steps during which the prototypes get no update.
    """

    def __init__(self, encoder: Module, projection_dim: int = 64, hidden_dim: int = 128, num_prototypes: int = 30,
                 temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iters: int = 3,
                 freeze_prototypes_steps: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projection_head(feature_dim_of(encoder, "SwAV"), hidden_dim, projection_dim)
        self.prototypes = Linear(projection_dim, num_prototypes, bias=False)
        self.temperature, self.epsilon = float(temperature), float(epsilon)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.freeze_prototypes_steps = int(freeze_prototypes_steps)
        self.steps_done = 0

    def scores(self, x: Tensor) -> Tensor:
        """Cosine similarity of each image's embedding to each prototype: (N, K)."""
        z = normalize(self.projector(self.encoder(x)), dim=1)
        return z @ normalize(self.prototypes.weight, dim=1).T

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        n = view1.shape[0]
        # Frozen prototypes take no part in the graph, so they get no gradient and no update.
        self.prototypes.weight.requires_grad_(self.steps_done >= self.freeze_prototypes_steps)
        s = self.scores(concat([view1, view2], axis=0))
        return swav_loss(s[:n], s[n:], self.temperature, self.sinkhorn_iters, self.epsilon)

    def after_step(self, step: int, total_steps: int) -> None:
        self.steps_done = step


def pretrain(encoder: Module, unlabeled_data: Any, epochs: int = 30, batch_size: int = 256, lr: float = 2e-3,
             seed: int | None = 0, progress: bool = True, *, num_prototypes: int = 30, temperature: float = 0.1,
             epsilon: float = 0.05, sinkhorn_iters: int = 3, freeze_prototypes_steps: int = 0,
             projection_dim: int = 64, hidden_dim: int = 128, weight_decay: float = 1e-5,
             views: TwoViews | None = None, history: list | None = None) -> Module:
    """Pretrain ``encoder`` with SwAV on ``unlabeled_data`` (N, C, H, W) and return it.

    Adam with a cosine-decayed learning rate; the mean loss of each epoch is appended to
    ``history`` if given. Projector and prototypes are discarded.
    """
    images = as_images(unlabeled_data, "swav.pretrain")
    model = SwAV(encoder, projection_dim, hidden_dim, num_prototypes, temperature, epsilon, sinkhorn_iters,
                 freeze_prototypes_steps)
    run_pretraining(model, images, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed, views=views, progress=progress, desc="SwAV", history=history)
    encoder.eval()
    return encoder

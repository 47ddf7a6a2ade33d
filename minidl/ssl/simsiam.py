"""SimSiam (Chen & He, 2021): BYOL without the momentum network. Both branches share the
encoder; a stop-gradient on one branch is all that prevents collapse.

    z = g(f(x)),  p = q(z)
    loss = simsiam_loss(p(view1), z(view2)) / 2 + simsiam_loss(p(view2), z(view1)) / 2
         = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2

The predictor q is a bottleneck MLP; the loss reaches -1 when predictions align with the
other view's projections.
"""
from __future__ import annotations

from typing import Any

from ..functional.shape import concat
from ..nn import Module
from ..tensor import Tensor
from .augment import TwoViews
from .encoders import feature_dim_of, prediction_head, projection_head
from .losses import simsiam_loss
from .pretraining import as_images, run_pretraining

__all__ = ["SimSiam", "pretrain"]


class SimSiam(Module):
    """Encoder, projector and bottleneck predictor; ``forward(view1, view2)`` is the loss.

    Args:
        encoder: maps images to (N, encoder.feature_dim) features.
        projection_dim, hidden_dim: the projector's output and hidden sizes.
        predictor_dim: the predictor's bottleneck width (SimSiam: projection_dim / 4).
    """

    def __init__(self, encoder: Module, projection_dim: int = 64, hidden_dim: int = 128,
                 predictor_dim: int = 16) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projection_head(feature_dim_of(encoder, "SimSiam"), hidden_dim, projection_dim)
        self.predictor = prediction_head(projection_dim, predictor_dim)

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        n = view1.shape[0]
        z = self.projector(self.encoder(concat([view1, view2], axis=0)))
        p = self.predictor(z)
        # simsiam_loss detaches its second argument: the stop-gradient.
        swapped = concat([z[n:], z[:n]], axis=0)
        return simsiam_loss(p, swapped)


def pretrain(encoder: Module, unlabeled_data: Any, epochs: int = 30, batch_size: int = 256, lr: float = 2e-3,
             seed: int | None = 0, progress: bool = True, *, projection_dim: int = 64, hidden_dim: int = 128,
             predictor_dim: int = 16, weight_decay: float = 1e-5, views: TwoViews | None = None,
             history: list | None = None) -> Module:
    """Pretrain ``encoder`` with SimSiam on ``unlabeled_data`` (N, C, H, W) and return it.

    Adam with a cosine-decayed learning rate; the mean loss of each epoch is appended to
    ``history`` if given. Projector and predictor are discarded.
    """
    images = as_images(unlabeled_data, "simsiam.pretrain")
    model = SimSiam(encoder, projection_dim, hidden_dim, predictor_dim)
    run_pretraining(model, images, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed, views=views, progress=progress, desc="SimSiam", history=history)
    encoder.eval()
    return encoder

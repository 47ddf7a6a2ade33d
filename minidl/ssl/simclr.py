"""SimCLR (Chen et al., 2020): contrast two augmented views of each image against the
other images of the batch.

    h = f(x)              the encoder (kept after pretraining)
    z = g(h)              the projection head (thrown away after pretraining)
    loss = nt_xent(z(view1), z(view2), temperature)

Both views go through the encoder in one batch of 2N images, so BatchNorm sees both.
"""
from __future__ import annotations

from typing import Any

from ..functional.shape import concat
from ..nn import Module
from ..tensor import Tensor
from .augment import TwoViews
from .encoders import feature_dim_of, projection_head
from .losses import nt_xent
from .pretraining import as_images, run_pretraining

__all__ = ["SimCLR", "pretrain"]


class SimCLR(Module):
    """The encoder plus SimCLR's projection head; ``forward(view1, view2)`` is the NT-Xent loss.

    Args:
        encoder: maps (N, ...) images to (N, encoder.feature_dim) features.
        projection_dim, hidden_dim: sizes of the projection head's output and hidden layer.
        temperature: NT-Xent's temperature (> 0).
    """

    def __init__(self, encoder: Module, projection_dim: int = 64, hidden_dim: int = 128,
                 temperature: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projection_head(feature_dim_of(encoder, "SimCLR"), hidden_dim, projection_dim)
        self.temperature = float(temperature)

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        n = view1.shape[0]
        z = self.projector(self.encoder(concat([view1, view2], axis=0)))
        return nt_xent(z[:n], z[n:], self.temperature)


def pretrain(encoder: Module, unlabeled_data: Any, epochs: int = 30, batch_size: int = 256, lr: float = 2e-3,
             seed: int | None = 0, progress: bool = True, *, temperature: float = 0.2, projection_dim: int = 64,
             hidden_dim: int = 128, weight_decay: float = 1e-5, views: TwoViews | None = None,
             history: list | None = None) -> Module:
    """Pretrain ``encoder`` with SimCLR on ``unlabeled_data`` (N, C, H, W) and return it.

    Adam with a cosine-decayed learning rate. The temperature defaults to 0.2 (better than
    0.5 for the default ``DigitEncoder`` after 30 epochs of batch 256; ``python -m minidl
    ssl`` uses 0.5 with a wider encoder and 60 epochs of batch 128, the better setting on its
    validation images); ``views`` makes the two views of a batch
    (default: ``TwoViews(digits_augmentation())``); the mean loss of each epoch is
    appended to ``history`` if given. The projection head is discarded.
    """
    images = as_images(unlabeled_data, "simclr.pretrain")
    model = SimCLR(encoder, projection_dim, hidden_dim, temperature)
    run_pretraining(model, images, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed, views=views, progress=progress, desc="SimCLR", history=history)
    encoder.eval()
    return encoder

"""The networks of self-supervised learning: an encoder for small digit images, and the
MLP heads (projection, prediction) that the methods put on top of it.

The encoder gives the representation ``h`` that is kept and evaluated after pretraining;
the projection head maps ``h`` to the space where the loss compares views (SimCLR found
that features before the head transfer better than after it); BYOL and SimSiam add a
prediction head on the online branch only.
"""
from __future__ import annotations

from .. import nn
from ..nn import Module
from ..tensor import Tensor

__all__ = ["DigitEncoder", "projection_head", "prediction_head", "feature_dim_of"]


class DigitEncoder(nn.Module):
    """A small convolutional encoder for (N, C, S, S) images (the 8x8 digits: C = 1, S = 8).

        conv 3x3 (C -> w, padding 1) - BN - ReLU                    (N, w, S, S)
        conv 3x3 (w -> 2w, stride 2, padding 1) - BN - ReLU         (N, 2w, S/2, S/2)
        flatten - Linear(2w (S/2)^2, feature_dim) - BN - ReLU       (N, feature_dim)

    Args:
        in_channels: C.
        image_size: S (even, at least 2).
        width: w, channels of the first convolution.
        feature_dim: size of the representation (``self.feature_dim``).

    Output: (N, feature_dim) features, non-negative (after the last ReLU).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8, width: int = 16, feature_dim: int = 64) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DigitEncoder: {name} must be a positive integer, got {value!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2 or image_size % 2:
            raise ValueError(f"DigitEncoder: image_size must be an even integer >= 2, got {image_size!r}")
        self.in_channels = in_channels
        self.image_size = image_size
        self.feature_dim = feature_dim
        half = image_size // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * half * half, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"DigitEncoder: expected images (N, {', '.join(map(str, expected))}), got shape "
                             f"{tuple(x.shape)}")
        return self.features(x)


def feature_dim_of(encoder: Module, op: str) -> int:
    """``encoder.feature_dim``, the width of its output features, which the heads need;
    a clear error (naming ``op``) when the encoder does not declare it."""
    dim = getattr(encoder, "feature_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{op}: the encoder must have an integer attribute feature_dim (the size of "
                         f"its output features), got {dim!r}")
    return dim


def _check_dims(op: str, **dims: int) -> None:
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")


def projection_head(in_dim: int, hidden_dim: int = 128, out_dim: int = 64, batch_norm: bool = True) -> nn.Sequential:
    """The MLP g(h) = W2 ReLU(BN(W1 h)): (N, in_dim) -> (N, out_dim).

    SimCLR's and MoCo v2's projection head (``batch_norm=False`` gives MoCo v2's plain
    Linear-ReLU-Linear); BYOL's projector has the same form.
    """
    _check_dims("projection_head", in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim)
    layers = [nn.Linear(in_dim, hidden_dim)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)


def prediction_head(dim: int, hidden_dim: int = 32) -> nn.Sequential:
    """The predictor q(z) = W2 ReLU(BN(W1 z)) of BYOL and SimSiam: (N, dim) -> (N, dim).

    SimSiam makes it a bottleneck (``hidden_dim`` = dim / 4); BYOL widens it. It sits on
    the online branch only; the asymmetry, with the stop-gradient, is what prevents
    collapse.
    """
    _check_dims("prediction_head", dim=dim, hidden_dim=hidden_dim)
    return nn.Sequential(nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim))

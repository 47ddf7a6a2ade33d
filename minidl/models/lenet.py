"""LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, sized for 8x8 to 32x32 images.

    conv 5x5 (C -> 6, padding 2) - ReLU - max-pool 2     (N, 6,  s1, s1),  s1 = S // 2
    conv 5x5 (6 -> 16, padding p2) - ReLU - max-pool 2    (N, 16, s2, s2),  s2 = (s1 + 2 p2 - 4) // 2
    flatten - Linear(16 s2^2, 120) - ReLU - Linear(120, 84) - ReLU - Linear(84, K)

The second convolution is unpadded (p2 = 0) as in the original when the image is large
enough (S = 28: 14 -> 10 -> 5, the classic 16 x 5 x 5 = 400 features); for small images
(S < 24, e.g. the 8x8 digits: 4 -> 4 -> 2) it is padded by 2 so that the map does not vanish.
Parameter names (``features.0.weight``, ``classifier.4.bias``, ...) match a PyTorch model
with the same ``features``/``classifier`` Sequentials.
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import nn
from ..tensor import Tensor

__all__ = ["LeNet5"]


class LeNet5(nn.Module):
    """LeNet-5 classifier for (N, in_channels, input_size, input_size) images.

    Args:
        in_channels: image channels C (1 for digits/MNIST, 3 for CIFAR-10).
        num_classes: number of classes K.
        input_size: image height = width S (at least 4).
        channels: output channels of the two convolutions (LeNet: (6, 16)).
        hidden: widths of the two hidden fully connected layers (LeNet: (120, 84)).

    Output: (N, K) logits.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
                 channels: Sequence[int] = (6, 16), hidden: Sequence[int] = (120, 84)) -> None:
        super().__init__()
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4:
            raise ValueError(f"LeNet5: input_size must be an integer >= 4, got {input_size!r}")
        if len(channels) != 2 or len(hidden) != 2:
            raise ValueError(f"LeNet5: channels and hidden take two widths each, got "
                             f"{tuple(channels)} and {tuple(hidden)}")
        c1, c2 = (int(c) for c in channels)
        h1, h2 = (int(h) for h in hidden)
        s1 = input_size // 2
        p2 = 0 if s1 >= 12 else 2
        s2 = (s1 + 2 * p2 - 4) // 2
        self.in_channels = in_channels
        self.input_size = input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=p2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c2 * s2 * s2, h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.ReLU(),
            nn.Linear(h2, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"LeNet5: expected images (N, {', '.join(map(str, expected))}), got "
                             f"shape {tuple(x.shape)}; build LeNet5(in_channels=..., "
                             "input_size=...) for other sizes")
        h = self.features(x)
        return self.classifier(h.reshape(h.shape[0], -1))

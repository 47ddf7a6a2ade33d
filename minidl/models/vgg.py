"""VGG (Simonyan and Zisserman, 2014), small and configurable: stacks of 3x3 convolutions
(padding 1, so they keep the size) separated by 2x2 max pools, then fully connected layers.

For a configuration such as ``(32, 32, "M", 64, 64, "M")`` and input (N, C, S, S)::

    features:   for each entry  c   -> Conv2d(prev, c, 3, padding=1) [- BatchNorm2d(c)] - ReLU
                for each "M"        -> MaxPool2d(2)                      (size S -> S // 2)
    flatten:    (N, c_last * s * s),  s = S // 2^(number of "M")
    classifier: Linear(c_last s^2, hidden) - ReLU - Dropout(p) - Linear(hidden, K)

The sub-module names (``features``, ``classifier``) follow torchvision's VGG, so a
state dict of the same layout copies across by key (``features.0.weight``, ...).
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import nn
from ..tensor import Tensor

__all__ = ["VGG", "VGG_CONFIGS"]

VGG_CONFIGS: dict[str, tuple] = {
    "vgg_tiny": (16, "M", 32, "M"),                                        # 8x8 digits, seconds to train
    "vgg_small": (32, 32, "M", 64, 64, "M"),                               # 8x8 digits
    "vgg_cifar": (32, 32, "M", 64, 64, "M", 128, 128, "M"),                # 3x32x32
}


class VGG(nn.Module):
    """A VGG-style classifier for (N, in_channels, input_size, input_size) images.

    Args:
        cfg: a tuple of conv widths and ``"M"`` (2x2 max pool), or a name in ``VGG_CONFIGS``.
        in_channels: image channels C. num_classes: K. input_size: image side S; it must
            survive the pools (S // 2^m >= 1 for m pools).
        hidden: width of the hidden fully connected layer.
        batch_norm: put a BatchNorm2d after each convolution (its conv then has no bias).
        dropout: dropout probability before the last Linear layer.

    Output: (N, K) logits. ``features(x)`` alone gives the (N, c_last, s, s) maps.
    """

    def __init__(self, cfg: Sequence | str = "vgg_small", in_channels: int = 1, num_classes: int = 10,
                 input_size: int = 8, hidden: int = 128, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(cfg, str):
            if cfg not in VGG_CONFIGS:
                raise ValueError(f"VGG: unknown configuration {cfg!r}; choose one of {', '.join(VGG_CONFIGS)} "
                                 "or pass a tuple of widths and 'M'")
            cfg = VGG_CONFIGS[cfg]
        cfg = tuple(cfg)
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("input_size", input_size), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VGG: {name} must be a positive integer, got {value!r}")
        if not any(v != "M" for v in cfg):
            raise ValueError(f"VGG: cfg needs at least one convolution width, got {cfg}")
        for v in cfg:
            if v != "M" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"VGG: cfg entries must be positive widths or 'M', got {v!r} in {cfg}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"VGG: dropout must be in [0, 1), got {dropout}")
        pools = sum(1 for v in cfg if v == "M")
        side = input_size // 2 ** pools
        if side < 1:
            raise ValueError(f"VGG: {pools} max pools shrink a {input_size}x{input_size} image to nothing; "
                             "use fewer 'M' entries or larger images")
        layers: list[nn.Module] = []
        width = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(width, v, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            width = v
        self.cfg = cfg
        self.in_channels = in_channels
        self.input_size = input_size
        self.feature_dim = width * side * side
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Linear(self.feature_dim, hidden), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"VGG: expected images (N, {', '.join(map(str, expected))}), got shape "
                             f"{tuple(x.shape)}; build VGG(in_channels=..., input_size=...) for other sizes")
        h = self.features(x)
        return self.classifier(h.reshape(h.shape[0], -1))

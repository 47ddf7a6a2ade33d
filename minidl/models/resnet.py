"""ResNet (He et al., 2016) with basic blocks, configurable depth and width, in the CIFAR
layout: a 3x3 stem, then stages of residual blocks, global average pooling and a Linear head.

A basic block with input x (N, C_in, H, W), width C and stride s::

    y = ReLU(BN2(conv2(ReLU(BN1(conv1(x))))) + shortcut(x))       (N, C, H / s, W / s)

conv1 is 3x3 with stride s, conv2 3x3 with stride 1; the shortcut is the identity, or
``downsample`` = 1x1 conv with stride s + BatchNorm when the shape changes.

The network, for ``blocks = (n_1, ..., n_k)`` and ``widths = (w_1, ..., w_k)``::

    conv1 3x3 (C -> w_1) - bn1 - ReLU
    layer1 .. layerk: n_i blocks of width w_i; the first block of stage i > 1 has stride 2
    avgpool (global) - flatten - fc (w_k -> K)

Depth 6n + 2 with three stages of n blocks is the CIFAR family of the paper (ResNet-20:
n = 3). The 8x8 digits go 8 -> 4 -> 2 through three stages. Parameter names (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``) follow torchvision.
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import nn
from ..tensor import Tensor

__all__ = ["BasicBlock", "ResNet", "resnet"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a residual connection (see the module docstring).

    ``BasicBlock(in_channels, out_channels, stride=1)``: input (N, in_channels, H, W),
    output (N, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """A residual network of basic blocks for (N, in_channels, H, W) images.

    Args:
        blocks: blocks per stage, e.g. ``(1, 1, 1)`` (ResNet-8) or ``(3, 3, 3)`` (ResNet-20).
        widths: channels per stage, as many as ``blocks``, e.g. ``(16, 32, 64)``.
        in_channels: image channels C (1 for digits, 3 for CIFAR-10). num_classes: K.

    Output: (N, K) logits. ``features(x)`` gives the (N, widths[-1]) pooled features that
    ``fc`` reads. Any image size works: the global pool removes the spatial dimensions.
    """

    def __init__(self, blocks: Sequence[int] = (1, 1, 1), widths: Sequence[int] = (16, 32, 64),
                 in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        blocks, widths = tuple(blocks), tuple(widths)
        if not blocks or len(blocks) != len(widths):
            raise ValueError(f"ResNet: blocks and widths need one entry per stage (at least one), got "
                             f"blocks={blocks} and widths={widths}")
        for name, values in (("blocks", blocks), ("widths", widths), ("in_channels", (in_channels,)),
                             ("num_classes", (num_classes,))):
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"ResNet: {name} must be positive integers, got {values if len(values) > 1 else values[0]!r}")
        self.in_channels = in_channels
        self.blocks, self.widths = blocks, widths
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        width = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(width, w, stride)] + [BasicBlock(w, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            width = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = width
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The pooled features (N, widths[-1]) before ``fc``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet: expected images (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        h = self.relu(self.bn1(self.conv1(x)))
        for i in range(len(self.blocks)):
            h = getattr(self, f"layer{i + 1}")(h)
        return self.avgpool(h).reshape(h.shape[0], -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def resnet(depth: int = 8, width: int = 16, in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """The CIFAR-style ResNet of ``depth`` = 6n + 2 layers: three stages of n basic blocks,
    widths (width, 2 width, 4 width). ``resnet(20)`` is the paper's ResNet-20 (0.27M parameters)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth!r}")
    n = (depth - 2) // 6
    return ResNet((n, n, n), (width, 2 * width, 4 * width), in_channels, num_classes)

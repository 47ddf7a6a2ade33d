"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d layers: PyTorch parity, gradient checks, errors."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import assert_parity

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for pooling layers")

CASES = [
    (lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: torch.nn.MaxPool2d(3, stride=2, padding=1)),
    (lambda: nn.MaxPool2d(2, stride=1, dilation=2), lambda: torch.nn.MaxPool2d(2, stride=1, dilation=2)),
    (lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1), lambda: torch.nn.AvgPool2d(3, stride=2, padding=1)),
    (lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
     lambda: torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)),
    (lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: torch.nn.AdaptiveAvgPool2d((3, 2))),
]
IDS = ["max2", "max3s2p1", "max_dilated", "avg2", "avg3s2p1", "avg_exclude_pad", "adaptive1", "adaptive3x2"]


@pytest.mark.parametrize("make,make_torch", CASES, ids=IDS)
def test_pooling_matches_torch(make, make_torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    assert_parity(make(), make_torch(), x)


@pytest.mark.parametrize("make,make_torch", CASES, ids=IDS)
def test_pooling_gradcheck(make, make_torch):
    x = minidl.tensor(np.random.default_rng(1).standard_normal((1, 2, 5, 4)), requires_grad=True)
    assert minidl.gradcheck(make(), [x])


def test_pooling_unbatched_and_return_indices():
    x = minidl.randn(3, 6, 6)
    assert nn.MaxPool2d(2)(x).shape == (3, 3, 3)
    assert nn.AvgPool2d(2)(x).shape == (3, 3, 3)
    assert nn.AdaptiveAvgPool2d(2)(x).shape == (3, 2, 2)
    y, idx = nn.MaxPool2d(2, return_indices=True)(minidl.tensor(np.arange(16.0).reshape(1, 1, 4, 4)))
    np.testing.assert_array_equal(idx.numpy(), [[[[5, 7], [13, 15]]]])


def test_pooling_errors_and_repr():
    with pytest.raises(ValueError, match="MaxPool2d: ceil_mode=True is not supported"):
        nn.MaxPool2d(2, ceil_mode=True)
    with pytest.raises(ValueError, match=r"AvgPool2d: expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(4, 4\)"):
        nn.AvgPool2d(2)(minidl.randn(4, 4))
    assert repr(nn.AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d(output_size=1)"

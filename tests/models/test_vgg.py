"""VGG: shapes for digits and CIFAR-sized inputs, PyTorch parity, a gradient check, errors."""
import numpy as np
import pytest

import minidl
from minidl.models import VGG, VGG_CONFIGS


@pytest.mark.parametrize("cfg,channels,size,feature_dim", [
    ("vgg_tiny", 1, 8, 32 * 2 * 2), ("vgg_small", 1, 8, 64 * 2 * 2), ("vgg_cifar", 3, 32, 128 * 4 * 4)])
def test_vgg_forward_shapes(cfg, channels, size, feature_dim):
    m = VGG(cfg, in_channels=channels, input_size=size, num_classes=7)
    assert m.feature_dim == feature_dim == m.classifier[0].in_features
    assert m(minidl.randn(3, channels, size, size)).shape == (3, 7)


def test_vgg_layout_follows_the_configuration():
    m = VGG((8, "M", 16, 16, "M"), batch_norm=False, input_size=8)
    kinds = [type(x).__name__ for x in m.features]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert m.features[0].bias is not None
    bn = VGG((8, "M"), batch_norm=True, input_size=8)
    assert [type(x).__name__ for x in bn.features] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert bn.features[0].bias is None
    assert set(VGG_CONFIGS) >= {"vgg_tiny", "vgg_small", "vgg_cifar"}


def test_vgg_matches_torch_in_float64():
    torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference")
    m = VGG((4, "M", 6, "M"), input_size=8, hidden=12, num_classes=3, batch_norm=True).double()
    tn = torch.nn
    ref = tn.Module()
    ref.features = tn.Sequential(tn.Conv2d(1, 4, 3, padding=1, bias=False), tn.BatchNorm2d(4), tn.ReLU(),
                                 tn.MaxPool2d(2), tn.Conv2d(4, 6, 3, padding=1, bias=False), tn.BatchNorm2d(6),
                                 tn.ReLU(), tn.MaxPool2d(2))
    ref.classifier = tn.Sequential(tn.Linear(24, 12), tn.ReLU(), tn.Linear(12, 3))
    ref.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    ref.double()
    x = np.random.default_rng(1).standard_normal((5, 1, 8, 8))
    for train in (True, False):
        m.train(train)
        ref.train(train)
        ours = m(minidl.tensor(x)).numpy()
        h = ref.features(torch.tensor(x))
        theirs = ref.classifier(h.reshape(5, -1)).detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_vgg_gradcheck_tiny_instance():
    m = VGG((2, "M"), input_size=4, hidden=3, num_classes=2, batch_norm=True).double()
    x = minidl.tensor(np.random.default_rng(0).standard_normal((3, 1, 4, 4)), requires_grad=True)
    conv = m.features[0]

    def run(x, w):     # the checker perturbs copies of its inputs: put the copy of w in the layer
        saved = conv._parameters["weight"]
        conv._parameters["weight"] = w
        try:
            return m(x)
        finally:
            conv._parameters["weight"] = saved

    assert minidl.gradcheck(run, [x, conv.weight.detach().requires_grad_()])


def test_vgg_bad_configuration_and_input_errors():
    with pytest.raises(ValueError, match="unknown configuration"):
        VGG("vgg_huge")
    with pytest.raises(ValueError, match="shrink"):
        VGG((8, "M", "M", "M", "M"), input_size=8)
    with pytest.raises(ValueError, match="cfg entries"):
        VGG((8, -1))
    with pytest.raises(ValueError, match=r"expected images \(N, 1, 8, 8\)"):
        VGG("vgg_tiny")(minidl.randn(2, 1, 16, 16))

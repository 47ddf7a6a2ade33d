"""LeNet5: shapes for 8x8 to 32x32 inputs, PyTorch parity (forward and gradients), errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.models import LeNet5

torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference for LeNet5")


def _torch_lenet(model):
    """The same architecture in PyTorch, with the minidl model's weights copied in."""
    nn = torch.nn
    conv2 = model.features[3]
    net = nn.Module()
    net.features = nn.Sequential(
        nn.Conv2d(model.in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=conv2.padding[0] if isinstance(conv2.padding, tuple) else conv2.padding),
        nn.ReLU(), nn.MaxPool2d(2))
    fc1 = model.classifier[0]
    net.classifier = nn.Sequential(nn.Linear(fc1.in_features, 120), nn.ReLU(), nn.Linear(120, 84),
                                   nn.ReLU(), nn.Linear(84, 10))
    sd = {k: torch.tensor(v.astype(np.float64)) for k, v in model.state_dict().items()}
    net.load_state_dict(sd)            # same keys: features.0.weight, classifier.4.bias, ...
    net.double()

    def forward(x):
        h = net.features(x)
        return net.classifier(h.reshape(h.shape[0], -1))

    return net, forward


@pytest.mark.parametrize("size,features", [(8, 16 * 2 * 2), (28, 16 * 5 * 5), (32, 16 * 6 * 6)])
def test_lenet_shapes_adapt_to_the_input_size(size, features):
    m = LeNet5(in_channels=3 if size == 32 else 1, input_size=size)
    assert m.classifier[0].in_features == features
    x = minidl.randn(2, m.in_channels, size, size)
    assert m(x).shape == (2, 10)


def test_lenet_parameter_names_and_count_match_the_classic_model():
    m = LeNet5(input_size=28)
    names = [n for n, _ in m.named_parameters()]
    assert names[:2] == ["features.0.weight", "features.0.bias"] and names[-1] == "classifier.4.bias"
    # classic LeNet-5 on 28x28 with padding 2: 61,706 parameters
    assert m.num_parameters() == 61706


@pytest.mark.parametrize("size", [8, 28])
def test_lenet_forward_and_gradients_match_torch(size):
    m = LeNet5(input_size=size).double()
    net, forward = _torch_lenet(m)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, size, size))
    y = np.array([1, 7, 3])
    out = m(minidl.tensor(x))
    loss = F.cross_entropy(out, minidl.tensor(y))
    loss.backward()
    tout = forward(torch.tensor(x))
    tloss = torch.nn.functional.cross_entropy(tout, torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(net.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)


def test_lenet_rejects_the_wrong_image_size_clearly():
    m = LeNet5(input_size=8)
    with pytest.raises(ValueError, match=r"LeNet5: expected images \(N, 1, 8, 8\), got shape \(2, 1, 28, 28\)"):
        m(minidl.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="input_size"):
        LeNet5(input_size=3)

"""Conv2d and ConvTranspose2d layers: PyTorch parity after copying weights, gradient checks
through inputs and parameters, default initialisation, and clear errors."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import assert_parity, copy_to_torch, layer_gradcheck

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for convolution layers")

CONV_CASES = [
    dict(in_channels=2, out_channels=3, kernel_size=3),
    dict(in_channels=2, out_channels=4, kernel_size=(3, 2), stride=2, padding=1, bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, dilation=2, groups=2),
    dict(in_channels=3, out_channels=3, kernel_size=3, padding="same", groups=3),
]


@pytest.mark.parametrize("kwargs", CONV_CASES, ids=["plain", "strided_nobias", "dilated_grouped", "same_depthwise"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conv2d_matches_torch(kwargs, mode):
    m = nn.Conv2d(**kwargs).double()
    t = copy_to_torch(m, torch.nn.Conv2d(**kwargs))
    getattr(m, mode)(), getattr(t, mode)()
    x = np.random.default_rng(0).standard_normal((2, kwargs["in_channels"], 7, 6))
    assert_parity(m, t, x)


def test_conv2d_gradcheck_inputs_and_parameters():
    m = nn.Conv2d(2, 2, 2, stride=1, padding=1).double()
    x = minidl.tensor(np.random.default_rng(1).standard_normal((1, 2, 3, 3)), requires_grad=True)
    assert layer_gradcheck(m, x)


def test_conv2d_unbatched_input():
    m = nn.Conv2d(2, 3, 3)
    x = minidl.randn(2, 5, 5)
    y = m(x)
    assert y.shape == (3, 3, 3)
    np.testing.assert_allclose(y.numpy(), m(x.unsqueeze(0)).numpy()[0], rtol=1e-6)


def test_conv2d_default_init_bounds():
    m = nn.Conv2d(16, 32, 3)
    bound = 1.0 / math.sqrt(16 * 9)
    w = m.weight.numpy()
    assert w.shape == (32, 16, 3, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert w.var() == pytest.approx(bound ** 2 / 3, rel=0.05)
    assert np.abs(m.bias.numpy()).max() <= bound
    assert list(m.state_dict()) == list(torch.nn.Conv2d(16, 32, 3).state_dict())


def test_conv2d_wrong_channels_names_layer_expected_and_got():
    m = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8, kernel_size=\(3, 3\)\): expected input of shape "
                                         r"\(N, 3, H, W\) or \(3, H, W\), got \(2, 4, 9, 9\)"):
        m(minidl.randn(2, 4, 9, 9))
    with pytest.raises(ValueError, match="in_channels \\(3\\) must be divisible by groups \\(2\\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")


CONVT_CASES = [
    dict(in_channels=3, out_channels=2, kernel_size=3),
    dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(in_channels=4, out_channels=2, kernel_size=(2, 3), stride=(2, 1), groups=2, bias=False),
    dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, padding=1),
]


@pytest.mark.parametrize("kwargs", CONVT_CASES, ids=["plain", "upsample", "grouped", "dilated"])
def test_conv_transpose2d_matches_torch(kwargs):
    m = nn.ConvTranspose2d(**kwargs).double()
    t = copy_to_torch(m, torch.nn.ConvTranspose2d(**kwargs))
    assert m.weight.shape == t.weight.shape
    x = np.random.default_rng(2).standard_normal((2, kwargs["in_channels"], 4, 5))
    assert_parity(m, t, x)


def test_conv_transpose2d_gradcheck_inputs_and_parameters():
    m = nn.ConvTranspose2d(2, 2, 2, stride=2).double()
    x = minidl.tensor(np.random.default_rng(3).standard_normal((1, 2, 2, 2)), requires_grad=True)
    assert layer_gradcheck(m, x)


def test_conv_transpose2d_output_size_selects_output_padding():
    m = nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1).double()
    t = copy_to_torch(m, torch.nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1))
    x = np.random.default_rng(4).standard_normal((1, 2, 4, 4))
    y = m(minidl.tensor(x), output_size=(8, 8))
    ty = t(torch.tensor(x), output_size=[8, 8])
    assert y.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="output_size \\(10, 10\\) is not reachable"):
        m(minidl.tensor(x), output_size=(10, 10))


def test_conv_transpose2d_default_init_uses_weight_fan_in():
    m = nn.ConvTranspose2d(8, 16, 3)
    assert m.weight.shape == (8, 16, 3, 3)
    bound = 1.0 / math.sqrt(16 * 9)
    assert np.abs(m.weight.numpy()).max() <= bound and np.abs(m.bias.numpy()).max() <= bound
    assert np.abs(m.weight.numpy()).max() > 0.97 * bound


def test_conv_transpose2d_inverts_conv2d_shape():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    up = nn.ConvTranspose2d(5, 3, 3, stride=2, padding=1, output_padding=1)
    x = minidl.randn(2, 3, 8, 8)
    assert up(conv(x)).shape == x.shape
    with pytest.raises(ValueError, match="ConvTranspose2d\\(5, 3"):
        up(x)


def test_layers_built_on_each_device(device):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, device=device), nn.BatchNorm2d(2, device=device),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3, device=device))
    assert all(p.device.type == device for p in model.parameters())
    y = model(minidl.randn(2, 1, 4, 4).to(device))
    assert y.shape == (2, 3) and y.device.type == device
    y.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == device for p in model.parameters())

"""Linear, Bilinear, Identity, Flatten, Unflatten: gradients, PyTorch parity, defaults, errors."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import assert_parity, copy_to_torch, layer_gradcheck

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for the layers")


def test_linear_gradcheck_inputs_and_parameters():
    m = nn.Linear(3, 2).double()
    x = minidl.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    assert layer_gradcheck(m, x)
    assert layer_gradcheck(m, x, gradgrad=True)


def test_linear_without_bias_gradcheck_on_3d_input():
    m = nn.Linear(3, 2, bias=False).double()
    x = minidl.tensor(np.random.default_rng(1).standard_normal((2, 2, 3)), requires_grad=True)
    assert layer_gradcheck(m, x)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_linear_matches_torch(bias, mode):
    m = nn.Linear(5, 3, bias=bias).double()
    t = copy_to_torch(m, torch.nn.Linear(5, 3, bias=bias))
    getattr(m, mode)(), getattr(t, mode)()
    assert_parity(m, t, np.random.default_rng(2).standard_normal((2, 4, 5)))


def test_linear_default_init_bounds():
    m = nn.Linear(400, 300)
    bound = 1.0 / math.sqrt(400)
    w, b = m.weight.numpy(), m.bias.numpy()
    assert m.weight.shape == (300, 400) and m.bias.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.var() == pytest.approx(bound ** 2 / 3, rel=0.03)
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound
    assert m.weight.dtype == np.float32


def test_linear_wrong_feature_size_names_layer_and_shapes():
    m = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=2\): expected input of shape "
                                         r"\(\*, 4\), got \(3, 5\)"):
        m(minidl.zeros(3, 5))


def test_bilinear_matches_torch_and_gradchecks():
    m = nn.Bilinear(3, 2, 4).double()
    t = copy_to_torch(m, torch.nn.Bilinear(3, 2, 4))
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    y = m(minidl.tensor(x1), minidl.tensor(x2))
    ty = t(torch.tensor(x1), torch.tensor(x2))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10)
    a = minidl.tensor(x1[:2], requires_grad=True)
    b = minidl.tensor(x2[:2], requires_grad=True)
    assert layer_gradcheck(m, a, b)
    with pytest.raises(ValueError, match="Bilinear"):
        m(minidl.zeros(2, 3), minidl.zeros(2, 3))


def test_identity_flatten_unflatten():
    x = minidl.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), torch.nn.Flatten()(torch.tensor(x.numpy())).numpy())
    assert nn.Unflatten(1, (6, 10))(nn.Flatten()(x)).shape == (2, 6, 10)
    with pytest.raises(ValueError, match="cannot be split"):
        nn.Unflatten(1, (7, 10))(nn.Flatten()(x))


def test_flatten_gradcheck():
    x = minidl.tensor(np.random.default_rng(4).standard_normal((2, 2, 3)), requires_grad=True)
    assert minidl.gradcheck(nn.Flatten(), [x])


def test_bilinear_default_init_bound():
    m = nn.Bilinear(50, 20, 30)
    bound = 1.0 / math.sqrt(50)
    assert m.weight.shape == (30, 50, 20)
    assert np.abs(m.weight.numpy()).max() <= bound and np.abs(m.weight.numpy()).max() > 0.99 * bound
    assert np.abs(m.bias.numpy()).max() <= bound

"""Activation modules (and F.elu/selu/silu/mish/hardtanh): PyTorch parity, gradients of
first and second order, reprs."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import assert_parity

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for the activations")

# (minidl module, PyTorch module, has a second derivative everywhere away from kinks)
CASES = [
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    (lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh")),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nn.Softplus(beta=2.0, threshold=3.0), lambda: torch.nn.Softplus(beta=2.0, threshold=3.0)),
    (lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)),
    (lambda: nn.LogSoftmax(dim=-1), lambda: torch.nn.LogSoftmax(dim=-1)),
    (lambda: nn.ELU(alpha=0.7), lambda: torch.nn.ELU(alpha=0.7)),
    (lambda: nn.SELU(), lambda: torch.nn.SELU()),
    (lambda: nn.SiLU(), lambda: torch.nn.SiLU()),
    (lambda: nn.Mish(), lambda: torch.nn.Mish()),
    (lambda: nn.Hardtanh(-0.5, 0.8), lambda: torch.nn.Hardtanh(-0.5, 0.8)),
]
IDS = ["relu", "leaky_relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "softplus", "softmax", "log_softmax",
       "elu", "selu", "silu", "mish", "hardtanh"]


def _x(seed=0, shape=(3, 4, 2)):
    x = np.random.default_rng(seed).standard_normal(shape) * 2.0
    # keep clear of the kinks at 0, -0.5 and 0.8 so finite differences are meaningful
    for kink in (0.0, -0.5, 0.8):
        x = np.where(np.abs(x - kink) < 0.05, x + 0.1, x)
    return x


@pytest.mark.parametrize("make,make_torch", CASES, ids=IDS)
def test_activation_matches_torch(make, make_torch):
    assert_parity(make(), make_torch(), _x())


@pytest.mark.parametrize("make,make_torch", CASES, ids=IDS)
def test_activation_gradcheck_and_gradgradcheck(make, make_torch):
    m = make()
    x = minidl.tensor(_x(1, (2, 3)), requires_grad=True)
    assert minidl.gradcheck(m, [x])
    assert minidl.gradgradcheck(m, [x])


def test_softmax_without_dim_follows_pytorch_legacy_rule():
    x = _x(2, (2, 3, 4))
    with pytest.warns(UserWarning):
        ref = torch.nn.Softmax()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(nn.Softmax()(minidl.tensor(x)).numpy(), ref, rtol=1e-12)


def test_elu_is_stable_for_large_negative_inputs():
    y = nn.ELU()(minidl.tensor(np.array([-1000.0, 1000.0])))
    np.testing.assert_array_equal(y.numpy(), [-1.0, 1000.0])


def test_reprs():
    assert repr(nn.LeakyReLU(0.1)) == "LeakyReLU(negative_slope=0.1)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.ReLU()) == "ReLU()"


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="min_val"):
        nn.Hardtanh(1.0, -1.0)

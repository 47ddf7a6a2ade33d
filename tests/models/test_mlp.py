"""MLP: layer layout, PyTorch parity (same state-dict keys as nn.Sequential), options, errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from minidl.models import MLP

torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference for MLP")


def test_mlp_layers_and_shapes():
    m = MLP(784, hidden=(256, 256), num_classes=10)
    assert [type(l).__name__ for l in m] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert m(minidl.randn(5, 1, 28, 28)).shape == (5, 10)
    assert m.num_parameters() == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    linear = MLP(4, hidden=(), num_classes=3)
    assert len(linear) == 2 and linear(minidl.randn(2, 4)).shape == (2, 3)


def test_mlp_dropout_and_activation_options():
    m = MLP(6, hidden=(5,), num_classes=2, dropout=0.5, activation="tanh")
    assert [type(l).__name__ for l in m] == ["Flatten", "Linear", "Tanh", "Dropout", "Linear"]
    x = minidl.randn(64, 6)
    m.eval()
    a, b = m(x).numpy(), m(x).numpy()
    np.testing.assert_array_equal(a, b)              # dropout off in eval
    m.train()
    assert not np.array_equal(m(x).numpy(), a)


def test_mlp_matches_torch_sequential_forward_and_backward():
    m = MLP(12, hidden=(7, 5), num_classes=3, activation="gelu").double()
    tnet = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.GELU(),
                               torch.nn.Linear(7, 5), torch.nn.GELU(), torch.nn.Linear(5, 3)).double()
    tnet.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3, 4))
    y = np.array([0, 2, 1, 2])
    loss = F.cross_entropy(m(minidl.tensor(x)), minidl.tensor(y))
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(tnet(torch.tensor(x)), torch.tensor(y))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    tp = dict(tnet.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-9, err_msg=name)


def test_mlp_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="activation"):
        MLP(4, activation="swish2")
    with pytest.raises(ValueError, match="dropout"):
        MLP(4, dropout=1.0)
    with pytest.raises(ValueError, match="hidden"):
        MLP(4, hidden=(8, 0))
    with pytest.raises(ValueError, match="in_features"):
        MLP(0)
    with pytest.raises(ValueError, match=r"MLP: expected inputs \(N, \*\) with 784 values per sample, got shape \(2, 100\)"):
        MLP(784)(minidl.randn(2, 100))
    assert isinstance(MLP(3), nn.Sequential)

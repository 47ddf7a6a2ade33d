"""dropout and dropout2d: expected activation kept, gradient masked exactly where the
forward zeroed, identity in evaluation, reproducible with manual_seed, clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional.dropout import dropout, dropout2d


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_expected_activation(p):
    x = minidl.tensor(np.full((200, 500), 2.0))
    y = dropout(x, p, training=True).numpy()
    dropped = (y == 0).mean()
    assert dropped == pytest.approx(p, abs=0.01)
    assert y.mean() == pytest.approx(2.0, rel=0.02)
    np.testing.assert_allclose(y[y != 0], 2.0 / (1.0 - p), rtol=1e-12)


def test_dropout_gradient_is_masked_exactly_where_it_zeroed():
    x = minidl.tensor(np.random.default_rng(0).standard_normal((50, 40)) + 5.0, requires_grad=True)
    y = dropout(x, 0.3)
    g = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(minidl.tensor(g))
    zeroed = y.numpy() == 0
    assert zeroed.any() and (~zeroed).any()
    np.testing.assert_array_equal(x.grad.numpy()[zeroed], 0.0)
    np.testing.assert_allclose(x.grad.numpy()[~zeroed], g[~zeroed] / 0.7, rtol=1e-12)


def test_dropout_gradcheck_with_a_fixed_mask():
    x = minidl.tensor(np.random.default_rng(2).standard_normal((3, 4)), requires_grad=True)

    def fn(x):
        minidl.manual_seed(5)
        return dropout(x, 0.4)

    assert minidl.gradcheck(fn, [x])
    assert minidl.gradgradcheck(fn, [x])


def test_dropout_is_identity_in_eval_and_for_p_zero():
    x = minidl.randn(3, 3)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


def test_dropout_p_one_zeroes_everything():
    y = dropout(minidl.ones(10, 10), 1.0)
    assert np.all(y.numpy() == 0) and np.all(np.isfinite(y.numpy()))


def test_dropout_is_reproducible_with_manual_seed_and_keeps_dtype():
    minidl.manual_seed(3)
    a = dropout(minidl.ones(100), 0.5).numpy()
    minidl.manual_seed(3)
    b = dropout(minidl.ones(100), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5, "half"])
def test_dropout_rejects_p_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\]"):
        dropout(minidl.ones(3), p)


def test_dropout2d_drops_whole_channels():
    x = minidl.tensor(np.ones((20, 30, 4, 4)))
    y = dropout2d(x, 0.5).numpy()
    per_channel = y.reshape(20, 30, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert (per_channel == 0).all(-1).mean() == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ValueError, match="dropout2d: expected input of shape"):
        dropout2d(minidl.ones(3, 3), 0.5)


def test_exported_from_functional():
    assert F.dropout is dropout and F.dropout2d is dropout2d


def test_dropout_on_each_device(device):
    x = minidl.tensor(np.full((100, 100), 1.0), requires_grad=True, device=device)
    y = dropout(x, 0.5)
    assert y.device.type == device
    y.sum().backward()
    ys = y.numpy()
    assert ys.mean() == pytest.approx(1.0, rel=0.05)
    np.testing.assert_array_equal(x.grad.numpy(), ys)  # the gradient of sum is the scaled mask

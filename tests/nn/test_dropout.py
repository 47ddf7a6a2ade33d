"""Dropout and Dropout2d modules: inverted scaling in training, identity in eval, masked gradients."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import layer_gradcheck


def test_dropout_module_keeps_expected_activation_in_training():
    m = nn.Dropout(0.25)
    y = m(minidl.tensor(np.full((400, 250), 3.0))).numpy()
    assert y.mean() == pytest.approx(3.0, rel=0.02)
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.01)


def test_dropout_module_is_identity_in_eval():
    m = nn.Dropout(0.9).eval()
    x = minidl.randn(4, 4)
    assert m(x) is x


def test_dropout_module_masks_gradients_where_it_zeroed():
    m = nn.Dropout(0.5)
    x = minidl.tensor(np.random.default_rng(0).uniform(1.0, 2.0, (30, 30)), requires_grad=True)
    y = m(x)
    y.sum().backward()
    zeroed = y.numpy() == 0
    np.testing.assert_array_equal(x.grad.numpy()[zeroed], 0.0)
    np.testing.assert_allclose(x.grad.numpy()[~zeroed], 2.0)


def test_dropout_module_gradcheck_with_fixed_mask():
    x = minidl.tensor(np.random.default_rng(1).standard_normal((3, 3)), requires_grad=True)
    assert layer_gradcheck(nn.Dropout(0.3), x, seed_each_call=True)


def test_dropout2d_module_and_repr_and_errors():
    m = nn.Dropout2d(0.5)
    y = m(minidl.ones(8, 16, 3, 3)).numpy().reshape(8, 16, -1)
    assert np.all((y == 0).all(-1) | (y == 2.0).all(-1))
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1, inplace=False)"
    with pytest.raises(ValueError, match=r"Dropout: dropout probability p must be in \[0, 1\], got 1.2"):
        nn.Dropout(1.2)


def test_dropout_inside_a_model_follows_train_and_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = minidl.randn(2, 4)
    model.eval()
    a, b = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(a, b)
    model.train()
    assert not np.array_equal(model(x).numpy(), model(x).numpy())

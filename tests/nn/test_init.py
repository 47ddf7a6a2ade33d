"""Initialisers: PyTorch's gains and fan rules, and the distributions they draw from."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.nn import init


def _t(*shape):
    return minidl.zeros(*shape, dtype="float64")


def test_calculate_gain_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch's gains are the reference")
    for name in ["linear", "conv2d", "sigmoid", "tanh", "relu", "selu", "leaky_relu", "conv_transpose2d"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", 0.2))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_fan_in_and_fan_out_use_the_receptive_field():
    assert init._calculate_fan_in_and_fan_out(_t(5, 3)) == (3, 5)
    assert init._calculate_fan_in_and_fan_out(_t(8, 4, 3, 2)) == (24, 48)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(_t(4))


def test_uniform_and_normal_moments():
    t = init.uniform_(_t(200, 200), -2.0, 3.0)
    assert t.numpy().min() >= -2.0 and t.numpy().max() <= 3.0
    assert t.numpy().mean() == pytest.approx(0.5, abs=0.03)
    n = init.normal_(_t(200, 200), 1.0, 2.0)
    assert n.numpy().mean() == pytest.approx(1.0, abs=0.03)
    assert n.numpy().std() == pytest.approx(2.0, rel=0.02)


def test_xavier_uniform_bound_and_variance():
    t = init.xavier_uniform_(_t(300, 200), gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 500)
    assert np.abs(t.numpy()).max() <= bound
    assert np.abs(t.numpy()).max() > 0.99 * bound
    assert t.numpy().var() == pytest.approx(bound ** 2 / 3, rel=0.03)


def test_xavier_normal_std():
    t = init.xavier_normal_(_t(300, 200))
    assert t.numpy().std() == pytest.approx(math.sqrt(2.0 / 500), rel=0.02)


def test_kaiming_uniform_and_normal():
    t = init.kaiming_uniform_(_t(256, 64, 3, 3), nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / (64 * 9))
    assert np.abs(t.numpy()).max() <= bound and np.abs(t.numpy()).max() > 0.99 * bound
    n = init.kaiming_normal_(_t(256, 64, 3, 3), mode="fan_out", nonlinearity="relu")
    assert n.numpy().std() == pytest.approx(math.sqrt(2.0 / (256 * 9)), rel=0.02)
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(_t(2, 2), mode="fan_avg")


def test_trunc_normal_stays_in_bounds():
    t = init.trunc_normal_(_t(100, 100), mean=0.0, std=1.0, a=-0.5, b=1.0)
    assert t.numpy().min() >= -0.5 and t.numpy().max() <= 1.0


def test_orthogonal_rows_or_columns_are_orthonormal():
    wide = init.orthogonal_(_t(4, 10), gain=3.0).numpy()
    np.testing.assert_allclose(wide @ wide.T, 9.0 * np.eye(4), atol=1e-10)
    tall = init.orthogonal_(_t(10, 4)).numpy()
    np.testing.assert_allclose(tall.T @ tall, np.eye(4), atol=1e-10)
    conv = init.orthogonal_(_t(6, 2, 2, 2)).numpy().reshape(6, 8)
    np.testing.assert_allclose(conv @ conv.T, np.eye(6), atol=1e-10)


def test_constant_eye_dirac_zeros_ones():
    assert np.all(init.constant_(_t(2, 3), 0.25).numpy() == 0.25)
    assert np.all(init.ones_(_t(3)).numpy() == 1) and np.all(init.zeros_(minidl.ones(3)).numpy() == 0)
    np.testing.assert_array_equal(init.eye_(_t(2, 3)).numpy(), np.eye(2, 3))
    w = init.dirac_(_t(3, 3, 3, 3))
    x = minidl.randn(1, 3, 5, 5).astype("float64")
    from minidl.functional.conv import conv2d

    np.testing.assert_allclose(conv2d(x, w, padding=1).numpy(), x.numpy(), atol=1e-12)


def test_sparse_zeroes_a_fraction_of_each_column():
    t = init.sparse_(_t(10, 6), sparsity=0.3).numpy()
    assert all((t[:, c] == 0).sum() >= 3 for c in range(6))


def test_initialisers_are_reproducible_with_manual_seed():
    minidl.manual_seed(7)
    a = init.normal_(_t(3, 3)).numpy().copy()
    minidl.manual_seed(7)
    b = init.normal_(_t(3, 3)).numpy()
    np.testing.assert_array_equal(a, b)


def test_initialiser_keeps_dtype_and_returns_tensor():
    p = nn.Parameter(np.zeros((3, 3), dtype=np.float32))
    assert init.xavier_uniform_(p) is p and p.dtype == np.float32


def test_non_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="normal_: expected a Tensor"):
        init.normal_(np.zeros(3))

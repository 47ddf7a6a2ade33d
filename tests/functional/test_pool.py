"""F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d: PyTorch parity on every CPU kernel
path, gradients of first and second order, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl
import minidl.config as config
from minidl.functional.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from tests.kernels.conv_cases import pool_geometry

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["numpy", "numba"])
def kernel_path(request):
    if request.param == "numba":
        pytest.importorskip("numba", reason="Numba is not installed")
    with config.using_kernels(request.param):
        yield request.param


def _leaf(a):
    return minidl.tensor(a, requires_grad=True)


def _compare(y, x_leaf, ty, tx, rng):
    gy = rng.standard_normal(tuple(ty.shape))
    y.backward(minidl.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x_leaf.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(g=pool_geometry())
def test_max_pool2d_matches_torch(kernel_path, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(g["x_shape"])
    args = (g["kernel"], g["stride"], g["padding"], g["dilation"])
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, *args)
    assume(torch.isfinite(ty).all())  # windows wholly in padding: tested in tests/kernels
    mx = _leaf(x)
    _compare(max_pool2d(mx, *args), mx, ty, tx, rng)


@SETTINGS
@given(g=pool_geometry(with_dilation=False), count_include_pad=st.booleans())
def test_avg_pool2d_matches_torch(kernel_path, g, count_include_pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(g["x_shape"])
    args = (g["kernel"], g["stride"], g["padding"])
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, *args, count_include_pad=count_include_pad)
    mx = _leaf(x)
    _compare(avg_pool2d(mx, *args, count_include_pad=count_include_pad), mx, ty, tx, rng)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 9), ow=st.integers(1, 9))
def test_adaptive_avg_pool2d_matches_torch(h, w, oh, ow):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, h, w))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, (oh, ow))
    mx = _leaf(x)
    _compare(adaptive_avg_pool2d(mx, (oh, ow)), mx, ty, tx, rng)


def test_stride_defaults_to_kernel_size_and_indices_match_torch(kernel_path):
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 7))
    y, indices = max_pool2d(minidl.tensor(x), 3, return_indices=True)
    ty, t_indices = torch.nn.functional.max_pool2d(torch.tensor(x), 3, return_indices=True)
    assert y.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(indices.numpy(), t_indices.numpy())
    assert avg_pool2d(minidl.tensor(x), (2, 3)).shape == (2, 3, 4, 2)


def test_pools_pass_gradcheck_and_gradgradcheck(kernel_path):
    rng = np.random.default_rng(4)
    x = _leaf(rng.standard_normal((2, 2, 5, 6)))
    assert minidl.gradcheck(lambda t: max_pool2d(t, 3, 2, 1), [x])
    assert minidl.gradgradcheck(lambda t: max_pool2d(t, (2, 3), 1, dilation=(2, 1)) ** 2, [x])
    assert minidl.gradcheck(lambda t: avg_pool2d(t, 3, 2, 1, count_include_pad=False), [x])
    assert minidl.gradgradcheck(lambda t: avg_pool2d(t, (2, 3), (1, 2), (1, 1)) ** 2, [x])
    assert minidl.gradgradcheck(lambda t: adaptive_avg_pool2d(t, (3, 4)) ** 2, [x])


def test_float32_stays_float32(kernel_path):
    x = minidl.tensor(np.random.default_rng(5).standard_normal((1, 2, 6, 6)).astype(np.float32))
    assert max_pool2d(x, 2).dtype == np.float32
    assert avg_pool2d(x, 3, 1, 1).dtype == np.float32
    assert adaptive_avg_pool2d(x, 4).dtype == np.float32


def test_bad_pooling_arguments_are_rejected_clearly():
    x = minidl.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-d input \(N, C, H, W\), got shape \(2, 4, 4\)"):
        max_pool2d(minidl.zeros((2, 4, 4)), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(5, 5\).*larger than the padded input \(4, 4\)"):
        avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="max_pool2d: padding .* at most half the kernel size"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="avg_pool2d: stride must be >= 1"):
        avg_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: expected a 4-d input"):
        adaptive_avg_pool2d(minidl.zeros((4, 4)), 2)


def test_pools_on_the_gpu_match_cpu(device):
    if device == "cpu":
        pytest.skip("this test compares the CUDA device with the CPU")
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 8))
    want_max = max_pool2d(minidl.tensor(x), 3, 2, 1).numpy()
    want_avg = avg_pool2d(minidl.tensor(x), 3, 2, 1, count_include_pad=False).numpy()
    for path in ("numpy", "cuda"):
        with config.using_kernels(path):
            xg = minidl.tensor(x).to("cuda")
            np.testing.assert_allclose(max_pool2d(xg, 3, 2, 1).numpy(), want_max, rtol=1e-12)
            np.testing.assert_allclose(avg_pool2d(xg, 3, 2, 1, count_include_pad=False).numpy(), want_avg, rtol=1e-12)

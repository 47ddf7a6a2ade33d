"""Raw max/avg pooling kernels (NumPy and Numba CPU) against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minidl.kernels import pool_numpy

from .conv_cases import pool_geometry

paths = [pool_numpy]
try:
    from minidl.kernels import pool_numba

    paths.append(pool_numba)
except ImportError:  # pragma: no cover - numba is a core dependency
    pool_numba = None

PATHS = pytest.mark.parametrize("path", paths, ids=lambda m: m.__name__.split(".")[-1])


@PATHS
@settings(max_examples=25, deadline=None)
@given(g=pool_geometry())
def test_max_pool_kernels_match_torch(path, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(g["x_shape"])  # continuous values: no ties between taps
    geo = (g["kernel"], g["stride"], g["padding"], g["dilation"])
    y, indices = path.max_pool2d_forward(x, *geo)
    tx = torch.tensor(x, requires_grad=True)
    ty, t_indices = torch.nn.functional.max_pool2d(tx, *geo, return_indices=True)
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    # A window wholly in the padding (see the test below) gets an arbitrary PyTorch index
    # that its backward then follows into a neighbouring plane; compare the others only.
    assume(np.isfinite(y).all())
    np.testing.assert_array_equal(indices, t_indices.numpy())
    gx = path.max_pool2d_backward(gy, indices, x.shape[2:], *geo)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@PATHS
@settings(max_examples=25, deadline=None)
@given(g=pool_geometry(with_dilation=False), count_include_pad=st.booleans())
def test_avg_pool_kernels_match_torch(path, g, count_include_pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(g["x_shape"])
    geo = (g["kernel"], g["stride"], g["padding"])
    y = path.avg_pool2d_forward(x, *geo, count_include_pad)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, *geo, count_include_pad=count_include_pad)
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gx = path.avg_pool2d_backward(gy, x.shape[2:], *geo, count_include_pad)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@PATHS
def test_pool_kernels_keep_float32(path):
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y, indices = path.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    assert y.dtype == np.float32 and indices.dtype == np.int64
    assert path.max_pool2d_backward(y, indices, (6, 5), (2, 2), (2, 2), (0, 0), (1, 1)).dtype == np.float32
    a = path.avg_pool2d_forward(x, (3, 2), (1, 2), (1, 1), False)
    assert a.dtype == np.float32
    assert path.avg_pool2d_backward(a, (6, 5), (3, 2), (1, 2), (1, 1), False).dtype == np.float32


@PATHS
def test_max_pool_picks_the_first_of_tied_maxima_like_torch(path):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1:3, 1:3] = 1.0
    y, indices = path.max_pool2d_forward(x, (3, 3), (1, 1), (0, 0), (1, 1))
    _, t_indices = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 1, return_indices=True)
    np.testing.assert_array_equal(indices, t_indices.numpy())


@PATHS
def test_a_window_wholly_in_the_padding_gives_minus_inf_index_minus_one_and_no_gradient(path):
    x = np.array([[[[2.0]], [[3.0]]]])  # (1, 2, 1, 1); dilation 2 and padding 1 put taps at -1 and 1
    geo = ((1, 2), (1, 1), (0, 1), (1, 2))
    y, indices = path.max_pool2d_forward(x, *geo)
    assert np.isneginf(y).all() and (indices == -1).all()
    gx = path.max_pool2d_backward(np.ones_like(y), indices, (1, 1), *geo)
    np.testing.assert_array_equal(gx, np.zeros_like(x))

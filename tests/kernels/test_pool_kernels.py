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
    np.testing.assert_array_equal(y, ty.detach().numpy())
    # A window wholly in the padding (see the test below) gets an arbitrary PyTorch index
    # that PyTorch's backward then follows out of the plane, writing outside its gradient
    # buffer (the process aborted now and then); compare the others only, and never run
    # PyTorch's backward on such a geometry.
    assume(np.isfinite(y).all())
    np.testing.assert_array_equal(indices, t_indices.numpy())
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(gy))
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
def test_max_pool_lets_the_last_nan_of_a_window_win_like_torch(path):
    x = np.array([[[[1.0, np.nan, 5.0, 2.0], [np.nan, 0.0, 7.0, np.nan]]]])  # windows: 2 NaNs, 1 NaN
    y, indices = path.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    t_y, t_indices = torch.nn.functional.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    np.testing.assert_array_equal(indices, t_indices.numpy())
    np.testing.assert_array_equal(indices, [[[[4, 7]]]])
    assert np.isnan(y).all() and np.isnan(t_y.numpy()).all()


@PATHS
def test_a_window_wholly_in_the_padding_gives_minus_inf_index_minus_one_and_no_gradient(path):
    x = np.array([[[[2.0]], [[3.0]]]])  # (1, 2, 1, 1); dilation 2 and padding 1 put taps at -1 and 1
    geo = ((1, 2), (1, 1), (0, 1), (1, 2))
    y, indices = path.max_pool2d_forward(x, *geo)
    assert np.isneginf(y).all() and (indices == -1).all()
    gx = path.max_pool2d_backward(np.ones_like(y), indices, (1, 1), *geo)
    np.testing.assert_array_equal(gx, np.zeros_like(x))


# --------------------------------------------------------------------------------------
# The Numba path's fast paths: each geometry below takes a different plane kernel
# (see pool_numba's docstring), checked against PyTorch and against a window-by-window
# loop, on data full of ties and NaNs, with sizes that leave a last row/column out.

FAST_GEOMETRIES = {  # name: (kernel, stride, padding, dilation)
    "2x2 stride 2 (straight-line)": ((2, 2), (2, 2), (0, 0), (1, 1)),
    "3x3 stride 2 pad 1 (constant-folded)": ((3, 3), (2, 2), (1, 1), (1, 1)),
    "3x3 stride 1 (general, all windows inside)": ((3, 3), (1, 1), (0, 0), (1, 1)),
    "3x3 stride 3 (general, non-overlapping tiles)": ((3, 3), (3, 3), (0, 0), (1, 1)),
    "2x3 stride (1, 2) pad (1, 1) dilation (2, 1) (general, borders)": ((2, 3), (1, 2), (1, 1), (2, 1)),
    "1x2 stride (2, 1) pad (0, 1) (general, borders on one axis)": ((1, 2), (2, 1), (0, 1), (1, 1)),
}
GEOMETRY = pytest.mark.parametrize("geo", list(FAST_GEOMETRIES.values()), ids=list(FAST_GEOMETRIES))
SIZES = pytest.mark.parametrize("hw", [(8, 8), (9, 7), (7, 10)], ids=lambda s: f"{s[0]}x{s[1]}")
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)


def _tied_values_with_nans(shape, dtype, seed):
    """Small integers (so that most windows hold tied maxima), about 5% NaN."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan
    return x


def _max_pool_by_loops(x, kernel, stride, padding, dilation):
    """Window-by-window reference: taps in row-major order, the first maximum, the last NaN."""
    n, c, h, w = x.shape
    out_h = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    y = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    indices = np.full((n, c, out_h, out_w), -1, dtype=np.int64)
    for b, ch, oh, ow in np.ndindex(n, c, out_h, out_w):
        for i, j in np.ndindex(*kernel):
            r = oh * stride[0] - padding[0] + i * dilation[0]
            col = ow * stride[1] - padding[1] + j * dilation[1]
            if 0 <= r < h and 0 <= col < w:
                v = x[b, ch, r, col]
                if indices[b, ch, oh, ow] < 0 or v > y[b, ch, oh, ow] or np.isnan(v):
                    y[b, ch, oh, ow] = v
                    indices[b, ch, oh, ow] = r * w + col
    return y, indices


@pytest.fixture(params=["serial", "parallel"])
def threading(request, monkeypatch):
    """Run pool_numba's kernels on one thread, or on the parallel kernels whatever the size."""
    monkeypatch.setattr(pool_numba, "SERIAL_BELOW", 1 << 62 if request.param == "serial" else 0)
    return request.param


@GEOMETRY
@SIZES
@DTYPES
def test_numba_max_pool_fast_paths_match_loops_and_torch_on_ties_and_nans(geo, hw, dtype, threading):
    x = _tied_values_with_nans((2, 3) + hw, dtype, seed=hw[0] * 10 + hw[1])
    y, indices = pool_numba.max_pool2d_forward(x, *geo)
    y_ref, indices_ref = _max_pool_by_loops(x, *geo)
    assert y.dtype == dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)  # NaN positions must agree too
    np.testing.assert_array_equal(indices, indices_ref)
    ty, t_indices = torch.nn.functional.max_pool2d(torch.tensor(x), *geo, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(indices, t_indices.numpy())


@GEOMETRY
@SIZES
@DTYPES
def test_numba_max_pool_backward_fast_paths_match_torch_on_ties(geo, hw, dtype, threading):
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, size=(2, 3) + hw).astype(dtype)  # ties everywhere
    y, indices = pool_numba.max_pool2d_forward(x, *geo)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = pool_numba.max_pool2d_backward(gy, indices, hw, *geo)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, *geo).backward(torch.tensor(gy))
    assert gx.dtype == dtype and gx.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=tol, atol=tol)
    # Without the geometry the indices alone decide, through the overlapping-window scatter.
    np.testing.assert_allclose(pool_numba.max_pool2d_backward(gy, indices, hw), gx, rtol=tol, atol=tol)


def test_numba_max_pool_2x2_backward_overwrites_every_element_of_an_uninitialised_gradient(monkeypatch):
    # The non-overlapping backward allocates gx with np.empty; poison that memory so that an
    # element it forgets to write (e.g. the dropped last row and column) shows up.
    monkeypatch.setattr(pool_numba, "SERIAL_BELOW", 1 << 62)
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 7))
    y, indices = pool_numba.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    real_empty = np.empty
    monkeypatch.setattr(pool_numba.np, "empty", lambda *a, **k: np.full_like(real_empty(*a, **k), np.nan))
    gx = pool_numba.max_pool2d_backward(np.ones_like(y), indices, (5, 7), (2, 2), (2, 2), (0, 0), (1, 1))
    assert np.isfinite(gx).all()
    assert gx[:, :, 4, :].sum() == 0 and gx[:, :, :, 6].sum() == 0
    assert gx.sum() == y.size


AVG_GEOMETRIES = {  # name: (kernel, stride, padding)
    "2x2 stride 2 (constant-folded, write-once backward)": ((2, 2), (2, 2), (0, 0)),
    "3x3 stride 3 (write-once backward)": ((3, 3), (3, 3), (0, 0)),
    "3x3 stride 2 pad 1 (borders)": ((3, 3), (2, 2), (1, 1)),
    "2x3 stride 1 pad (1, 1) (borders, overlapping)": ((2, 3), (1, 1), (1, 1)),
}


@pytest.mark.parametrize("geo", list(AVG_GEOMETRIES.values()), ids=list(AVG_GEOMETRIES))
@pytest.mark.parametrize("count_include_pad", [True, False])
@SIZES
@DTYPES
def test_numba_avg_pool_fast_paths_match_torch(geo, count_include_pad, hw, dtype, threading):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3) + hw).astype(dtype)
    y = pool_numba.avg_pool2d_forward(x, *geo, count_include_pad)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, *geo, count_include_pad=count_include_pad)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(gy))
    gx = pool_numba.avg_pool2d_backward(gy, hw, *geo, count_include_pad)
    assert y.dtype == dtype and gx.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("geo", [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1))], ids=["2x2/2", "3x3/1 pad 1"])
def test_numba_avg_pool_keeps_an_infinite_value_to_its_own_windows(geo):
    # An inf in the plane's first element once turned every window of the plane into NaN
    # (each sum started from x[n, c, 0, 0] * 0).
    x = np.zeros((1, 2, 4, 4))
    x[0, 0, 0, 0] = np.inf
    y = pool_numba.avg_pool2d_forward(x, *geo)
    ty = torch.nn.functional.avg_pool2d(torch.tensor(x), *geo)
    np.testing.assert_array_equal(y, ty.numpy())


def test_numba_pool_kernels_accept_non_contiguous_input():
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 6)).transpose(0, 1, 3, 2)  # (2, 3, 6, 8) view
    y, indices = pool_numba.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1))
    ty, t_indices = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(indices, t_indices.numpy())
    gy = np.asfortranarray(np.ones_like(y))
    gx = pool_numba.max_pool2d_backward(gy, indices, (6, 8), (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(gx, pool_numba.max_pool2d_backward(np.ones_like(y), indices, (6, 8)))
    a = pool_numba.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_allclose(a, torch.nn.functional.avg_pool2d(torch.tensor(x), 2).numpy(), rtol=1e-12)

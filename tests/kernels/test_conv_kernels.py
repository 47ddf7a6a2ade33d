"""Raw conv2d kernels (NumPy im2col and Numba CPU) against the NumPy reference and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.kernels import conv_numpy
from minidl.kernels.window import conv_output_hw

from .conv_cases import conv_geometry

numba_paths = [conv_numpy]
try:
    from minidl.kernels import conv_numba

    numba_paths.append(conv_numba)
except ImportError:  # pragma: no cover - numba is a core dependency
    conv_numba = None

PATHS = pytest.mark.parametrize("path", numba_paths, ids=lambda m: m.__name__.split(".")[-1])


def _torch_conv(x, w, gy, g):
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    y = torch.nn.functional.conv2d(tx, tw, None, g["stride"], g["padding"], g["dilation"], g["groups"])
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()


def _run(path, x, w, gy, g):
    geo = (g["stride"], g["padding"], g["dilation"], g["groups"])
    y = path.conv2d_forward(x, w, *geo)
    gx = path.conv2d_backward_input(gy, w, x.shape[2:], *geo)
    gw = path.conv2d_backward_weight(x, gy, w.shape[2:], *geo)
    return y, gx, gw


@PATHS
@settings(max_examples=25, deadline=None)
@given(g=conv_geometry())
def test_conv2d_kernels_match_torch_in_float64(path, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(g["x_shape"])
    w = rng.standard_normal(g["w_shape"])
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], g["stride"], g["padding"], g["dilation"])
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw)
    for mine, ref in zip(_run(path, x, w, gy, g), _torch_conv(x, w, gy, g)):
        assert mine.shape == ref.shape and mine.dtype == np.float64
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
@settings(max_examples=20, deadline=None)
@given(g=conv_geometry())
def test_numba_conv2d_matches_numpy_reference_in_float32(g):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(g["x_shape"]).astype(np.float32)
    w = rng.standard_normal(g["w_shape"]).astype(np.float32)
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], g["stride"], g["padding"], g["dilation"])
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw).astype(np.float32)
    for mine, ref in zip(_run(conv_numba, x, w, gy, g), _run(conv_numpy, x, w, gy, g)):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)


@PATHS
def test_im2col_col2im_are_adjoint(path):
    """<im2col(x), c> == <x, col2im(c)> for random x, c: the backward really is the transpose."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6))
    geo = ((3, 2), (2, 1), (1, 2), (2, 1))
    cols = path.im2col(x, *geo)
    c = rng.standard_normal(cols.shape)
    back = path.col2im(c, x.shape[2:], *geo)
    assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


@PATHS
def test_depthwise_conv_matches_torch(path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 8, 8))
    w = rng.standard_normal((8, 1, 3, 3))  # channel multiplier 2
    g = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 4}
    gy = rng.standard_normal((2, 8, 8, 8))
    for mine, ref in zip(_run(path, x, w, gy, g), _torch_conv(x, w, gy, g)):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
def test_numba_conv_walks_large_batches_in_chunks(monkeypatch):
    """Splitting the batch to keep columns in cache must not change the result."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    gy = rng.standard_normal((5, 3, 6, 6))
    g = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    whole = _run(conv_numba, x, w, gy, g)
    monkeypatch.setattr(conv_numba, "_COLUMN_BUDGET_BYTES", 1)  # one image per chunk
    assert len(conv_numba._batch_chunks(x.shape, (3, 3), (6, 6), 8)) == 5
    for a, b in zip(_run(conv_numba, x, w, gy, g), whole):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@st.composite
def _stride1_geometry(draw):
    g = draw(conv_geometry(max_groups=2))
    g["stride"] = (1, 1)
    return g


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
@settings(max_examples=30, deadline=None)
@given(g=_stride1_geometry())
def test_numba_stride1_shifted_rows_match_torch_and_general_path(g):
    """Stride 1 takes the shifted-rows kernels (and the flipped conv for the input gradient
    when C_out <= C_in); both must equal PyTorch and the general im2col/col2im path."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(g["x_shape"])
    w = rng.standard_normal(g["w_shape"])
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], g["stride"], g["padding"], g["dilation"])
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw)
    shifted = _run(conv_numba, x, w, gy, g)
    for mine, ref in zip(shifted, _torch_conv(x, w, gy, g)):
        assert mine.shape == ref.shape
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_numba, "_SHIFTED", False)
        general = _run(conv_numba, x, w, gy, g)
    for mine, ref in zip(shifted, general):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
@pytest.mark.parametrize(
    "x_shape, w_shape, padding, dilation, groups",
    [
        ((2, 6, 7, 5), (4, 3, 3, 2), (1, 0), (1, 2), 2),  # flipped conv with groups, odd sizes
        ((2, 3, 5, 6), (3, 3, 1, 1), (1, 1), (1, 1), 1),  # padding > d*(k-1): falls back to col2im
        ((1, 4, 4, 4), (4, 1, 3, 3), (2, 2), (1, 1), 4),  # depthwise, padding > d*(k-1)
        ((3, 2, 6, 6), (5, 2, 3, 3), (1, 1), (1, 1), 1),  # C_out > C_in: col2im for the input gradient
    ],
)
def test_numba_stride1_special_cases_match_torch(x_shape, w_shape, padding, dilation, groups):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    g = {"stride": (1, 1), "padding": padding, "dilation": dilation, "groups": groups}
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], (1, 1), padding, dilation)
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw)
    for mine, ref in zip(_run(conv_numba, x, w, gy, g), _torch_conv(x, w, gy, g)):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
@pytest.mark.parametrize(
    "budget, plan",
    [
        (4 * 36 * 63 * 2, (2, 7)),  # two whole images per piece, a last partial piece
        (4 * 36 * 9 * 3, (1, 3)),  # bands of 3 output rows of one image, a last partial band
        (1, (1, 1)),  # one output row at a time
    ],
)
def test_numba_stride1_takes_strided_views_and_small_pieces(monkeypatch, budget, plan):
    """Non-contiguous inputs and small pieces of work (scratch buffers reused, padded images
    refreshed per image, bands of output rows) give the same float32 result as the NumPy
    reference."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 8, 7, 7)).astype(np.float32)[:, ::2]  # (5, 4, 7, 7), strided
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((5, 7, 7, 3)).astype(np.float32).transpose(0, 3, 1, 2)  # (5, 3, 7, 7)
    g = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    ref = _run(conv_numpy, x, w, gy, g)
    monkeypatch.setattr(conv_numba, "_COLUMN_BUDGET_BYTES", budget)
    rows = conv_numba._PhaseRows(x.shape, (3, 3), (1, 1), (1, 1), (1, 1), np.float32)
    assert (rows.images, rows.band) == plan
    for mine, want in zip(_run(conv_numba, x, w, gy, g), ref):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, want, rtol=1e-5, atol=1e-5)


@st.composite
def _few_channel_geometry(draw):
    g = draw(conv_geometry())
    groups = g["groups"]
    cg = draw(st.integers(1, 3))  # the direct kernels' range: at most 3 input channels per group
    n, _, h, w = g["x_shape"]
    g["x_shape"] = (n, cg * groups, h, w)
    g["w_shape"] = (g["w_shape"][0], cg) + tuple(g["w_shape"][2:])
    return g


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
@settings(max_examples=30, deadline=None)
@given(g=_few_channel_geometry())
def test_numba_direct_kernels_match_torch_and_the_gemm_path(g):
    """Few input channels per group take the direct kernels (no columns); they must equal
    PyTorch and the columns + GEMM path on every geometry, strides and dilations included."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal(g["x_shape"])
    w = rng.standard_normal(g["w_shape"])
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], g["stride"], g["padding"], g["dilation"])
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_numba, "_DIRECT_MAX_CHANNELS", 3)  # by default only 1 (measured)
        assert conv_numba._direct_pays(w.shape)
        direct = _run(conv_numba, x, w, gy, g)
    for mine, ref in zip(direct, _torch_conv(x, w, gy, g)):
        assert mine.shape == ref.shape and mine.dtype == np.float64
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_numba, "_DIRECT", False)
        assert not conv_numba._direct_pays(w.shape)
        gemm = _run(conv_numba, x, w, gy, g)
    for mine, ref in zip(direct, gemm):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(conv_numba is None, reason="Numba is not installed")
def test_numba_direct_forward_walks_bands_of_output_rows(monkeypatch):
    """An accumulator shorter than the output (a large image) is filled band by band."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 11, 9)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    g = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], (1, 1), (1, 1), (1, 1))
    gy = rng.standard_normal((3, 4) + out_hw).astype(np.float32)
    ref = _run(conv_numpy, x, w, gy, g)
    monkeypatch.setattr(conv_numba, "_DIRECT_MAX_CHANNELS", 2)
    monkeypatch.setattr(conv_numba, "_DIRECT_ACC", 25)  # two wide rows of 11 per band
    for mine, want in zip(_run(conv_numba, x, w, gy, g), ref):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, want, rtol=1e-5, atol=1e-5)

"""F.conv2d and F.conv_transpose2d: PyTorch parity on every CPU kernel path, gradients of
first and second order, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
import minidl.config as config
from minidl.functional.conv import conv2d, conv_transpose2d
from tests.kernels.conv_cases import conv_geometry

CPU_PATHS = ["numpy", "numba"]


@pytest.fixture(params=CPU_PATHS)
def kernel_path(request):
    if request.param == "numba":
        pytest.importorskip("numba", reason="Numba is not installed")
    with config.using_kernels(request.param):
        yield request.param


def _leaf(a):
    return minidl.tensor(a, requires_grad=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=conv_geometry(), with_bias=st.booleans())
def test_conv2d_matches_torch_forward_and_both_gradients(kernel_path, g, with_bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(g["x_shape"]), rng.standard_normal(g["w_shape"])
    b = rng.standard_normal(g["w_shape"][0]) if with_bias else None
    args = (g["stride"], g["padding"], g["dilation"], g["groups"])
    mx, mw = _leaf(x), _leaf(w)
    mb = _leaf(b) if with_bias else None
    y = conv2d(mx, mw, mb, *args)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if with_bias else None
    ty = torch.nn.functional.conv2d(tx, tw, tb, *args)
    gy = rng.standard_normal(tuple(ty.shape))
    y.backward(minidl.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mw.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    if with_bias:
        np.testing.assert_allclose(mb.grad.numpy(), tb.grad.numpy(), rtol=1e-10, atol=1e-10)


@st.composite
def transpose_geometry(draw):
    g = draw(conv_geometry())
    n, c_in, h, w = g["x_shape"]
    groups = g["groups"]
    c_out = groups * draw(st.integers(1, 3))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(g["stride"], g["dilation"]))
    hw = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return {"x_shape": (n, c_in) + hw, "w_shape": (c_in, c_out // groups) + g["w_shape"][2:],
            "stride": g["stride"], "padding": g["padding"], "output_padding": output_padding,
            "groups": groups, "dilation": g["dilation"]}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=transpose_geometry())
def test_conv_transpose2d_matches_torch_forward_and_both_gradients(kernel_path, g):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(g["x_shape"]), rng.standard_normal(g["w_shape"]), None
    args = (g["stride"], g["padding"], g["output_padding"], g["groups"], g["dilation"])
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    try:
        ty = torch.nn.functional.conv_transpose2d(tx, tw, b, *args)
    except RuntimeError as error:  # PyTorch rejects an empty output; minidl must too
        with pytest.raises(ValueError, match="conv_transpose2d"):
            conv_transpose2d(_leaf(x), _leaf(w), b, *args)
        assert "size" in str(error).lower() or "output" in str(error).lower()
        return
    mx, mw = _leaf(x), _leaf(w)
    y = conv_transpose2d(mx, mw, b, *args)
    gy = rng.standard_normal(tuple(ty.shape))
    y.backward(minidl.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mw.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_float32_stays_float32_and_matches_torch(kernel_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 11, 9)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    y = conv2d(minidl.tensor(x), minidl.tensor(w), minidl.tensor(b), stride=2, padding=1, groups=2)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), 2, 1, 1, 2)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), ((1, 2), (2, 0), (2, 1), 1)])
def test_conv2d_passes_gradcheck_and_gradgradcheck(kernel_path, stride, padding, dilation, groups):
    rng = np.random.default_rng(3)
    x = _leaf(rng.standard_normal((2, 2, 5, 4)))
    w = _leaf(rng.standard_normal((4, 2 // groups, 2, 3)))
    b = _leaf(rng.standard_normal(4))

    def fn(x, w, b):
        return conv2d(x, w, b, stride, padding, dilation, groups)

    assert minidl.gradcheck(fn, [x, w, b])
    assert minidl.gradgradcheck(fn, [x, w, b])


def test_conv_transpose2d_passes_gradcheck_and_gradgradcheck(kernel_path):
    rng = np.random.default_rng(4)
    x = _leaf(rng.standard_normal((1, 2, 3, 3)))
    w = _leaf(rng.standard_normal((2, 3, 2, 2)))

    def fn(x, w):
        return conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)

    assert minidl.gradcheck(fn, [x, w])
    assert minidl.gradgradcheck(fn, [x, w])


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel:UserWarning")
@pytest.mark.parametrize("kernel, dilation", [((3, 3), 1), ((2, 4), (2, 1)), ((1, 1), 1)])
def test_padding_same_keeps_the_size_like_torch(kernel, dilation):
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 6, 7)), rng.standard_normal((3, 2) + kernel)
    y = conv2d(minidl.tensor(x), minidl.tensor(w), padding="same", dilation=dilation)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same", dilation=dilation)
    assert y.shape == (1, 3, 6, 7)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)


def test_channel_mismatch_names_both_shapes():
    x, w = minidl.zeros((2, 3, 8, 8)), minidl.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: channel mismatch: input \(2, 3, 8, 8\) has 3 channels, "
                                         r"but weight \(4, 2, 3, 3\) with groups=1 expects 2"):
        conv2d(x, w)


def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match=r"conv2d: kernel \(6, 6\).*larger than the padded input \(5, 5\)"):
        conv2d(minidl.zeros((1, 1, 3, 3)), minidl.zeros((1, 1, 6, 6)), padding=1)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 1, 3, 8, 8), (8,)])
def test_non_4d_input_is_rejected_with_its_shape(shape):
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-d input \(N, C_in, H, W\), got shape"):
        conv2d(minidl.zeros(shape), minidl.zeros((1, 3, 3, 3)))


def test_other_bad_arguments_are_rejected_clearly():
    x, w = minidl.zeros((1, 4, 6, 6)), minidl.zeros((4, 2, 3, 3))
    with pytest.raises(TypeError, match="conv2d: input and weight must share a float dtype"):
        conv2d(x, minidl.zeros((4, 2, 3, 3), dtype="float64"), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: bias of shape \(3,\) does not match 4 output channels"):
        conv2d(x, w, minidl.zeros(3), groups=2)
    with pytest.raises(ValueError, match="not divisible by groups=3"):
        conv2d(x, w, groups=3)
    with pytest.raises(ValueError, match="conv2d: stride must be >= 1"):
        conv2d(x, w, stride=0, groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        conv2d(x, w, stride=2, padding="same", groups=2)
    with pytest.raises(ValueError, match="conv_transpose2d: output_padding"):
        conv_transpose2d(x, minidl.zeros((4, 1, 3, 3)), stride=2, output_padding=2)


def test_cuda_kernels_on_cpu_tensors_raise_at_the_conv_call():
    x, w = minidl.zeros((1, 1, 4, 4)), minidl.zeros((1, 1, 3, 3))
    with config.using_kernels("cuda"):
        with pytest.raises(config.KernelUnavailableError, match="conv2d: kernel path 'cuda' takes CuPy"):
            conv2d(x, w)


def test_conv2d_on_the_gpu_matches_cpu(device):
    if device == "cpu":
        pytest.skip("this test compares the CUDA device with the CPU")
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 4, 9, 9)), rng.standard_normal((6, 2, 3, 3))
    cpu = conv2d(_leaf(x), _leaf(w), stride=2, padding=1, groups=2)
    for path in ("numpy", "cuda", "auto"):
        with config.using_kernels(path):
            xg, wg = _leaf(x).to("cuda"), _leaf(w).to("cuda")
            y = conv2d(xg, wg, stride=2, padding=1, groups=2)
            np.testing.assert_allclose(y.numpy(), cpu.numpy(), rtol=1e-10, atol=1e-10)


def test_an_empty_batch_flows_through_conv_and_pools(kernel_path):
    from minidl.functional.pool import avg_pool2d, max_pool2d

    x = _leaf(np.zeros((0, 4, 6, 6)))
    w = _leaf(np.ones((6, 2, 3, 3)))
    y = conv2d(x, w, padding=1, groups=2)
    z = conv_transpose2d(y, minidl.tensor(np.ones((6, 1, 2, 2))), stride=2)
    (max_pool2d(y, 2).sum() + avg_pool2d(y, 2).sum() + z.sum()).backward()
    assert y.shape == (0, 6, 6, 6) and z.shape == (0, 1, 12, 12)
    assert x.grad.shape == (0, 4, 6, 6)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((6, 2, 3, 3)))

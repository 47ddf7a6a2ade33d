"""CUDA kernels: under Numba's simulator in a subprocess (no GPU needed), and on a real GPU
with CuPy arrays when one is present.

On the GPU the float32 results are held to a rounding-error bound rather than a fixed
tolerance: a sum of n products computed in float32 is within about n * 2**-24 times the sum
of the products' absolute values of the exact (float64) sum, whatever order the tiled
kernels add them in."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_cuda_kernels_match_reference_under_the_simulator():
    """A separate process, so NUMBA_ENABLE_CUDASIM is set before Numba is first imported
    and this process's Numba is left alone."""
    pytest.importorskip("numba", reason="Numba is not installed")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(HERE / "cudasim_cases.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all CUDA kernels match" in done.stdout


@pytest.mark.gpu
def test_cuda_kernels_on_cupy_arrays_match_numpy_reference():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA device visible to Numba")
    from minidl.kernels import conv_cuda, conv_numpy, matmul_cuda, pool_cuda, pool_numpy

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 13, 11)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    geo = ((2, 1), (1, 1), (1, 2), 3)
    y = conv_numpy.conv2d_forward(x, w, *geo)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    xg, wg, gyg = cupy.asarray(x), cupy.asarray(w), cupy.asarray(gy)
    np.testing.assert_allclose(conv_cuda.conv2d_forward(xg, wg, *geo).get(), y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv_cuda.conv2d_backward_input(gyg, wg, x.shape[2:], *geo).get(),
                               conv_numpy.conv2d_backward_input(gy, w, x.shape[2:], *geo), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv_cuda.conv2d_backward_weight(xg, gyg, w.shape[2:], *geo).get(),
                               conv_numpy.conv2d_backward_weight(x, gy, w.shape[2:], *geo), rtol=1e-3, atol=1e-3)
    pool_geo = ((3, 3), (2, 2), (1, 1), (1, 1))
    yp, ip = pool_numpy.max_pool2d_forward(x, *pool_geo)
    yp_gpu, ip_gpu = pool_cuda.max_pool2d_forward(xg, *pool_geo)
    np.testing.assert_array_equal(yp_gpu.get(), yp)
    np.testing.assert_array_equal(ip_gpu.get(), ip)
    a = rng.standard_normal((70, 45)).astype(np.float32)
    b = rng.standard_normal((45, 33)).astype(np.float32)
    np.testing.assert_allclose(matmul_cuda.matmul_2d(cupy.asarray(a), cupy.asarray(b)).get(), a @ b, rtol=1e-4, atol=1e-4)


def _cuda_or_skip():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA device visible to Numba")
    return cupy


def _assert_within_rounding(got, exact, magnitude, terms, dtype, what):
    """|got - exact| <= 2 * terms * eps(dtype) * magnitude (+ a hair for exact zeros)."""
    bound = 2 * terms * np.finfo(dtype).eps * magnitude + 1e-30
    error = np.abs(got.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (f"{what}: error {error[worst]:.3g} over the bound {bound[worst]:.3g} "
                                    f"at {worst}, shape {got.shape} {got.dtype}")


GPU_CONV_CASES = [  # x shape, w shape, stride, padding, dilation, groups, dtype
    ((3, 20, 18, 17), (70, 20, 3, 3), (1, 1), (1, 1), (1, 1), 1, np.float32),  # 2 x 15 tiles of 64 x 64, K = 180
    ((2, 12, 15, 14), (18, 4, 3, 2), (2, 3), (1, 2), (2, 1), 3, np.float64),   # groups, stride, dilation
    ((4, 32, 11, 9), (32, 1, 3, 3), (2, 2), (1, 1), (1, 1), 32, np.float32),   # depthwise
    ((2, 3, 40, 37), (5, 3, 5, 5), (1, 1), (2, 2), (1, 1), 1, np.float32),     # few channels, long pixel sum
]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CONV_CASES, ids=lambda c: f"{c[0]}x{c[1]}-g{c[5]}-{np.dtype(c[6]).name}")
def test_cuda_tiled_conv2d_matches_float64_reference_on_gpu(case):
    cupy = _cuda_or_skip()
    from minidl.kernels import conv_cuda, conv_numpy
    from minidl.kernels.window import conv_output_hw

    xs, ws, stride, padding, dilation, groups, dtype = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    out_hw = conv_output_hw(xs[2:], ws[2:], stride, padding, dilation)
    gy = rng.standard_normal((xs[0], ws[0]) + out_hw).astype(dtype)
    geo = (stride, padding, dilation, groups)
    x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    xg, wg, gyg = cupy.asarray(x), cupy.asarray(w), cupy.asarray(gy)
    taps = ws[1] * ws[2] * ws[3]
    _assert_within_rounding(conv_cuda.conv2d_forward(xg, wg, *geo).get(), conv_numpy.conv2d_forward(x64, w64, *geo),
                            conv_numpy.conv2d_forward(np.abs(x64), np.abs(w64), *geo), taps, dtype, "forward")
    _assert_within_rounding(conv_cuda.conv2d_backward_input(gyg, wg, xs[2:], *geo).get(),
                            conv_numpy.conv2d_backward_input(gy64, w64, xs[2:], *geo),
                            conv_numpy.conv2d_backward_input(np.abs(gy64), np.abs(w64), xs[2:], *geo),
                            (ws[0] // groups) * ws[2] * ws[3], dtype, "input gradient")
    _assert_within_rounding(conv_cuda.conv2d_backward_weight(xg, gyg, ws[2:], *geo).get(),
                            conv_numpy.conv2d_backward_weight(x64, gy64, ws[2:], *geo),
                            conv_numpy.conv2d_backward_weight(np.abs(x64), np.abs(gy64), ws[2:], *geo),
                            xs[0] * out_hw[0] * out_hw[1], dtype, "weight gradient")


@pytest.mark.gpu
@pytest.mark.parametrize("m, k, n, dtype", [(130, 70, 66, np.float32), (65, 17, 129, np.float64),
                                            (1, 1, 1, np.float32), (64, 16, 64, np.float32), (3, 1000, 2, np.float32)])
def test_cuda_register_blocked_matmul_matches_float64_reference_on_gpu(m, k, n, dtype):
    cupy = _cuda_or_skip()
    from minidl.kernels import matmul_cuda

    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = matmul_cuda.matmul_2d(cupy.asarray(a), cupy.asarray(b)).get()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    _assert_within_rounding(got, a64 @ b64, np.abs(a64) @ np.abs(b64), k, dtype, "matmul")

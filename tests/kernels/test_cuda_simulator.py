"""CUDA kernels: under Numba's simulator in a subprocess (no GPU needed), and on a real GPU
with CuPy arrays when one is present."""
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

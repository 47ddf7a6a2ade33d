"""The Numba CUDA kernels against the NumPy reference, run under Numba's CUDA simulator.

Run as a script in its own process with ``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is
imported); ``test_cuda_simulator.py`` does that.  The simulator executes every GPU thread
as a Python thread, so the shapes are tiny but chosen to hit partial blocks and tiles,
padding, strides, dilation and groups.  Exits non-zero, naming the case, on any mismatch.

The tiled kernels run here with ``SIMULATOR_TILING`` (8 x 8 output tiles of 16 threads,
4-deep reduction steps), so that small problems still span several tiles; a last block of
cases runs the very same kernels with ``GPU_TILING`` (64 x 64 tiles of 256 threads), the
sizes a real GPU uses.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    sys.exit("run with NUMBA_ENABLE_CUDASIM=1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import minidl.config  # noqa: E402,F401  (registers minidl.kernels in a source checkout)
from minidl.kernels import conv_cuda, conv_numpy, matmul_cuda, pool_cuda, pool_numpy  # noqa: E402
from minidl.kernels.window import conv_output_hw  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from conv_cases import conv_geometry, pool_geometry  # noqa: E402  (this folder is on sys.path)

rng = np.random.default_rng(0)
failures = []


def check(name, got, want, tol):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype or not np.allclose(got, want, rtol=tol, atol=tol):
        failures.append(f"{name}: got {got.shape} {got.dtype}, want {want.shape} {want.dtype}, "
                        f"max diff {np.max(np.abs(got - want)) if got.shape == want.shape else 'n/a'}")
    else:
        print("ok", name)


CONV_CASES = [  # x shape, w shape, stride, padding, dilation, groups, dtype
    ((2, 4, 5, 4), (6, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2, np.float64),
    ((1, 3, 6, 5), (3, 1, 2, 3), (1, 2), (0, 1), (2, 1), 3, np.float64),
    ((2, 2, 4, 4), (3, 2, 3, 3), (1, 1), (1, 1), (1, 1), 1, np.float32),
    # tile edges (8 x 8 tiles, 4-deep steps under the simulator): 9 output channels per
    # group (a full and a partial row tile), K = 3*2*2 = 12 taps (3 steps), 5 x 3 = 15 pixels
    ((1, 6, 4, 5), (18, 3, 2, 2), (1, 1), (1, 0), (1, 1), 2, np.float32),
    # K = 1*1*2 = 2 taps, smaller than one reduction step; stride 2 along the rows
    ((1, 1, 5, 5), (3, 1, 1, 2), (2, 1), (0, 0), (1, 1), 1, np.float64),
    # groups with several tiles per group: 10 output channels and 9 input channels a group
    # (two row tiles in the forward and in the input gradient), dilation along the columns
    ((1, 18, 4, 3), (20, 9, 1, 2), (1, 1), (0, 1), (1, 2), 2, np.float64),
    # depthwise, strided: 3 groups of one channel
    ((1, 3, 5, 4), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), 3, np.float32),
    # 49 output pixels: the weight gradient's pixel sum is split over 3 blocks (split-K)
    ((1, 1, 8, 8), (2, 1, 2, 2), (1, 1), (0, 0), (1, 1), 1, np.float64),
]
splits_seen = set()


def check_conv(name, xs, ws, stride, padding, dilation, groups, dtype):
    """Forward and both gradients of one geometry against conv_numpy (same dtype)."""
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    out_hw = conv_output_hw(xs[2:], ws[2:], stride, padding, dilation)
    gy = rng.standard_normal((xs[0], ws[0]) + out_hw).astype(dtype)
    geo = (stride, padding, dilation, groups)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    tiling = conv_cuda.TILING
    row_tiles = -(-(ws[0] // groups) // tiling.block_m)
    col_tiles = -(-(ws[1] * ws[2] * ws[3]) // tiling.block_n)
    n_pix = xs[0] * out_hw[0] * out_hw[1]
    splits_seen.add(conv_cuda.split_count(row_tiles * col_tiles * groups, n_pix, tiling.depth, groups))
    check(f"{name} forward", conv_cuda.conv2d_forward(x, w, *geo), conv_numpy.conv2d_forward(x, w, *geo), tol)
    check(f"{name} input grad", conv_cuda.conv2d_backward_input(gy, w, xs[2:], *geo),
          conv_numpy.conv2d_backward_input(gy, w, xs[2:], *geo), tol)
    check(f"{name} weight grad", conv_cuda.conv2d_backward_weight(x, gy, ws[2:], *geo),
          conv_numpy.conv2d_backward_weight(x, gy, ws[2:], *geo), tol)


for index, case in enumerate(CONV_CASES):
    check_conv(f"conv{index}", *case)
if not {1, 2} <= splits_seen or max(splits_seen) < 3:
    failures.append(f"the conv cases should split the weight gradient 1, 2 and 3+ ways, saw {sorted(splits_seen)}")

for name, args in [("mixed dtypes", (np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2), np.float32))),
                   ("float16", (np.zeros((1, 1, 3, 3), np.float16), np.zeros((1, 1, 2, 2), np.float16)))]:
    try:
        conv_cuda.conv2d_forward(*args, (1, 1), (0, 0), (1, 1), 1)
        failures.append(f"conv2d_forward accepted {name}")
    except TypeError as error:
        print("ok conv refuses", name, "--", error)

POOL_CASES = [  # x shape, kernel, stride, padding, dilation, count_include_pad, dtype
    ((1, 2, 5, 4), (3, 2), (2, 1), (1, 1), (1, 2), False, np.float64),
    ((2, 1, 4, 5), (2, 2), (2, 2), (0, 0), (1, 1), True, np.float32),
    ((1, 1, 3, 3), (3, 3), (1, 1), (1, 1), (1, 1), True, np.float64),  # overlapping windows
]
for index, (xs, kernel, stride, padding, dilation, cip, dtype) in enumerate(POOL_CASES):
    x = rng.standard_normal(xs).astype(dtype)
    y, indices = pool_numpy.max_pool2d_forward(x, kernel, stride, padding, dilation)
    y_gpu, indices_gpu = pool_cuda.max_pool2d_forward(x, kernel, stride, padding, dilation)
    check(f"pool{index} max forward", y_gpu, y, 1e-12)
    check(f"pool{index} max indices", indices_gpu, indices, 0)
    gy = rng.standard_normal(y.shape).astype(dtype)
    check(f"pool{index} max backward", pool_cuda.max_pool2d_backward(gy, indices, xs[2:], kernel, stride, padding, dilation),
          pool_numpy.max_pool2d_backward(gy, indices, xs[2:]), 1e-6)
    a = pool_numpy.avg_pool2d_forward(x, kernel, stride, padding, cip)
    check(f"pool{index} avg forward", pool_cuda.avg_pool2d_forward(x, kernel, stride, padding, cip), a, 1e-6)
    ga = rng.standard_normal(a.shape).astype(dtype)
    check(f"pool{index} avg backward", pool_cuda.avg_pool2d_backward(ga, xs[2:], kernel, stride, padding, cip),
          pool_numpy.avg_pool2d_backward(ga, xs[2:], kernel, stride, padding, cip), 1e-6)

MATMUL_CASES = [  # (M, K, N): partial tiles, K below one step, exact tiles, K = 0
    (17, 20, 18, np.float64), (5, 33, 3, np.float32), (1, 1, 1, np.float64),
    (9, 3, 8, np.float32), (16, 8, 24, np.float32), (4, 0, 3, np.float64),
]
for m, k, n, dtype in MATMUL_CASES:
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    check(f"matmul {m}x{k}x{n} {np.dtype(dtype).name}", matmul_cuda.matmul_2d(a, b), a @ b,
          1e-10 if dtype == np.float64 else 1e-4)
a = rng.standard_normal((2, 3, 4))
b = rng.standard_normal((4, 5))
check("matmul batched", matmul_cuda.matmul(a, b), a @ b, 1e-10)

# A few hypothesis-drawn geometries on top of the fixed cases (the simulator is slow).
DRAWN = settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@DRAWN
@given(g=conv_geometry(max_groups=2, max_per_group=2, max_batch=1, max_extra=2))
def drawn_conv(g):
    x = rng.standard_normal(g["x_shape"])
    w = rng.standard_normal(g["w_shape"])
    geo = (g["stride"], g["padding"], g["dilation"], g["groups"])
    out_hw = conv_output_hw(x.shape[2:], w.shape[2:], g["stride"], g["padding"], g["dilation"])
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + out_hw)
    np.testing.assert_allclose(conv_cuda.conv2d_forward(x, w, *geo), conv_numpy.conv2d_forward(x, w, *geo), atol=1e-10)
    np.testing.assert_allclose(conv_cuda.conv2d_backward_input(gy, w, x.shape[2:], *geo),
                               conv_numpy.conv2d_backward_input(gy, w, x.shape[2:], *geo), atol=1e-10)
    np.testing.assert_allclose(conv_cuda.conv2d_backward_weight(x, gy, w.shape[2:], *geo),
                               conv_numpy.conv2d_backward_weight(x, gy, w.shape[2:], *geo), atol=1e-10)


@DRAWN
@given(g=pool_geometry(max_batch=1, max_extra=2))
def drawn_pool(g):
    x = rng.standard_normal(g["x_shape"])
    geo = (g["kernel"], g["stride"], g["padding"], g["dilation"])
    y, indices = pool_numpy.max_pool2d_forward(x, *geo)
    y_gpu, indices_gpu = pool_cuda.max_pool2d_forward(x, *geo)
    np.testing.assert_array_equal(y_gpu, y)
    np.testing.assert_array_equal(indices_gpu, indices)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pool_cuda.max_pool2d_backward(gy, indices, x.shape[2:], *geo),
                               pool_numpy.max_pool2d_backward(gy, indices, x.shape[2:]), atol=1e-12)
    avg = geo[:3]
    a = pool_numpy.avg_pool2d_forward(x, *avg, False)
    np.testing.assert_allclose(pool_cuda.avg_pool2d_forward(x, *avg, False), a, atol=1e-12)
    ga = rng.standard_normal(a.shape)
    np.testing.assert_allclose(pool_cuda.avg_pool2d_backward(ga, x.shape[2:], *avg, False),
                               pool_numpy.avg_pool2d_backward(ga, x.shape[2:], *avg, False), atol=1e-12)


for drawn in (drawn_conv, drawn_pool):
    try:
        drawn()
        print("ok", drawn.__name__, "(4 drawn geometries)")
    except AssertionError as error:
        failures.append(f"{drawn.__name__}: {error}")

# The real GPU tile sizes (64 x 64 tiles, 256 threads, 16-deep steps), same kernels: a few
# problems that still span a partial tile, two groups, and a pixel sum split in two.
conv_cuda.TILING = matmul_cuda.TILING = matmul_cuda.GPU_TILING
splits_seen.clear()
check_conv("gpu-tiling conv", (2, 1, 8, 8), (2, 1, 2, 2), (1, 1), (1, 1), (1, 1), 1, np.float32)  # 162 pixels
check_conv("gpu-tiling conv", (1, 4, 3, 5), (4, 2, 2, 2), (2, 1), (1, 0), (1, 2), 2, np.float64)
if splits_seen != {1, 2}:
    failures.append(f"the gpu-tiling conv cases should split the weight gradient 1 and 2 ways, saw {splits_seen}")
a = rng.standard_normal((67, 18)).astype(np.float32)
b = rng.standard_normal((18, 5)).astype(np.float32)
check("gpu-tiling matmul 67x18x5 float32", matmul_cuda.matmul_2d(a, b), a @ b, 1e-4)
conv_cuda.TILING = matmul_cuda.TILING = matmul_cuda.SIMULATOR_TILING

from minidl.kernels import registry  # noqa: E402

# The registry's probe (compile with cache=True, run, read back) must pass where Numba CUDA works.
if registry.path_status("cuda") != (True, ""):
    failures.append(f"registry probe: {registry.path_status('cuda')}")
else:
    print("ok registry probe")

if failures:
    sys.exit("CUDA simulator mismatches:\n" + "\n".join(failures))
print("all CUDA kernels match the NumPy reference under the simulator")

"""The Numba blocked matmul kernel against NumPy's BLAS matmul."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

matmul_numba = pytest.importorskip("minidl.kernels.matmul_numba", reason="Numba is not installed")
numba = pytest.importorskip("numba", reason="Numba is not installed")


def _assert_matches_blas(a, b, c):
    tol = 1e-4 if c.dtype == np.float32 else 1e-11
    np.testing.assert_allclose(c, a @ b, rtol=tol, atol=tol * np.sqrt(max(a.shape[1], 1)))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 530),
       dtype=st.sampled_from(["float32", "float64"]))
def test_blocked_matmul_matches_blas_on_odd_sizes(m, k, n, dtype):
    """Sizes straddle the 4-row register block, the k panel (256), the 512-column panel and
    the switch from row to column tasks (16 rows per thread)."""
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = matmul_numba.matmul_2d(a, b)
    assert c.dtype == np.dtype(dtype)
    assert c.shape == (m, n)
    _assert_matches_blas(a, b, c)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3, 4)), ((5, 3), (3,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4, 6))],
)
def test_matmul_follows_numpy_shape_rules(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    out = matmul_numba.matmul(a, b)
    ref = np.matmul(a, b)
    assert np.shape(out) == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_matmul_rejects_misaligned_shapes_naming_them():
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        matmul_numba.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul_2d: expected \(M, K\) @ \(K, N\), got \(2, 3\) @ \(2, 3\)"):
        matmul_numba.matmul_2d(np.ones((2, 3)), np.ones((2, 3)))


def test_non_contiguous_inputs_are_handled():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 30)).T  # Fortran-ordered view
    b = rng.standard_normal((80, 25))[::2]  # every other row
    np.testing.assert_allclose(matmul_numba.matmul_2d(a, b), a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m, k, n", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)])
def test_empty_products_are_zero_filled_with_the_right_shape(m, k, n):
    for dtype in (np.float32, np.float64):
        c = matmul_numba.matmul_2d(np.ones((m, k), dtype), np.ones((k, n), dtype))
        assert c.shape == (m, n) and c.dtype == dtype
        assert not np.any(c)


@pytest.mark.parametrize("m, k, n", [(1, 700, 1), (1, 300, 517), (517, 300, 1), (9, 1, 300), (300, 1, 9), (2, 2, 2)])
def test_vector_like_and_depth_one_shapes_match_blas(m, k, n):
    """1 x K rows, K x 1 columns, K = 1: the column-task split and every tail loop."""
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        _assert_matches_blas(a, b, matmul_numba.matmul_2d(a, b))


def test_integer_inputs_are_computed_in_float64():
    a = np.arange(12).reshape(3, 4)
    b = np.arange(8).reshape(4, 2)
    c = matmul_numba.matmul_2d(a, b)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, (a @ b).astype(np.float64))


@pytest.mark.parametrize(
    "m, n, threads, expected",
    [
        (256, 256, 2, (128, 256)),    # one row block per thread, all columns
        (1024, 1024, 2, (512, 512)),  # at most _NB columns per task: four tasks
        (300, 300, 2, (152, 300)),    # ceil(300 / 2) = 150, rounded up to a multiple of 4
        (256, 256, 1, (256, 256)),    # one thread: one task
        (3, 2000, 1, (4, 512)),       # one thread, very wide: column blocks of _NB
        (32, 256, 2, (16, 256)),      # exactly 16 rows per thread: still rows
        (31, 256, 2, (31, 128)),      # fewer: column blocks with every row instead
        (1, 300, 2, (1, 160)),        # a row vector: ceil(300 / 2) = 150, rounded up to 16
        (1000, 1, 2, (500, 1)),       # matrix-vector: rows split in two
        (2, 2, 4, (2, 16)),           # tiny: a single task
    ],
)
def test_task_split_follows_the_shape(m, n, threads, expected):
    assert matmul_numba._task_split(m, n, threads) == expected


@pytest.mark.parametrize("m, k, n", [(256, 64, 256), (31, 64, 300), (131, 517, 1030), (37, 260, 129), (3, 40, 600)])
def test_every_thread_count_gives_the_same_product(m, k, n):
    """The task grid changes with the thread count; the product must not (beyond rounding)."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    ref = a @ b
    saved = numba.get_num_threads()
    try:
        for threads in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(threads)
            np.testing.assert_allclose(matmul_numba.matmul_2d(a, b), ref, rtol=1e-11, atol=1e-11)
    finally:
        numba.set_num_threads(saved)


def test_every_task_split_covers_c_exactly_once():
    """Any (rows, columns) task grid, even ones _task_split never picks, fills all of C."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((23, 270)).astype(np.float32)
    b = rng.standard_normal((270, 45)).astype(np.float32)
    for mb, nb in [(4, 16), (5, 7), (23, 45), (8, 45), (23, 1), (100, 100)]:
        c = np.full((23, 45), np.nan, np.float32)  # a block left out stays NaN
        matmul_numba._matmul_kernel(a, b, c, mb, nb)
        _assert_matches_blas(a, b, c)


def test_packed_panel_holds_the_block_of_b():
    rng = np.random.default_rng(2)
    b = rng.standard_normal((300, 530)).astype(np.float32)
    panel = np.zeros((256, 100), np.float32)
    matmul_numba._pack_panel(b, panel, 256, 430, 44, 100)  # the bottom-right edge block
    np.testing.assert_array_equal(panel[:44], b[256:300, 430:530])
    assert not np.any(panel[44:])


def test_many_row_blocks_and_panels_match_blas():
    """Several k panels and column tasks, rows not a multiple of 4."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((131, 517))
    b = rng.standard_normal((517, 1030))
    np.testing.assert_allclose(matmul_numba.matmul_2d(a, b), a @ b, rtol=1e-11, atol=1e-11)


def test_wide_vector_request_reaches_the_compiled_function():
    """The kernel's request for 512-bit vectors is an attribute of the compiled function."""

    @numba.njit
    def scaled(x):
        matmul_numba._prefer_512_bit_vectors()
        return 2.0 * x

    assert scaled(1.5) == 3.0
    llvm_ir = "\n".join(scaled.inspect_llvm().values())
    assert '"prefer-vector-width"="512"' in llvm_ir

"""The Numba blocked matmul kernel against NumPy's BLAS matmul."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

matmul_numba = pytest.importorskip("minidl.kernels.matmul_numba", reason="Numba is not installed")


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 530), dtype=st.sampled_from(["float32", "float64"]))
def test_blocked_matmul_matches_blas_on_odd_sizes(m, k, n, dtype):
    """Sizes straddle the 4-row register tile and the k/j panels (256, 512)."""
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = matmul_numba.matmul_2d(a, b)
    assert c.dtype == np.dtype(dtype)
    tol = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(c, a @ b, rtol=tol, atol=tol * np.sqrt(k))


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


def test_non_contiguous_inputs_are_handled():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 30)).T  # Fortran-ordered view
    b = rng.standard_normal((80, 25))[::2]  # every other row
    np.testing.assert_allclose(matmul_numba.matmul_2d(a, b), a @ b, rtol=1e-12, atol=1e-12)


def test_packed_panels_hold_b_block_by_block():
    """Each packed panel is the block of B it stands for, edge panels included."""
    rng = np.random.default_rng(2)
    b = rng.standard_normal((300, 530)).astype(np.float32)
    kb, nb = 256, 512
    panels = matmul_numba._pack_panels(b, kb, nb)
    assert panels.shape == (2, 2, kb, nb)
    for p in range(2):
        for q in range(2):
            block = b[p * kb:(p + 1) * kb, q * nb:(q + 1) * nb]
            np.testing.assert_array_equal(panels[p, q, :block.shape[0], :block.shape[1]], block)


def test_many_row_blocks_and_panels_match_blas():
    """More row blocks than threads, several k and j panels, rows not a multiple of 4."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((131, 517))
    b = rng.standard_normal((517, 1030))
    np.testing.assert_allclose(matmul_numba.matmul_2d(a, b), a @ b, rtol=1e-11, atol=1e-11)

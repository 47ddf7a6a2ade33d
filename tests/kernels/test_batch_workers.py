"""run_shares: one share of the batch per BLAS thread, results in order, BLAS restored."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minidl.kernels import batch_workers
from minidl.kernels.batch_workers import blas_threads, run_shares


def test_shares_cover_the_batch_in_order_and_blas_is_restored():
    before = blas_threads()
    with threadpool_limits(limits=2, user_api="blas"):
        seen = []

        def job(lo, hi):
            seen.append((threading.get_ident(), blas_threads()))
            return list(range(lo, hi))

        parts = run_shares(7, job)
        assert blas_threads() == 2
    assert [i for part in parts for i in part] == list(range(7))
    assert len(parts) == 2 and [len(p) for p in parts] == [3, 4]
    assert all(threads == 1 for _, threads in seen)  # each worker ran a one-thread BLAS
    assert len({ident for ident, _ in seen}) == 2     # on two threads
    assert blas_threads() == before


def test_one_blas_thread_or_one_image_runs_in_the_caller():
    with threadpool_limits(limits=1, user_api="blas"):
        assert run_shares(5, lambda lo, hi: (lo, hi, threading.get_ident())) == [(0, 5, threading.get_ident())]
    with threadpool_limits(limits=2, user_api="blas"):
        assert run_shares(1, lambda lo, hi: (lo, hi)) == [(0, 1)]


def test_a_nested_call_runs_serially_instead_of_deadlocking():
    with threadpool_limits(limits=2, user_api="blas"):
        inner = run_shares(4, lambda lo, hi: run_shares(hi - lo, lambda a, b: (a, b)))
    assert inner == [[(0, 2)], [(0, 2)]]


def test_an_error_in_a_share_reaches_the_caller_and_frees_the_workers():
    def job(lo, hi):
        if lo > 0:
            raise ValueError("bad share")
        return lo

    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(ValueError, match="bad share"):
            run_shares(4, job)
        assert not batch_workers._lock.locked()
        assert run_shares(4, lambda lo, hi: hi - lo) == [2, 2]


def test_conv_result_does_not_depend_on_the_number_of_workers():
    from minidl.kernels import conv_numba

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 9, 9))
    w = rng.standard_normal((6, 4, 3, 3))
    geo = ((2, 1), (1, 1), (1, 1), 1)
    with threadpool_limits(limits=2, user_api="blas"):
        two = conv_numba.conv2d_forward(x, w, *geo)
    with threadpool_limits(limits=1, user_api="blas"):
        one = conv_numba.conv2d_forward(x, w, *geo)
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)

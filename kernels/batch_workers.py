"""Split a batch between worker threads, each running single-threaded BLAS on its share.

The GEMM form of a convolution alternates serial copies (building columns, cropping) with
BLAS products.  Left to itself, a multithreaded BLAS runs each product on every core and
then keeps its threads spinning for a while, so the serial copy that follows shares its
core with a spinning thread and the other cores idle or spin: measured on 2 cores, the
copies of a VGG-like layer ran 1.6x slower between BLAS calls than alone.  Cutting the
batch into one share per core instead, and letting each worker run its share start to
finish (copy, one-thread GEMM, copy) keeps every core busy with useful work and nothing
spinning -- the way a framework parallelises a convolution over the batch.

``run_shares(n, job)`` calls ``job(lo, hi)`` for consecutive shares ``[lo, hi)`` of
``range(n)`` and returns the results in share order.  It uses as many workers as the BLAS
has threads (what the user set, e.g. with ``threadpoolctl``), never more than ``n``, and
runs ``job(0, n)`` in the calling thread when that is one, when ``threadpoolctl`` is
missing, or when another call already holds the workers (no nesting, no deadlock).  The
jobs must release the GIL in their heavy parts (NumPy's matmul does; Numba kernels need
``nogil=True``) and must write only their own share of any output.  While the shares run,
the BLAS thread count is process-wide 1 (it is restored after), so a BLAS call from another
thread of the user's program in that window runs on one thread.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

__all__ = ["run_shares", "blas_threads"]

T = TypeVar("T")

_lock = threading.Lock()  # one batch split at a time; a second caller runs serially
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas = None  # threadpoolctl's handle on the loaded BLAS libraries, found on first use


def _blas_handle():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _blas = False
        else:
            _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def blas_threads() -> int:
    """The number of threads the BLAS under NumPy uses now (1 when it cannot be told)."""
    handle = _blas_handle()
    if not handle:
        return 1
    counts = [lib.get_num_threads() for lib in handle.lib_controllers]
    return max(counts) if counts else 1


def run_shares(n: int, job: Callable[[int, int], T]) -> list[T]:
    """[job(lo, hi) for each share of range(n)], one share per BLAS thread, in parallel.

    The calling thread runs the first share itself; the others go to a pool of
    ``workers - 1`` threads kept for the next call."""
    global _pool, _pool_size
    workers = min(blas_threads(), n)
    if workers <= 1 or not _lock.acquire(blocking=False):
        return [job(0, n)]
    try:
        if _pool is None or _pool_size < workers - 1:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool_size = workers - 1
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="minidl-batch")
        bounds = [n * i // workers for i in range(workers + 1)]
        libs = _blas_handle().lib_controllers
        saved = [lib.get_num_threads() for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        try:
            futures = [_pool.submit(job, bounds[i], bounds[i + 1]) for i in range(1, workers)]
            try:
                first = job(bounds[0], bounds[1])
            finally:  # never leave a worker writing into buffers after an error here
                rest = [f.result() for f in futures]
            return [first] + rest
        finally:
            for lib, threads in zip(libs, saved):
                lib.set_num_threads(threads)
    finally:
        _lock.release()

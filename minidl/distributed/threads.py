"""How many BLAS, OpenMP and Numba threads each process gets when several share a machine.

A single process uses every core: OpenBLAS, OpenMP and Numba each start a pool with one
thread per core. P processes on one machine that each do the same ask for P times as many
threads as there are cores. OpenBLAS's idle threads spin while they wait for work, so the
processes then slow each other down. On this project's 2-core machine, 2 unbound processes
with 2 BLAS threads each trained 2 to 16 times slower than with 1 thread each. The rule used
here gives each process its share of the cores:

    threads = max(1, min(cores this process may run on, cores of the machine // P))

P is the number of processes on this machine (``Communicator.local_size()``). "Cores this
process may run on" is the affinity mask, which already holds 1 core when the launcher binds
each process to a core (Open MPI's default for 2 processes). The thread pools are set at run
time (threadpoolctl for BLAS and OpenMP, ``numba.set_num_threads``). The variables
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``NUMBA_NUM_THREADS``
are also set, so that child processes such as data-loading workers start with the same pools.
"""
from __future__ import annotations

import os
import sys

from .comm import Communicator

__all__ = ["THREAD_VARIABLES", "threads_per_process", "limit_threads", "pin_threads"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_process(local_size: int, usable_cores: int | None = None, machine_cores: int | None = None) -> int:
    """``max(1, min(usable_cores, machine_cores // local_size))``: this process's share of
    the cores when ``local_size`` processes run on one machine (defaults: the affinity mask
    and ``os.cpu_count()``)."""
    if local_size < 1:
        raise ValueError(f"threads_per_process: local_size must be >= 1, got {local_size}")
    usable = _usable_cores() if usable_cores is None else usable_cores
    machine = (os.cpu_count() or 1) if machine_cores is None else machine_cores
    return max(1, min(usable, machine // local_size))


def limit_threads(n: int) -> int:
    """Set the BLAS/OpenMP and Numba thread pools of this process to ``n`` threads, and the
    thread variables for the processes it starts; returns ``n``."""
    if n < 1:
        raise ValueError(f"limit_threads: the number of threads must be >= 1, got {n}")
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl, BLAS pools started earlier keep their size
        pass
    else:
        threadpool_limits(limits=n)  # not used as a context manager: the limit stays
    if "numba" in sys.modules:  # not imported yet: NUMBA_NUM_THREADS above applies at import
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


def pin_threads(comm: Communicator, threads: int | str | None = "auto") -> int | None:
    """Apply the thread rule for ``comm`` and return the thread count set (None: unchanged).

    ``threads="auto"`` uses ``threads_per_process(comm.local_size())``, unless one of the
    thread variables is already set in the environment (the user chose) or this is the only
    process on its machine (nothing to share). An int sets exactly that many threads;
    None changes nothing. Every process of ``comm`` must call it (it may count the
    processes on each machine, a collective operation).
    """
    if threads is None:
        return None
    if isinstance(threads, int) and not isinstance(threads, bool):
        return limit_threads(threads)
    if threads != "auto":
        raise ValueError(f"pin_threads: threads must be 'auto', an int or None, got {threads!r}")
    local = comm.local_size()
    if local == 1 or any(var in os.environ for var in THREAD_VARIABLES):
        return None
    return limit_threads(threads_per_process(local))

"""Communicators: the few collective operations data-parallel training needs.

``MPIComm`` wraps an mpi4py communicator; ``SingleProcessComm`` is the same interface for
one process without MPI, so code written for several processes runs unchanged (and minidl
needs no mpi4py) on one.

GPU arrays (CuPy): when the MPI library is CUDA-aware (Open MPI built with CUDA, MVAPICH2-GDR,
...), device buffers are handed to MPI directly through ``__cuda_array_interface__``; otherwise
they are staged through pinned (page-locked) host memory: device -> pinned host -> MPI ->
pinned host -> device. Set ``MINIDL_MPI_CUDA_AWARE=1``/``0`` to override the detection. For
several GPUs in one machine, NCCL (``cupy.cuda.nccl``) is the faster transport: it runs the
allreduce on the GPUs over NVLink/PCIe without touching the host, with the same bucket
layout as here.
"""
from __future__ import annotations

import os
import pickle
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .. import backend

__all__ = ["Communicator", "SingleProcessComm", "MPIComm", "get_comm"]


class Communicator(ABC):
    """The interface: ``rank``, ``size``, ``barrier``, ``bcast_``, ``allreduce_``, ``allgather``,
    and ``local_size`` (processes on this machine; 1 unless a subclass knows better)."""

    rank: int = 0
    size: int = 1

    def local_size(self) -> int:
        """How many of the processes run on this process's machine (it included)."""
        return 1

    @abstractmethod
    def barrier(self) -> None:
        """Wait until every process gets here."""

    @abstractmethod
    def bcast_(self, array: Any, root: int = 0) -> Any:
        """Overwrite ``array`` in place with root's copy; returns it."""

    @abstractmethod
    def allreduce_(self, array: Any) -> Any:
        """Replace ``array`` in place by the element-wise sum over all processes; returns it."""

    @abstractmethod
    def allgather(self, obj: Any) -> list:
        """Every process's ``obj`` (a small picklable value), in rank order."""


class SingleProcessComm(Communicator):
    """One process: every collective is the identity."""

    def barrier(self) -> None:
        return None

    def bcast_(self, array: Any, root: int = 0) -> Any:
        return array

    def allreduce_(self, array: Any) -> Any:
        return array

    def allgather(self, obj: Any) -> list:
        return [obj]


def _cuda_aware(MPI) -> bool:
    env = os.environ.get("MINIDL_MPI_CUDA_AWARE")
    if env is not None:
        return env not in ("0", "false", "False", "")
    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        try:
            return bool(query())
        except Exception:
            return False
    return False


class MPIComm(Communicator):
    """An mpi4py communicator (``MPI.COMM_WORLD`` by default)."""

    def __init__(self, comm: Any = None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.cuda_aware = _cuda_aware(MPI)
        self._pinned: dict = {}
        self._local_size: int | None = None

    def local_size(self) -> int:
        """Processes sharing this machine's memory (``COMM_TYPE_SHARED``); collective on first call."""
        if self._local_size is None:
            node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
            self._local_size = node.Get_size()
            node.Free()
        return self._local_size

    def barrier(self) -> None:
        self.comm.Barrier()

    def _host_buffer(self, array: Any):
        """A pinned host array of the device array's shape and dtype (reused between calls)."""
        key = (array.shape, array.dtype.str)
        buf = self._pinned.get(key)
        if buf is None:
            import cupyx  # only reached with CuPy arrays

            buf = self._pinned[key] = cupyx.empty_pinned(array.shape, array.dtype)
        return buf

    def _collective(self, array: Any, op) -> Any:
        xp = backend.get_array_module(array)
        if xp is np or self.cuda_aware:
            if xp is not np:
                xp.cuda.get_current_stream().synchronize()
            op(array)
            return array
        host = self._host_buffer(array)
        array.get(out=host)
        op(host)
        array.set(host)
        return array

    def bcast_(self, array: Any, root: int = 0) -> Any:
        return self._collective(array, lambda buf: self.comm.Bcast(buf, root=root))

    def allreduce_(self, array: Any) -> Any:
        return self._collective(array, lambda buf: self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM))

    def allgather(self, obj: Any) -> list:
        return [pickle.loads(b) for b in self.comm.allgather(pickle.dumps(obj))]


def get_comm() -> Communicator:
    """``MPIComm`` when running under an MPI launcher with mpi4py installed, else
    ``SingleProcessComm``. Under ``mpirun`` without mpi4py, a clear error."""
    launched = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if launched:
            raise RuntimeError(
                "running under an MPI launcher but mpi4py is not installed: "
                "`pip install mpi4py` (with an MPI library such as Open MPI installed)"
            ) from None
        return SingleProcessComm()
    if not launched:
        return SingleProcessComm()
    return MPIComm()

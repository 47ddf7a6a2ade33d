"""``DistributedDataParallel``: keep model replicas identical by averaging their gradients.

At construction every process checks that all replicas have the same parameters (names,
shapes, dtypes: a clear error names the first difference), then rank 0's parameters and
buffers are broadcast to all. After each backward pass ``sync_gradients()`` averages the
gradients: the parameters are grouped into buckets of about ``bucket_size_mb`` (in reverse
registration order, the order in which backward finishes them), each bucket's gradients
are copied into one flat buffer, one allreduce sums the buffer over the processes, and the
average (the sum times 1 / number of processes) becomes the gradients. One call per bucket,
not per parameter: few large messages use the network far better than many small ones.

Each bucket's flat buffer is allocated once and reused every step, and the averaged
gradients are views into it (as with PyTorch's ``gradient_as_bucket_view``). A fresh 1 MB
buffer per step made both the copy and the next step's compute slower: on the project's
2-core machine, 2 processes trained the benchmark MLP at global batch 128 at 32-45k
samples/s with a fresh buffer against 51-72k with a reused one (interleaved launches).
So ``p.grad`` after ``sync_gradients()`` holds until the next ``sync_gradients()``; copy it
to keep it longer.

When several processes share a machine, the constructor gives each its share of the cores
for its BLAS/OpenMP/Numba thread pools (``threads_per_process="auto"``, see
``minidl.distributed.threads``), so P processes do not start P times as many threads as
there are cores.

Why averaging is exact: with per-process batches of equal size B, the mean loss over the
global batch of B * P samples is the mean of the P per-process mean losses, so its gradient
is the mean of the per-process gradients.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..nn import Module
from ..tensor import Tensor
from .comm import Communicator, get_comm
from .threads import pin_threads

__all__ = ["DistributedDataParallel", "bucket_parameters"]


def bucket_parameters(params: list[Tensor], bucket_bytes: int) -> list[list[Tensor]]:
    """Group parameters (already in the order to reduce) into buckets of at most
    ``bucket_bytes`` (a larger single parameter gets a bucket of its own); a bucket holds one
    dtype and one device, so it can be one flat buffer."""
    buckets: list[list[Tensor]] = []
    size = 0
    for p in params:
        nbytes = p.data.nbytes
        if buckets and size + nbytes <= bucket_bytes and p.dtype == buckets[-1][0].dtype \
                and p.device == buckets[-1][0].device:
            buckets[-1].append(p)
            size += nbytes
        else:
            buckets.append([p])
            size = nbytes
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over ``comm`` (default: ``get_comm()``).

    Call the wrapper like the module; after ``loss.backward()`` call ``sync_gradients()``
    (or use ``ddp.backward(loss)``, which does both) before ``optimizer.step()``. Its
    ``state_dict`` keys carry the ``module.`` prefix, as PyTorch's do.

    ``bucket_size_mb``: the most gradient bytes per allreduce (a larger parameter gets a
    bucket of its own). ``threads_per_process``: "auto" gives each process on a shared
    machine its share of the cores for its thread pools unless a thread variable such as
    ``OMP_NUM_THREADS`` is already set; an int sets that many threads; None leaves the
    pools alone (see ``minidl.distributed.threads``). The count set is ``self.threads``
    (None when unchanged).
    """

    def __init__(self, module: Module, comm: Communicator | None = None, bucket_size_mb: float = 25.0,
                 threads_per_process: int | str | None = "auto"):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        self.module = module
        object.__setattr__(self, "comm", comm or get_comm())
        object.__setattr__(self, "bucket_bytes", int(bucket_size_mb * 2**20))
        object.__setattr__(self, "threads", pin_threads(self.comm, threads_per_process))
        self._check_replicas_agree()
        self.broadcast_state()
        params = [p for p in module.parameters() if p.requires_grad]
        object.__setattr__(self, "buckets", bucket_parameters(params[::-1], self.bucket_bytes))
        object.__setattr__(self, "_flat", [None] * len(self.buckets))

    def _check_replicas_agree(self) -> None:
        mine = [(name, tuple(p.shape), str(p.dtype)) for name, p in self.module.named_parameters()]
        everyone = self.comm.allgather(mine)
        for rank, theirs in enumerate(everyone):
            if theirs == mine:
                continue
            for a, b in zip(mine, theirs):
                if a != b:
                    raise RuntimeError(
                        f"DistributedDataParallel: rank {self.comm.rank} and rank {rank} hold different "
                        f"models: parameter {a[0]} {a[1]} {a[2]} here vs {b[0]} {b[1]} {b[2]} there"
                    )
            raise RuntimeError(
                f"DistributedDataParallel: rank {self.comm.rank} has {len(mine)} parameters, "
                f"rank {rank} has {len(theirs)}"
            )

    def broadcast_state(self, root: int = 0) -> None:
        """Copy root's parameters and buffers to every process."""
        for p in self.module.parameters():
            self.comm.bcast_(p.data, root)
        for b in self.module.buffers():
            if b is not None:
                self.comm.bcast_(b.data, root)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def _bucket_buffer(self, i: int) -> Any:
        """Bucket ``i``'s flat buffer, allocated on first use (and again if the module has
        moved to another device or dtype since)."""
        bucket, flat = self.buckets[i], self._flat[i]
        first = bucket[0].data
        xp = backend.get_array_module(first)
        if flat is None or flat.dtype != first.dtype or backend.get_array_module(flat) is not xp:
            flat = self._flat[i] = xp.empty(sum(p.data.size for p in bucket), dtype=first.dtype)
        return flat

    def sync_gradients(self) -> None:
        """Average every parameter's gradient over the processes, one allreduce per bucket.

        ``flat = [g_1, ..., g_k]`` (the bucket's gradients, flattened), ``flat <- sum over
        processes of flat`` (allreduce), ``flat *= 1 / P``; then ``p.grad`` is ``p``'s slice
        of ``flat``. A parameter without a gradient on this process contributes zeros (and
        gets the average of the others'), so all replicas take the same step.
        """
        size = self.comm.size
        if size == 1:
            return
        for i, bucket in enumerate(self.buckets):
            flat = self._bucket_buffer(i)
            offset = 0
            for p in bucket:
                n = p.data.size
                if p.grad is None:
                    flat[offset: offset + n] = 0
                else:
                    flat[offset: offset + n] = p.grad.data.reshape(-1)
                offset += n
            self.comm.allreduce_(flat)
            flat *= 1.0 / size
            offset = 0
            for p in bucket:
                n = p.data.size
                p.grad = Tensor(flat[offset: offset + n].reshape(p.data.shape))
                offset += n

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()`` followed by ``sync_gradients()``."""
        loss.backward()
        self.sync_gradients()

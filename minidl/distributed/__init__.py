"""Data-parallel training over MPI: every process holds a full model replica, trains on its
own shard of each batch, and the replicas stay identical because their gradients are
averaged (allreduce) before every optimizer step.

    mpirun -n 2 python train.py        # each process runs the same script

    comm = minidl.distributed.get_comm()
    model = DistributedDataParallel(build_model(), comm)          # rank 0's weights everywhere
    sampler = DistributedSampler(len(data), comm.size, comm.rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=B, sampler=sampler)      # per-rank batch B
    for epoch in range(E):
        sampler.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            model.backward(F.cross_entropy(model(x), y))          # backward + gradient allreduce
            opt.step()
"""
from .comm import Communicator, MPIComm, SingleProcessComm, get_comm  # noqa: F401
from .ddp import DistributedDataParallel, bucket_parameters  # noqa: F401
from .launch import is_main_process, rank_zero_only, save_on_main  # noqa: F401
from .sampler import DistributedSampler  # noqa: F401
from .threads import limit_threads, pin_threads, threads_per_process  # noqa: F401

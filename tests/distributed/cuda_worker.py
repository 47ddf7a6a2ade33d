"""Run under ``mpirun -n 2`` on a machine with a GPU: data-parallel training of CuPy models.

``python cuda_worker.py OUT.npz STAGED`` -- each rank trains the model of ``ddp_worker`` on
``device="cuda"`` with per-rank batch B; STAGED=1 forces the pinned-host staging path
(``MINIDL_MPI_CUDA_AWARE=0``), STAGED=0 lets mpi4py's detection decide. Rank 0 saves the
parameters (as NumPy arrays) to OUT.npz.
"""
import os
import sys

import numpy as np

import minidl.functional as F
from minidl import optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributed import DistributedDataParallel, DistributedSampler, MPIComm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddp_worker import B, make_data, make_model  # noqa: E402


def main(out_path: str, staged: str) -> None:
    if staged == "1":
        os.environ["MINIDL_MPI_CUDA_AWARE"] = "0"
    comm = MPIComm()
    X, y = make_data()
    sampler = DistributedSampler(len(y), comm.size, comm.rank, shuffle=False)
    loader = DataLoader(TensorDataset(X, y), batch_size=B, sampler=sampler)
    model = DistributedDataParallel(make_model().to("cuda"), comm, bucket_size_mb=0.0001)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            model.backward(F.cross_entropy(model(xb.to("cuda")), yb.to("cuda")))
            opt.step()
    if comm.rank == 0:
        np.savez(out_path, **model.module.state_dict())
        print(f"cuda_aware={comm.cuda_aware} pinned_buffers={len(comm._pinned)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

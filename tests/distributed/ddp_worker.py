"""Run under ``mpirun -n 2``: data-parallel training for tests/distributed/test_mpi.py.

Modes:
  train OUT.npz   -- 2-process training, per-rank batch B; rank 0 saves the parameters
  mismatch        -- rank 1 builds a different model; each rank prints the error it gets
"""
import sys

import numpy as np

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributed import DistributedDataParallel, DistributedSampler, get_comm

B, STEPS_DATA = 4, 64


def make_model(width=8):
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(5, width), nn.Tanh(), nn.Linear(width, 3)).double()


def make_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((STEPS_DATA, 5)), rng.integers(0, 3, STEPS_DATA)


def train(comm, out_path):
    X, y = make_data()
    sampler = DistributedSampler(len(y), comm.size, comm.rank, shuffle=False)
    loader = DataLoader(TensorDataset(X, y), batch_size=B, sampler=sampler)
    model = DistributedDataParallel(make_model(), comm, bucket_size_mb=0.0001)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            model.backward(F.cross_entropy(model(xb), yb))
            opt.step()
    if comm.rank == 0:
        np.savez(out_path, **model.module.state_dict())


def mismatch(comm):
    try:
        DistributedDataParallel(make_model(width=8 if comm.rank == 0 else 9), comm)
        print(f"rank {comm.rank}: no error")
    except RuntimeError as e:
        print(f"rank {comm.rank}: RuntimeError: {e}")


if __name__ == "__main__":
    comm = get_comm()
    if sys.argv[1] == "train":
        train(comm, sys.argv[2])
    else:
        mismatch(comm)

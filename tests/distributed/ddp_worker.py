"""Run under ``mpirun -n 2``: data-parallel training for tests/distributed/test_mpi.py.

Modes:
  train OUT.npz   -- 2-process training, per-rank batch B; rank 0 saves the parameters
  mismatch        -- rank 1 builds a different model; each rank prints the error it gets
  bagging         -- bagging members split across the ranks (n_jobs="mpi") vs one process
  threads         -- each rank prints its BLAS and Numba thread counts after wrapping a model
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


def bagging(comm):
    from sklearn.datasets import load_breast_cancer

    from minidl.ensemble import BaggingClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:200], y[:200]
    spread = BaggingClassifier(n_estimators=4, random_state=0, n_jobs="mpi").fit(X, y)
    alone = BaggingClassifier(n_estimators=4, random_state=0).fit(X, y)
    same = np.array_equal(spread.predict_proba(X), alone.predict_proba(X))
    print(f"rank {comm.rank}: members {len(spread.estimators_)} identical {same}")


def threads(comm):
    import numba
    from threadpoolctl import threadpool_info

    model = DistributedDataParallel(make_model(), comm)
    blas = sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
    print(f"rank {comm.rank}: local {comm.local_size()} set {model.threads} blas {blas} "
          f"numba {numba.get_num_threads()}")


if __name__ == "__main__":
    comm = get_comm()
    if sys.argv[1] == "train":
        train(comm, sys.argv[2])
    elif sys.argv[1] == "bagging":
        bagging(comm)
    elif sys.argv[1] == "threads":
        threads(comm)
    else:
        mismatch(comm)

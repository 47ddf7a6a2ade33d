"""Data-parallel scaling: MLP training throughput on 1 and 2 MPI processes.

The MLP (784-256-256-10) trains on random data with a global batch of 128 split across
the processes (DistributedSampler + DistributedDataParallel, one bucketed allreduce per
step). Each process uses one BLAS thread, so 2 processes use the same cores as 1 process
with 2 threads: the table shows what data parallelism buys over threaded BLAS alone.

    python benchmarks/bench_distributed.py [--quick] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GLOBAL_BATCH = 128


def worker(steps: int) -> None:
    import numpy as np

    import minidl
    import minidl.functional as F
    from minidl import nn, optim
    from minidl.distributed import DistributedDataParallel, get_comm

    comm = get_comm()
    minidl.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                                  nn.Linear(256, 10)), comm)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(comm.rank)
    per_rank = GLOBAL_BATCH // comm.size
    x = minidl.tensor(rng.standard_normal((per_rank, 784)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 10, per_rank))

    def step():
        opt.zero_grad()
        model.backward(F.cross_entropy(model(x), y))
        opt.step()

    for _ in range(5):
        step()
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    comm.barrier()
    seconds = time.perf_counter() - t0
    if comm.rank == 0:
        print(json.dumps({"procs": comm.size, "samples_per_s": steps * GLOBAL_BATCH / seconds}))


def launch(procs: int, threads: int, steps: int) -> float:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    cmd = ["mpirun", "-n", str(procs), "--oversubscribe", sys.executable, __file__, "--worker", "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["samples_per_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.steps)
        return 0
    if shutil.which("mpirun") is None:
        print("mpirun not found: install Open MPI and mpi4py to run this benchmark")
        return 1
    steps = 30 if args.quick else args.steps
    from benchmarks.report import markdown_table, write_section

    runs = [(1, 1), (1, 2), (2, 1)]
    results = {(p, t): launch(p, t, steps) for p, t in runs}
    base = results[(1, 1)]
    rows = [[p, t, f"{results[(p, t)]:.0f}", f"{results[(p, t)] / base:.2f}"] for p, t in runs]
    table = markdown_table(["processes", "BLAS threads each", "samples/s", "speed-up vs 1x1"], rows)
    table += f"\n\nMLP 784-256-256-10, global batch {GLOBAL_BATCH}, SGD with momentum, {steps} timed steps."
    print(table)
    if not args.no_write:
        write_section("Data-parallel scaling (bench_distributed.py)", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

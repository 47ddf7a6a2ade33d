"""Data-parallel training with CuPy arrays: pinned-host staging and the 2-process run.

Needs a CUDA GPU with CuPy and mpi4py with an MPI library; skipped (with the reason) otherwise.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import optim

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not minidl.cupy_available(), reason="CuPy with a CUDA device is not available"),
    pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed"),
]


def test_allreduce_of_a_device_array_through_pinned_host_memory(monkeypatch):
    import cupy

    from minidl.distributed import MPIComm

    monkeypatch.setenv("MINIDL_MPI_CUDA_AWARE", "0")
    comm = MPIComm()  # one process (MPI singleton): the sum over ranks is the array itself
    assert not comm.cuda_aware
    a = cupy.arange(12, dtype=cupy.float32).reshape(3, 4) * comm.size
    expected = cupy.asnumpy(a)
    out = comm.allreduce_(a)
    assert out is a and isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(a), expected * 1)
    comm.allreduce_(a)
    assert len(comm._pinned) == 1  # the pinned buffer is reused, not re-allocated
    b = cupy.full(5, 3.0, dtype=cupy.float64)
    comm.bcast_(b)
    np.testing.assert_array_equal(cupy.asnumpy(b), np.full(5, 3.0))


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun is not installed")
@pytest.mark.parametrize("staged", ["1", "0"])
def test_two_gpu_processes_with_batch_b_equal_one_cpu_process_with_batch_2b(tmp_path, staged):
    out = tmp_path / "params.npz"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = ["mpirun", "-n", "2", "--oversubscribe", sys.executable,
           str(Path(__file__).resolve().parent / "cuda_worker.py"), str(out), staged]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    distributed = dict(np.load(out))

    model = ddp_worker.make_model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = ddp_worker.make_data()
    for _ in range(2):
        for i in range(0, len(y), 2 * ddp_worker.B):
            opt.zero_grad()
            F.cross_entropy(model(minidl.tensor(X[i:i + 2 * ddp_worker.B])),
                            minidl.tensor(y[i:i + 2 * ddp_worker.B])).backward()
            opt.step()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(distributed[name], value, atol=1e-6, err_msg=name)

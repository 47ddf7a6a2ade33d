"""Data-parallel training over real MPI processes (``mpirun -n 2`` on loopback)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl.functional as F
from minidl import optim

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker  # noqa: E402

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"

pytestmark = [
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun (Open MPI) is not installed"),
    pytest.mark.skipif(__import__("importlib").util.find_spec("mpi4py") is None, reason="mpi4py is not installed"),
]


def _mpirun(*args, timeout=240):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMPI_MCA_btl="self,vader,tcp",
               OMPI_MCA_btl_vader_single_copy_mechanism="none",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = ["mpirun", "-n", "2", "--oversubscribe", sys.executable, str(WORKER), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    out = tmp_path / "params.npz"
    run = _mpirun("train", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    distributed = dict(np.load(out))

    model = ddp_worker.make_model()
    X, y = ddp_worker.make_data()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    import minidl

    for _ in range(2):
        for i in range(0, len(y), 2 * ddp_worker.B):
            opt.zero_grad()
            F.cross_entropy(model(minidl.tensor(X[i:i + 2 * ddp_worker.B])), minidl.tensor(y[i:i + 2 * ddp_worker.B])).backward()
            opt.step()
    single = model.state_dict()
    assert set(distributed) == set(single)
    for k, v in single.items():
        np.testing.assert_allclose(distributed[k], v, rtol=1e-6, atol=1e-9)
        assert not np.allclose(v, ddp_worker.make_model().state_dict()[k])  # training moved it


def test_unbound_processes_sharing_a_machine_get_their_share_of_the_cores():
    """Without binding and without thread variables, each of the 2 ranks would start one BLAS
    and one Numba thread per core; DistributedDataParallel cuts that to its share."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                             "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader,tcp",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = ["mpirun", "-n", "2", "--oversubscribe", "--bind-to", "none", sys.executable, str(WORKER), "threads"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    share = max(1, min(len(os.sched_getaffinity(0)), os.cpu_count() // 2))
    for rank in (0, 1):
        assert f"rank {rank}: local 2 set {share} blas [{share}] numba {share}" in run.stdout, run.stdout


def test_ranks_with_different_models_get_a_clear_error():
    run = _mpirun("mismatch")
    assert run.returncode == 0, run.stdout + run.stderr
    for rank in (0, 1):
        assert f"rank {rank}: RuntimeError: DistributedDataParallel" in run.stdout, run.stdout
    assert "0.weight (8, 5)" in run.stdout and "(9, 5)" in run.stdout


@pytest.mark.slow
def test_distributed_demo_runs_under_mpirun(tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = ["mpirun", "-n", "2", "--oversubscribe", sys.executable, "-m", "minidl", "demo", "--distributed",
           "--epochs", "2", "--no-progress", "--out", str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 process(es)" in run.stdout and "test accuracy" in run.stdout
    assert (tmp_path / "lenet_distributed.npz").exists()


def test_bagging_members_trained_on_separate_ranks_equal_one_process():
    run = _mpirun("bagging")
    assert run.returncode == 0, run.stdout + run.stderr
    for rank in (0, 1):
        assert f"rank {rank}: members 4 identical True" in run.stdout, run.stdout

"""DistributedDataParallel, the sampler and the communicators, without MPI (a fake communicator)."""
import numpy as np
import pytest

import minidl
from minidl import backend, nn
from minidl.distributed import (DistributedDataParallel, DistributedSampler, SingleProcessComm,
                                bucket_parameters, get_comm, pin_threads, threads_per_process)
from minidl.distributed import threads as threads_module
from minidl.distributed.comm import Communicator
from tests.test_fake_cupy import fake_cuda  # noqa: F401  (the CuPy stand-in, as a fixture)


class FakeComm(Communicator):
    """Pretends to be rank 0 of 2: the other rank's gradients are ``other`` times ours."""

    def __init__(self, other_signature=None, other_factor=3.0):
        self.rank, self.size = 0, 2
        self.other_signature = other_signature
        self.other_factor = other_factor
        self.allreduce_calls = 0
        self.bcast_calls = 0

    def barrier(self):
        pass

    def bcast_(self, array, root=0):
        self.bcast_calls += 1
        return array

    def allreduce_(self, array):
        self.allreduce_calls += 1
        array *= 1.0 + self.other_factor
        return array

    def allgather(self, obj):
        return [obj, obj if self.other_signature is None else self.other_signature]


def _mlp():
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (1, 2, False)])
def test_sampler_splits_every_epoch_across_ranks(n, replicas, drop_last):
    shards = [list(DistributedSampler(n, replicas, r, shuffle=True, seed=1, drop_last=drop_last))
              for r in range(replicas)]
    assert len({len(s) for s in shards}) == 1
    assert all(len(s) == len(DistributedSampler(n, replicas, 0, drop_last=drop_last)) for s in shards)
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(set(flat)) == len(flat) == (n // replicas) * replicas
    else:
        assert set(flat) == set(range(n))  # every sample seen, a few padded twice
        assert len(flat) == -(-n // replicas) * replicas


def test_sampler_changes_order_with_epoch_and_agrees_across_ranks():
    s0, s1 = DistributedSampler(20, 2, 0, seed=5), DistributedSampler(20, 2, 1, seed=5)
    e0 = list(s0) + list(s1)
    s0.set_epoch(1)
    s1.set_epoch(1)
    e1 = list(s0) + list(s1)
    assert sorted(e0) == sorted(e1) == list(range(20)) and e0 != e1


def test_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        DistributedSampler(10, 2, 2)


def test_buckets_respect_size_and_dtype():
    ps = [minidl.tensor(np.zeros(n, dtype=d), requires_grad=True)
          for n, d in [(10, np.float32), (10, np.float32), (100, np.float32), (5, np.float64)]]
    buckets = bucket_parameters(ps, bucket_bytes=80)
    assert [len(b) for b in buckets] == [2, 1, 1]


def test_ddp_averages_gradients_with_one_allreduce_per_bucket():
    comm = FakeComm(other_factor=3.0)
    model = DistributedDataParallel(_mlp(), comm, bucket_size_mb=25)
    assert comm.bcast_calls == 4  # 4 parameters broadcast from rank 0
    x = minidl.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    loss = model(x).sum()
    model.backward(loss)
    assert comm.allreduce_calls == 1  # all 4 parameters share one bucket
    reference = _mlp()
    reference.load_state_dict(model.module.state_dict())
    reference(x).sum().backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy() * (1 + 3.0) / 2, rtol=1e-6)


def test_ddp_reports_which_parameter_differs_between_ranks():
    other = [("0.weight", (7, 4), "float32")]
    with pytest.raises(RuntimeError, match=r"rank 0 and rank 1 hold different models: parameter 0.weight \(6, 4\)"):
        DistributedDataParallel(_mlp(), FakeComm(other_signature=other))


def test_ddp_state_dict_keys_have_module_prefix_and_single_process_is_identity():
    model = DistributedDataParallel(_mlp(), SingleProcessComm())
    assert list(model.state_dict())[0] == "module.0.weight"
    x = minidl.tensor(np.ones((2, 4), dtype=np.float32))
    model.backward(model(x).sum())
    assert model.module[0].weight.grad is not None


def test_get_comm_without_launcher_is_single_process(monkeypatch):
    for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(k, raising=False)
    assert isinstance(get_comm(), SingleProcessComm)


@pytest.mark.parametrize("local, usable, machine, expected", [
    (1, 2, 2, 2),   # alone on the machine: every core
    (2, 2, 2, 1),   # 2 unbound processes on 2 cores: one thread each
    (2, 1, 2, 1),   # bound to one core each by the launcher
    (4, 64, 64, 16),  # 4 unbound processes on 64 cores
    (2, 32, 64, 32),  # bound to a 32-core socket each
    (3, 2, 2, 1),   # more processes than cores: still one thread
])
def test_threads_per_process_is_the_share_of_the_cores(local, usable, machine, expected):
    assert threads_per_process(local, usable_cores=usable, machine_cores=machine) == expected


class LocalComm(SingleProcessComm):
    """One process that claims to share its machine with ``local - 1`` others."""

    def __init__(self, local):
        self.local = local

    def local_size(self):
        return self.local


def test_pin_threads_auto_leaves_a_lone_process_and_an_explicit_setting_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(threads_module, "limit_threads", lambda n: calls.append(n) or n)
    for var in threads_module.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert pin_threads(LocalComm(1)) is None
    assert pin_threads(LocalComm(2), None) is None
    assert pin_threads(LocalComm(2)) == threads_per_process(2) and calls == [threads_per_process(2)]
    assert pin_threads(LocalComm(1), 3) == 3 and calls[-1] == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert pin_threads(LocalComm(2)) is None and len(calls) == 2
    with pytest.raises(ValueError, match="threads must be 'auto', an int or None"):
        pin_threads(LocalComm(2), "all")


def test_ddp_gradients_are_views_of_one_reused_buffer_and_stay_exact_over_steps():
    comm = FakeComm(other_factor=3.0)
    model = DistributedDataParallel(_mlp(), comm, threads_per_process=None)
    reference = _mlp()
    reference.load_state_dict(model.module.state_dict())
    rng = np.random.default_rng(1)
    buffers = set()
    for step in range(3):
        x = minidl.tensor(rng.standard_normal((5, 4)))
        model.zero_grad()
        reference.zero_grad()
        if step == 2:  # a parameter without a gradient contributes zeros
            model.module[2].bias.requires_grad_(False)
            reference[2].bias.requires_grad_(False)
        model.backward(model(x).sum())
        reference(x).sum().backward()
        flat = model._flat[0]
        buffers.add(id(flat))
        for p, q in zip(model.parameters(), reference.parameters()):
            assert np.shares_memory(p.grad.data, flat)
            expected = np.zeros(p.shape) if q.grad is None else q.grad.numpy() * (1 + 3.0) / 2
            np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-6)
    assert len(buffers) == 1 and comm.allreduce_calls == 3


def test_limit_threads_sets_blas_numba_and_the_environment_of_child_processes():
    """In a fresh process (the pools are per process): BLAS and Numba start with several threads
    on a multi-core machine, and limit_threads(1) brings both to 1 and sets the variables that
    child processes inherit."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, os, numba, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from minidl.distributed import limit_threads\n"
        "blas = lambda: sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
        "before = (blas(), numba.get_num_threads())\n"
        "limit_threads(1)\n"
        "print(json.dumps([before, [blas(), numba.get_num_threads()],"
        " [os.environ[v] for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMBA_NUM_THREADS')]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in threads_module.THREAD_VARIABLES}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    before, after, variables = json.loads(run.stdout.strip().splitlines()[-1])
    if len(os.sched_getaffinity(0)) > 1:  # nothing limited them before (one thread per core)
        assert before[0][0] > 1 and before[1] > 1
    assert after == [[1], 1] and variables == ["1", "1", "1"]
    with pytest.raises(ValueError, match="must be >= 1"):
        threads_module.limit_threads(0)


def test_ddp_averages_device_gradients_in_a_device_buffer(fake_cuda):
    """On the GPU code path (a strict CuPy stand-in) the bucket buffer and the averaged
    gradients stay device arrays, and the average is the same as on the CPU."""
    comm = FakeComm(other_factor=3.0)
    cpu = _mlp()
    model = DistributedDataParallel(_mlp().to(fake_cuda), comm, threads_per_process=None)
    model.module.load_state_dict(cpu.state_dict())
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    for _ in range(2):
        model.zero_grad()
        model.backward(model(minidl.tensor(x, device=fake_cuda)).sum())
    cpu(minidl.tensor(x)).sum().backward()
    xp = backend.get_array_module(model._flat[0])
    assert xp is backend.cupy
    for p, q in zip(model.parameters(), cpu.parameters()):
        assert backend.get_array_module(p.grad.data) is backend.cupy
        np.testing.assert_allclose(backend.cupy.asnumpy(p.grad.data), q.grad.numpy() * (1 + 3.0) / 2, rtol=1e-5)

"""The CUDA kernels are compiled once per machine, not once per process (``cache=True``).

Each check runs ``cuda_cache_cases.py`` in two fresh processes and compares them: the cache
keys must agree (a key that changed between processes would make every process compile
again), and a second process must load every kernel the first one compiled.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = HERE / "cuda_cache_cases.py"

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")


def run_case(mode: str, cache_dir: Path, hash_seed: str = "0") -> dict:
    """``cuda_cache_cases.py mode`` in a fresh process; skips the test when the mode cannot run here."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONHASHSEED=hash_seed)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    done = subprocess.run([sys.executable, str(CASES), mode], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if done.returncode == 3:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_second_process_loads_all(first: dict, second: dict) -> None:
    """The first process compiled every kernel (misses, no hits); the second loaded just as many."""
    assert all(c["misses"] >= 1 and c["hits"] == 0 for c in first.values()), first
    assert all(c["hits"] == first[name]["misses"] and c["misses"] == 0 for name, c in second.items()), second


def test_every_cuda_kernel_has_a_disk_cache_key_that_is_the_same_in_every_process(tmp_path):
    # Different hash seeds: a key built from an unordered set or a per-process id would differ.
    first = run_case("keys", tmp_path, hash_seed="1")
    second = run_case("keys", tmp_path, hash_seed="2")
    names = set(first)
    for dtype in ("float32", "float64"):
        for tiling in ("gpu", "simulator"):
            assert {f"conv {op} {dtype} {tiling}" for op in ("forward", "backward_input", "backward_weight")} <= names
            assert f"matmul {dtype} {tiling}" in names
    assert {name for name in names if name.startswith("pool ")} == {
        "pool _max_forward", "pool _max_backward", "pool _avg_forward", "pool _avg_backward"}
    uncached = {name: key for name, key in first.items() if key.startswith("not cached")}
    assert not uncached, uncached
    assert first == second
    # One closure serves every dtype and tiling: each of them needs an entry of its own.
    closures = [key for name, key in first.items() if not name.startswith("pool ")]
    assert len(set(closures)) == len(closures)


def test_a_second_process_loads_the_kernels_the_first_compiled(tmp_path):
    """Compiled to PTX for an emulated sm_90 device, so that it runs wherever NVVM (a CUDA
    toolkit) is installed, with or without a GPU."""
    first = run_case("emulated", tmp_path)
    second = run_case("emulated", tmp_path)
    assert len(first) == 12   # conv (3 ops) and matmul per dtype, 4 pool kernels with both dtypes
    assert_second_process_loads_all(first, second)


@pytest.mark.gpu
def test_a_second_process_loads_the_kernels_from_the_disk_cache_on_a_gpu(tmp_path):
    first = run_case("gpu", tmp_path)
    second = run_case("gpu", tmp_path)
    assert len(first) == 4
    assert_second_process_loads_all(first, second)

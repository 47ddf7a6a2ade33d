"""minidl keeps freed host memory for reuse (glibc mallopt), and the opt-out restores the
C library's behaviour; measured by the page faults of a re-allocated 8 MiB array."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from minidl import host_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocate, fill and free three 8 MiB arrays a few times (a step's activations), then count
# the minor page faults of one more round: with freed memory kept it reuses warm pages;
# with glibc's defaults the 24 MiB of free heap top exceed the (dynamic) trim threshold,
# go back to the kernel, and well over a thousand of the 6144 pages fault again (1513
# measured here).
_PROBE = """
import resource, sys
import numpy as np
import minidl
def round_trip():
    arrays = [np.empty(1 << 21, dtype=np.float32) for _ in range(3)]
    for a in arrays:
        a.fill(1.0)
    del arrays, a
for _ in range(3):
    round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
print(minidl.host_memory.RETAINED, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(env_value):
    env = dict(os.environ)
    env.pop("MINIDL_RETAIN_FREED_MEMORY", None)
    if env_value is not None:
        env["MINIDL_RETAIN_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    retained, faults = out.stdout.split()
    return retained == "True", int(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning applies to Linux with glibc only")
def test_import_keeps_freed_memory_and_the_opt_out_restores_the_default():
    retained, faults = _probe(None)
    assert retained and faults < 300, faults          # warm pages reused
    retained, faults = _probe("0")
    assert not retained and faults > 1000, faults     # a good part of the 24 MiB faults again


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning applies to Linux with glibc only")
def test_retain_freed_memory_reports_success():
    assert host_memory.retain_freed_memory() is True


def test_retain_freed_memory_is_a_no_op_off_glibc(monkeypatch):
    monkeypatch.setattr(host_memory.platform, "system", lambda: "Darwin")
    assert host_memory.retain_freed_memory() is False

"""Numba's disk cache for the CUDA kernels, seen from one process; ``test_cuda_cache.py`` runs
this script in two processes and compares what they print.

    python cuda_cache_cases.py keys       the cache key of every CUDA kernel (JSON); no GPU needed
    python cuda_cache_cases.py emulated   compile every kernel, float32 and float64, to PTX for an
                                          emulated sm_90 device; needs NVVM (a CUDA toolkit), no GPU
    python cuda_cache_cases.py gpu        launch the tiled conv and matmul kernels on the GPU (CuPy arrays)

``emulated`` and ``gpu`` print, as JSON, how many of the kernels' overloads were loaded from
the disk cache ("hits") and how many were compiled ("misses").  Run with ``NUMBA_CACHE_DIR``
pointing at a fresh folder, a second run must load everything the first compiled.

The tiled conv and matmul kernels are closures built by factories (their shared-memory tiles
need the dtype and tile sizes at compile time).  Numba keys a closure's cache entry on the
pickled values of its cells, so the entry is found again only if those values pickle to the
same bytes in every process: ``keys`` prints the keys Numba computes (through its own
``_index_key``, with the device's part of the key held fixed) for the other process to match.
Exit status 3 means the mode cannot run here (no NVVM, no GPU), with the reason on stderr.
"""
from __future__ import annotations

import json
import sys
import types as pytypes
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import minidl.config  # noqa: E402,F401  (registers minidl.kernels in a source checkout)

FAKE_CC = (9, 0)


class FixedCodegen:
    """Stands in for the CUDA codegen in a key: its real ``magic_tuple`` asks the device."""

    def magic_tuple(self):
        return ("runtime", FAKE_CC)


def kernels() -> dict:
    """name -> Numba dispatcher, for every CUDA kernel minidl launches on a GPU."""
    from minidl.kernels import conv_cuda, matmul_cuda, pool_cuda
    from minidl.kernels.matmul_cuda import GPU_TILING, SIMULATOR_TILING

    found = {}
    for dtype in ("float32", "float64"):
        for tiling_name, tiling in (("gpu", GPU_TILING), ("simulator", SIMULATOR_TILING)):
            for op, dispatcher in conv_cuda._kernels(dtype, tiling).items():
                found[f"conv {op} {dtype} {tiling_name}"] = dispatcher
            found[f"matmul {dtype} {tiling_name}"] = matmul_cuda._kernel(dtype, tiling)
    for name in dir(pool_cuda):
        obj = getattr(pool_cuda, name)
        if hasattr(obj, "py_func") and not obj.targetoptions.get("device"):   # kernels, not device functions
            found[f"pool {name}"] = obj
    return found


def signatures(dtype: str) -> list[tuple[str, tuple]]:
    """(kernel name, argument types) for every kernel a GPU launches on ``dtype`` arrays, as the
    launch infers them: C-contiguous arrays, int64 and bool scalars, the zero of ``dtype``."""
    from numba.cuda.typing.typeof import Purpose, typeof

    def t(value):
        return typeof(value, Purpose.argument)

    x2, x3, x4 = (t(np.zeros((1,) * nd, dtype)) for nd in (2, 3, 4))
    i2, i4 = t(np.zeros((1, 1), np.int32)), t(np.zeros((1, 1, 1, 1), np.int64))
    n, flag, zero = t(1), t(True), t(np.zeros((), dtype)[()])
    return [(f"conv forward {dtype} gpu", (x4, x2, i2, x4) + (n,) * 4),
            (f"conv backward_weight {dtype} gpu", (x4, x4, i2, x3) + (n,) * 5),
            (f"conv backward_input {dtype} gpu", (x4, x3, i2, x4) + (n,) * 6),
            (f"matmul {dtype} gpu", (x2, x2, x2)),
            ("pool _max_forward", (x4, x4, i4) + (n,) * 8),
            ("pool _max_backward", (x4, i4, x4) + (n,) * 8 + (zero,)),
            ("pool _avg_forward", (x4, x4) + (n,) * 6 + (flag, zero)),
            ("pool _avg_backward", (x4, x4) + (n,) * 6 + (flag, zero))]


def keys() -> dict:
    out = {}
    for name, dispatcher in kernels().items():
        cache = dispatcher._cache
        if type(cache).__name__ != "CUDACache":
            out[name] = f"not cached: {type(cache).__name__}"
            continue
        out[name] = repr(cache._index_key(("sig",), FixedCodegen()))
    return out


def counts(names) -> dict:
    """name -> overloads loaded from the disk cache ("hits") and compiled ("misses") in this process."""
    found = kernels()
    return {name: {"hits": sum(found[name]._cache_hits.values()), "misses": sum(found[name]._cache_misses.values())}
            for name in names}


def emulate_device() -> None:
    """Let numba-cuda compile kernels to PTX for sm_90 without a driver: the device queries
    answer FAKE_CC, and ``bind`` (which links a cubin through the driver) does nothing, so the
    cache stores the PTX."""
    import numba.cuda.codegen as codegen
    import numba.cuda.cudadrv.devices as devices
    import numba.cuda.dispatcher as dispatcher

    device = pytypes.SimpleNamespace(compute_capability=FAKE_CC)
    dispatcher.get_current_device = lambda: device
    devices.get_context = lambda devnum=None: pytypes.SimpleNamespace(device=device)
    dispatcher._Kernel.bind = lambda self: None
    codegen.JITCUDACodegen.magic_tuple = FixedCodegen.magic_tuple


def emulated() -> dict:
    from numba import cuda, float32

    emulate_device()
    try:
        cuda.compile_ptx(lambda a: None, (float32[:],), cc=FAKE_CC)
    except Exception as err:  # NVVM or NVRTC missing: no CUDA toolkit on this machine
        print(f"no CUDA compiler to build PTX with (pip install -e '.[cuda13]'): {type(err).__name__}: "
              f"{str(err).strip().splitlines()[0]}", file=sys.stderr)
        raise SystemExit(3)
    found = kernels()
    compiled = signatures("float32") + signatures("float64")
    for name, sig in compiled:
        found[name].compile(sig)
    return counts({name for name, _ in compiled})


def on_gpu() -> dict:
    try:
        import cupy
        from numba import cuda
    except ImportError as err:
        print(f"needs CuPy and numba-cuda: {err}", file=sys.stderr)
        raise SystemExit(3)
    if not cuda.is_available():
        print("no CUDA device visible to Numba", file=sys.stderr)
        raise SystemExit(3)
    from minidl.kernels import conv_cuda, matmul_cuda

    x = cupy.ones((2, 4, 9, 9), cupy.float32)
    w = cupy.ones((6, 2, 3, 3), cupy.float32)
    geo = ((2, 2), (1, 1), (1, 1), 2)
    y = conv_cuda.conv2d_forward(x, w, *geo)
    conv_cuda.conv2d_backward_input(y, w, x.shape[2:], *geo)
    conv_cuda.conv2d_backward_weight(x, y, w.shape[2:], *geo)
    matmul_cuda.matmul_2d(cupy.ones((5, 7), cupy.float32), cupy.ones((7, 3), cupy.float32))
    cupy.cuda.Device().synchronize()
    return counts({name for name, _ in signatures("float32") if not name.startswith("pool ")})


if __name__ == "__main__":
    mode = sys.argv[1]
    result = {"keys": keys, "emulated": emulated, "gpu": on_gpu}[mode]()
    print(json.dumps(result, sort_keys=True))

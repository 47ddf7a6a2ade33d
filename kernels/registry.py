"""Which kernel paths exist for which op on which backend, and which one is the default.

A *path* is one family of implementations:

* ``"numpy"`` -- the array-library reference (im2col + GEMM, strided views); the same code
  runs on NumPy arrays (CPU) and CuPy arrays (GPU), so it is available on both backends;
* ``"numba"`` -- Numba CPU kernels (``@njit(parallel=True)``); NumPy arrays only;
* ``"cuda"`` -- Numba CUDA kernels; CuPy arrays only.

An *implementation* is the module that holds the op's functions (for ``conv2d``:
``conv2d_forward``, ``conv2d_backward_input``, ``conv2d_backward_weight``; for the pools
``*_forward``/``*_backward``; for ``matmul``: ``matmul``).  Modules are imported only when
first asked for, so NumPy alone is enough to use the ``"numpy"`` path.

``DEFAULTS`` records the fastest path measured on each backend (``benchmarks/RESULTS.md``);
when that path cannot be loaded (Numba not installed) ``"numpy"`` is used instead.
"""
from __future__ import annotations

import importlib

__all__ = [
    "OPS",
    "PATHS",
    "DEFAULTS",
    "KernelUnavailableError",
    "path_status",
    "resolve",
    "load",
    "implementation",
]

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "matmul")
PATHS = ("numpy", "numba", "cuda")

_MODULES = {
    ("conv2d", "numpy"): "conv_numpy",
    ("conv2d", "numba"): "conv_numba",
    ("conv2d", "cuda"): "conv_cuda",
    ("max_pool2d", "numpy"): "pool_numpy",
    ("max_pool2d", "numba"): "pool_numba",
    ("max_pool2d", "cuda"): "pool_cuda",
    ("avg_pool2d", "numpy"): "pool_numpy",
    ("avg_pool2d", "numba"): "pool_numba",
    ("avg_pool2d", "cuda"): "pool_cuda",
    ("matmul", "numpy"): "matmul_numpy",
    ("matmul", "numba"): "matmul_numba",
    ("matmul", "cuda"): "matmul_cuda",
}

# Backends whose arrays each path accepts: "cpu" = NumPy arrays, "gpu" = CuPy arrays.
_BACKENDS = {"numpy": ("cpu", "gpu"), "numba": ("cpu",), "cuda": ("gpu",)}

# The fastest path measured for each op on each backend (benchmarks/RESULTS.md, sections
# Convolution and Matmul).  CPU: conv2d forward+backward, Numba 1.3-2.4x faster than the
# NumPy path on the three benchmark layers (contiguous phase-row columns, one share of the
# batch per core); pooling, Numba 6-8x faster; matmul stays BLAS (the Numba kernel reaches
# about half of it).  GPU (sections "Convolution (CUDA)" and
# "Matmul (CUDA)", an NVIDIA H200): conv2d, the CuPy path (im2col + cuBLAS) and the tiled
# Numba CUDA kernels within 15% of each other (CuPy faster on 2 of 3 layers, and it needs
# no per-process compilation); matmul, cuBLAS (the Numba kernel reaches about 40% of it);
# max pooling, the Numba CUDA kernels (as fast on 2x2, 1.5x faster on 3x3); average
# pooling, the CuPy path (2x faster than the Numba kernel on 2x2).
DEFAULTS = {
    ("conv2d", "cpu"): "numba",
    ("max_pool2d", "cpu"): "numba",
    ("avg_pool2d", "cpu"): "numba",
    ("matmul", "cpu"): "numpy",
    ("conv2d", "gpu"): "numpy",
    ("max_pool2d", "gpu"): "cuda",
    ("avg_pool2d", "gpu"): "numpy",
    ("matmul", "gpu"): "numpy",
}


class KernelUnavailableError(RuntimeError):
    """The kernel path asked for cannot run here (library missing, or wrong kind of array)."""


def path_status(path: str) -> tuple[bool, str]:
    """(usable, reason): whether the libraries a path needs can be imported here."""
    if path not in PATHS:
        raise ValueError(f"unknown kernel path {path!r}; expected one of {PATHS}")
    if path == "numpy":
        return True, ""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False, "Numba is not installed (pip install numba)"
    if path == "cuda":
        return _cuda_status()
    return True, ""


_cuda_probe: tuple[bool, str] | None = None  # the result of the first _cuda_status() call


def _cuda_status() -> tuple[bool, str]:
    """Whether Numba CUDA works here: importable, a device visible, and a one-line kernel
    compiles and runs.  Checked once per process (about a second), because an installed
    numba-cuda can import yet fail at its first compilation (seen with numba-cuda 0.2x on
    NumPy 2.5, which removed ``np.row_stack``); "auto" then falls back to the CuPy path."""
    global _cuda_probe
    if _cuda_probe is None:
        try:
            from numba import cuda
        except ImportError as error:
            _cuda_probe = (False, f"numba.cuda cannot be imported ({error}); pip install numba-cuda")
        else:
            try:
                if not cuda.is_available():
                    _cuda_probe = (False, "no CUDA device is visible to Numba")
                else:
                    _cuda_probe = _compile_and_run_probe(cuda)
            except Exception as error:  # a broken CUDA install, driver or numba-cuda build
                _cuda_probe = (False, f"Numba CUDA cannot run a kernel here ({type(error).__name__}: {error})")
    return _cuda_probe


def _compile_and_run_probe(cuda) -> tuple[bool, str]:
    from . import cuda_probe  # compiles, with cache=True, on first use

    if not cuda_probe.probe():
        return False, "Numba CUDA ran a probe kernel but it gave a wrong result"
    return True, ""


def resolve(op: str, backend: str, requested: str = "auto") -> str:
    """The path to use for ``op`` on ``backend`` ("cpu" or "gpu") when ``requested`` is asked.

    ``"auto"`` gives ``DEFAULTS[(op, backend)]``, falling back to ``"numpy"`` when that path
    cannot be loaded; an explicit path that cannot run raises KernelUnavailableError.
    """
    if op not in OPS:
        raise ValueError(f"unknown kernel op {op!r}; expected one of {OPS}")
    if backend not in ("cpu", "gpu"):
        raise ValueError(f"unknown backend {backend!r}; expected 'cpu' or 'gpu'")
    if requested == "auto":
        path = DEFAULTS[(op, backend)]
        return path if path_status(path)[0] else "numpy"
    if requested not in PATHS:
        raise ValueError(f"unknown kernel path {requested!r}; expected 'auto' or one of {PATHS}")
    if backend not in _BACKENDS[requested]:
        kind = "NumPy (CPU)" if backend == "cpu" else "CuPy (GPU)"
        accepts = " or ".join("NumPy (CPU)" if b == "cpu" else "CuPy (GPU)" for b in _BACKENDS[requested])
        raise KernelUnavailableError(
            f"{op}: kernel path {requested!r} takes {accepts} arrays, but got {kind} arrays; "
            f"move the tensors or choose another path"
        )
    usable, reason = path_status(requested)
    if not usable:
        raise KernelUnavailableError(f"{op}: kernel path {requested!r} is not available: {reason}")
    return requested


def load(op: str, path: str):
    """The module implementing ``op`` on ``path`` (imported on first use)."""
    try:
        name = _MODULES[(op, path)]
    except KeyError:
        raise ValueError(f"no kernel for op {op!r} on path {path!r}") from None
    return importlib.import_module(f"{__package__}.{name}")


def implementation(op: str, backend: str, requested: str = "auto"):
    """``load(op, resolve(op, backend, requested))``."""
    return load(op, resolve(op, backend, requested))

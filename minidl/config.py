"""User settings of minidl: which kernel path the convolution, pooling and matmul ops use.

    import minidl
    minidl.config.kernels = "numba"          # "auto" (default), "numpy", "numba" or "cuda"
    with minidl.config.using_kernels("numpy"):
        y = F.conv2d(x, w)                   # the NumPy im2col path, just for this block

``"auto"`` takes, for each op and backend, the path measured fastest there
(``minidl.kernels.registry.DEFAULTS``, from ``benchmarks/RESULTS.md``).  An explicit path
that cannot run -- Numba not installed, ``"cuda"`` asked for CPU arrays, ``"numba"`` for
GPU arrays -- raises ``KernelUnavailableError`` at the op that asked, naming the op, the
path and the reason.  ``"numpy"`` is the array-library path and runs on CuPy arrays too.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterator

__all__ = ["kernels", "KERNEL_CHOICES", "KernelUnavailableError", "select", "using_kernels"]


def _import_registry():
    """``minidl.kernels.registry``; from a source checkout that was never installed, the
    top-level ``kernels/`` folder is registered as ``minidl.kernels`` first (setup.py maps it
    there with ``package_dir`` when installing)."""
    try:
        from minidl.kernels import registry
    except ModuleNotFoundError as error:
        if error.name not in ("minidl.kernels", "minidl.kernels.registry"):
            raise
        folder = Path(__file__).resolve().parent.parent / "kernels"
        spec = importlib.util.spec_from_file_location(
            "minidl.kernels", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        if spec is None or not (folder / "__init__.py").exists():
            raise
        package = importlib.util.module_from_spec(spec)
        sys.modules["minidl.kernels"] = package
        spec.loader.exec_module(package)
        from minidl.kernels import registry
    return registry


_registry = _import_registry()

KernelUnavailableError = _registry.KernelUnavailableError
KERNEL_CHOICES = ("auto",) + _registry.PATHS

kernels: str = "auto"
"""The kernel path: "auto" (fastest measured per backend), "numpy", "numba" or "cuda"."""


def select(op: str, xp):
    """The kernel module for ``op`` ("conv2d", "max_pool2d", "avg_pool2d", "matmul") on the
    array module ``xp`` (numpy or cupy), following ``minidl.config.kernels``."""
    key = (op, xp.__name__, kernels)
    found = _selected.get(key)
    if found is None:  # first use of this combination: check it, import the module, remember it
        if kernels not in KERNEL_CHOICES:
            raise ValueError(f"minidl.config.kernels = {kernels!r} is not one of {KERNEL_CHOICES}")
        backend = "gpu" if xp.__name__ == "cupy" else "cpu"
        found = _selected[key] = _registry.implementation(op, backend, kernels)
    return found


# (op, array module name, setting) -> kernel module; select() sits on every matmul's path.
_selected: dict = {}


@contextlib.contextmanager
def using_kernels(path: str) -> Iterator[None]:
    """Context manager: use kernel ``path`` inside the block, then restore the setting."""
    global kernels
    if path not in KERNEL_CHOICES:
        raise ValueError(f"using_kernels: {path!r} is not one of {KERNEL_CHOICES}")
    previous, kernels = kernels, path
    try:
        yield
    finally:
        kernels = previous

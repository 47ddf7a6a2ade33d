"""Keep freed host memory inside the process, so that a training step does not pay the
operating system for the same memory again on every step.

A training step on the CPU allocates and frees the same large NumPy arrays over and over
(activations, gradients, the columns of a convolution: each from a few hundred KiB to a
few MiB).  With glibc's default settings such an array is either mapped fresh from the
kernel (``mmap``, for blocks above the mmap threshold) or carved from a heap whose free
top is handed back to the kernel (``trim``) as soon as it exceeds the trim threshold.
Either way, the next step's array arrives as untouched pages: every 4 KiB page faults
and is zeroed by the kernel on first write.  Measured on the LeNet-5 training benchmark
(2 cores, batch 64) that was about 30% of the step.

``retain_freed_memory()`` raises both thresholds with ``mallopt`` (the same remedy as
running under jemalloc or tcmalloc, which keep freed memory too): blocks below
``MMAP_THRESHOLD`` come from the heap, and up to ``TRIM_THRESHOLD`` of free heap is kept
for reuse.  The cost is resident memory: the process keeps up to ``TRIM_THRESHOLD`` more
than it uses at the moment.

``import minidl`` calls it once on Linux with glibc; set the environment variable
``MINIDL_RETAIN_FREED_MEMORY=0`` before the import to keep the C library's defaults.
Elsewhere (macOS, musl, Windows) it does nothing and returns False.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["retain_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 32 << 20   # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20

_M_TRIM_THRESHOLD = -1      # mallopt parameter numbers, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds (bytes); True when both were accepted."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def _retain_on_import() -> bool:
    if os.environ.get("MINIDL_RETAIN_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return retain_freed_memory()


RETAINED = _retain_on_import()

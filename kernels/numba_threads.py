"""Choice of Numba's threading layer for the CPU kernels.

minidl's Numba kernels alternate with BLAS: a parallel im2col, then a multithreaded GEMM,
then a parallel col2im.  Under Numba's OpenMP layer the worker threads keep spinning for a
while after each parallel region and starve the BLAS threads that run next (measured on
2 cores: a VGG-like conv2d step 4x slower).  Numba's own ``workqueue`` layer parks its
threads instead, so it is preferred here unless the user already chose a layer
(``NUMBA_THREADING_LAYER`` in the environment, or ``numba.config.THREADING_LAYER`` set
to something other than the default) before the first parallel kernel ran.
"""
from __future__ import annotations

import os

__all__ = ["prefer_parking_threads"]


def prefer_parking_threads() -> None:
    """Select Numba's ``workqueue`` threading layer when the user has not chosen one."""
    import numba

    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    if numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"

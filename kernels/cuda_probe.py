"""A one-line CUDA kernel that ``registry`` compiles and runs once, to learn whether Numba
CUDA really works here before choosing the ``"cuda"`` path.

It is compiled with ``cache=True`` like the real kernels, because the cache-loading path of
numba-cuda is where a broken install can first fail (numba-cuda 0.2x on NumPy 2.5).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

__all__ = ["probe"]


@cuda.jit(cache=True)
def _add_one(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] += 1.0


def probe() -> bool:
    """Run ``a += 1`` on a 2-element device array; True when the result comes back right."""
    a = cuda.to_device(np.zeros(2))
    _add_one[1, 32](a)
    return a.copy_to_host().tolist() == [1.0, 1.0]

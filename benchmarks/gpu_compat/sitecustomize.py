"""Put on PYTHONPATH by ``benchmarks/run_gpu.sh`` for the kernel tests and benchmarks only.

numba-cuda 0.2x registers an overload for ``np.row_stack`` when it first compiles a kernel,
and NumPy 2.5 removed that alias of ``np.vstack``: on such a machine every Numba CUDA
kernel fails to compile (minidl then falls back to its CuPy path, see
``kernels/registry.py``).  To test and time minidl's own CUDA kernels there anyway, this
restores the alias before anything imports Numba.  minidl itself never patches NumPy.
"""
import numpy

if not hasattr(numpy, "row_stack"):
    numpy.row_stack = numpy.vstack

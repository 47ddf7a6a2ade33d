"""The kernels are imported under their installed name, ``minidl.kernels``.

Numba's on-disk cache records the module name a kernel was compiled under, so the same
file must not also be imported as top-level ``kernels``.  ``minidl.config`` registers
``kernels/`` as ``minidl.kernels`` when the package runs from an uninstalled checkout.
"""
import minidl.config  # noqa: F401

"""Geometry of a 2-D sliding window (convolution and pooling), shared by every kernel path.

Along one spatial axis of length ``size``, a window of ``kernel`` taps spaced ``dilation``
apart, moved ``stride`` at a time over the input padded by ``padding`` on both sides,
takes ``output_size(...)`` positions:

    out = floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1

Output position ``o`` and tap ``k`` read input index ``o*stride - padding + k*dilation``.
"""
from __future__ import annotations

__all__ = ["pair", "output_size", "conv_output_hw"]


def pair(value: int | tuple[int, int] | list[int], name: str = "value") -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or the two ints of a length-2 sequence."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    try:
        items = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return items


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Number of window positions along one axis (may be <= 0 when the window does not fit)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_hw(
    in_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """``(H_out, W_out)`` of a 2-D window sweep; see the module docstring for the formula."""
    return (
        output_size(in_hw[0], kernel_hw[0], stride[0], padding[0], dilation[0]),
        output_size(in_hw[1], kernel_hw[1], stride[1], padding[1], dilation[1]),
    )

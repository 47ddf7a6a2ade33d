"""Hypothesis strategies for conv2d / pooling geometry shared by the kernel and op tests."""
from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def conv_geometry(draw, max_groups: int = 3, max_per_group: int = 3, max_batch: int = 3, max_extra: int = 6):
    """A valid conv2d problem: shapes, stride, padding, dilation and groups (odd sizes included).

    Input sides run from the smallest that fits the kernel to ``max_extra`` more."""
    groups = draw(st.integers(1, max_groups))
    c_in = groups * draw(st.integers(1, max_per_group))
    c_out = groups * draw(st.integers(1, max_per_group))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = []
    for axis in range(2):
        reach = dilation[axis] * (kernel[axis] - 1) + 1
        smallest = max(1, reach - 2 * padding[axis])
        size.append(draw(st.integers(smallest, smallest + max_extra)))
    n = draw(st.integers(1, max_batch))
    return {
        "x_shape": (n, c_in, size[0], size[1]),
        "w_shape": (c_out, c_in // groups) + kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
    }


@st.composite
def pool_geometry(draw, with_dilation: bool = True, max_batch: int = 3, max_extra: int = 6):
    """A valid pooling problem (padding at most half the kernel size, as PyTorch requires)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    padding, size = [], []
    for axis in range(2):
        reach = dilation[axis] * (kernel[axis] - 1) + 1
        padding.append(draw(st.integers(0, kernel[axis] // 2)))
        smallest = max(1, reach - 2 * padding[axis])
        size.append(draw(st.integers(smallest, smallest + max_extra)))
    n, c = draw(st.integers(1, max_batch)), draw(st.integers(1, 3))
    return {
        "x_shape": (n, c, size[0], size[1]),
        "kernel": kernel,
        "stride": stride,
        "padding": tuple(padding),
        "dilation": dilation,
    }

"""Image grids for generative models: tile a batch of images into one picture, save it as PNG.

    tile_images(images (N, C, H, W), nrow)  ->  (rows (H + pad) - pad, nrow (W + pad) - pad[, C])

Rows are filled left to right, top to bottom; a missing cell stays at the background value.
``save_image_grid`` draws the tiled array with matplotlib's object API on an Agg canvas
(nothing needs a display), with optional labels in front of each row, e.g. the digit a
conditional model was asked for.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..tensor import Tensor

__all__ = ["tile_images", "save_image_grid"]


def _as_images(images: Any, op: str) -> np.ndarray:
    arr = to_numpy(images.data) if isinstance(images, Tensor) else np.asarray(images)
    if arr.ndim == 3:                      # (N, H, W): one channel
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(f"{op}: expected a non-empty batch of images (N, C, H, W) with C = 1 or 3 "
                         f"(or (N, H, W)), got shape {arr.shape}")
    return arr.astype(np.float64)


def tile_images(images: Any, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``images`` (N, C, H, W) into one (R (H + p) - p, nrow (W + p) - p) image.

    R = ceil(N / nrow) rows of ``nrow`` cells separated by ``padding`` pixels of
    ``pad_value``; image i sits in row i // nrow, column i % nrow. One channel gives a 2-D
    array, three channels a (height, width, 3) array. Values are copied as they are (no
    rescaling).
    """
    arr = _as_images(images, "tile_images")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"tile_images: nrow must be a positive integer, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"tile_images: padding must be a non-negative integer, got {padding!r}")
    n, c, h, w = arr.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.full((c, rows * (h + padding) - padding, cols * (w + padding) - padding), pad_value)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = r * (h + padding), q * (w + padding)
        grid[:, top:top + h, left:left + w] = arr[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images: Any, path: str | os.PathLike, nrow: int = 8, title: str | None = None,
                    row_labels: Sequence[str] | None = None, value_range: tuple[float, float] = (0.0, 1.0),
                    cell_inches: float = 0.45) -> str:
    """Save ``images`` (N, C, H, W), values in ``value_range``, as a PNG grid of ``nrow`` columns.

    Pixels are clipped to ``value_range`` and shown dark-on-light (grey scale, low = white)
    for one channel. ``row_labels`` (one string per grid row) are written left of the rows.
    Returns the path written.
    """
    arr = _as_images(images, "save_image_grid")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"save_image_grid: value_range must be (low, high) with high > low, got {value_range}")
    grid = tile_images(np.clip(arr, lo, hi), nrow=nrow, padding=1, pad_value=lo)
    n_rows = math.ceil(arr.shape[0] / min(nrow, arr.shape[0]))
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"save_image_grid: {len(row_labels)} row labels for a grid of {n_rows} rows")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("minidl.generative.plots needs matplotlib (pip install matplotlib)") from exc
    cols = min(nrow, arr.shape[0])
    label_room = 0.25 + 0.08 * max(len(str(label)) for label in row_labels) if row_labels else 0.0
    fig = Figure(figsize=(cols * cell_inches + label_room + 0.2, n_rows * cell_inches + (0.45 if title else 0.15)),
                 dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((label_room / fig.get_figwidth(), 0.02, 1 - (label_room + 0.1) / fig.get_figwidth(),
                       1 - (0.45 if title else 0.15) / fig.get_figheight()))
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray_r", vmin=lo, vmax=hi, interpolation="nearest")
    else:
        ax.imshow((grid - lo) / (hi - lo), interpolation="nearest")
    ax.set_xticks([])
    if row_labels is not None:
        h = arr.shape[2]
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(n_rows)], list(row_labels))
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, format="png")
    return path

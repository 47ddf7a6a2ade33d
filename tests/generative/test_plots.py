"""minidl.generative.plots: where each image lands in a tiled grid, and the PNG writer."""
from __future__ import annotations

import numpy as np
import pytest

from minidl.generative.plots import save_image_grid, tile_images


def test_tile_places_image_i_at_row_i_div_nrow_column_i_mod_nrow():
    images = np.arange(5, dtype=np.float64).reshape(5, 1, 1, 1) * np.ones((5, 1, 2, 3))
    grid = tile_images(images, nrow=2, padding=1, pad_value=-1)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    for i in range(5):
        r, c = divmod(i, 2)
        assert np.all(grid[r * 3:r * 3 + 2, c * 4:c * 4 + 3] == i)
    assert np.all(grid[2, :] == -1) and np.all(grid[:, 3] == -1)      # separators
    assert np.all(grid[6:8, 4:7] == -1)                                # the missing sixth cell


def test_tile_colour_images_and_bad_shapes():
    assert tile_images(np.zeros((3, 3, 4, 4)), nrow=3, padding=0).shape == (4, 12, 3)
    with pytest.raises(ValueError, match=r"expected a non-empty batch of images \(N, C, H, W\)"):
        tile_images(np.zeros((2, 5, 4, 4)))
    with pytest.raises(ValueError, match="nrow must be a positive integer"):
        tile_images(np.zeros((2, 1, 4, 4)), nrow=0)


def test_save_image_grid_writes_a_png_with_row_labels(tmp_path):
    path = save_image_grid(np.random.default_rng(0).random((20, 1, 8, 8)), tmp_path / "sub" / "g.png", nrow=10,
                           title="samples", row_labels=["0", "1"])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="3 row labels for a grid of 2 rows"):
        save_image_grid(np.zeros((20, 1, 8, 8)), tmp_path / "h.png", nrow=10, row_labels=["a", "b", "c"])

"""Two random views of each image: the input pipeline of every self-supervised method.

A view is the image passed through a random transform; two views of one image share its
content (the digit) and differ in what the augmentation changes (position, size, angle,
stroke contrast, noise, occlusion). The methods learn features that are equal for both
views, so the augmentations decide what the features ignore.

``BatchAugment`` applies the same family of transforms as ``minidl.data.transforms``
(``RandomAffine``, ``BrightnessContrast``, ``GaussianNoise``, ``Cutout``, with the same
formulas) to a whole batch at once, with one random draw per image: pretraining makes two
views of every image in every epoch, and per-image Python calls would cost more than the
network. ``digits_augmentation`` is its setting for 8x8 digits. ``TwoViews`` makes the
pair of views from a batch transform or from any per-image transform (a
``minidl.data.transforms.Compose``, for instance).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..data.dataset import _generator

__all__ = ["BatchAugment", "digits_augmentation", "TwoViews"]


class BatchAugment:
    """Random affine map, contrast/brightness, noise and cutout for a batch (N, C, H, W).

    For each image independently:

    1. affine (bilinear, about the centre c, outside pixels = 0): output pixel o reads the
       input at ``c + R(theta) (o - c) / s - (dy, dx)``, with ``theta ~ U[-degrees,
       degrees]``, ``s ~ U[scale]``, ``dy, dx ~ U[-translate, translate]`` pixels;
    2. ``x <- (x - m) * a + m + b`` with m the image mean, ``a ~ U[1 - contrast,
       1 + contrast]``, ``b ~ U[-brightness, brightness]``;
    3. ``x <- x + noise_std * N(0, 1)`` per pixel;
    4. with probability ``cutout_p``: a ``cutout_size`` square (centre uniform over the
       image, possibly hanging over an edge) set to 0 in all channels.

    ``seed``: an int, a Generator (shared), or None (drawn from minidl's global generator).
    Returns a new array of the batch's shape and dtype.
    """

    batched = True

    def __init__(self, degrees: float = 0.0, translate: float = 0.0, scale: tuple[float, float] = (1.0, 1.0),
                 brightness: float = 0.0, contrast: float = 0.0, noise_std: float = 0.0,
                 cutout_size: int = 0, cutout_p: float = 0.0,
                 seed: int | np.random.Generator | None = None) -> None:
        checks = [(degrees >= 0, "degrees >= 0"), (translate >= 0, "translate >= 0"),
                  (len(scale) == 2 and 0 < scale[0] <= scale[1], "scale = (lo, hi) with 0 < lo <= hi"),
                  (brightness >= 0, "brightness >= 0"), (0 <= contrast <= 1, "0 <= contrast <= 1"),
                  (noise_std >= 0, "noise_std >= 0"), (cutout_size >= 0, "cutout_size >= 0"),
                  (0 <= cutout_p <= 1, "0 <= cutout_p <= 1")]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"BatchAugment: expected {what}; got degrees={degrees}, translate={translate}, "
                                 f"scale={scale}, brightness={brightness}, contrast={contrast}, "
                                 f"noise_std={noise_std}, cutout_size={cutout_size}, cutout_p={cutout_p}")
        self.degrees, self.translate = float(degrees), float(translate)
        self.scale = (float(scale[0]), float(scale[1]))
        self.brightness, self.contrast, self.noise_std = float(brightness), float(contrast), float(noise_std)
        self.cutout_size, self.cutout_p = int(cutout_size), float(cutout_p)
        self.rng = _generator(seed)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise ValueError(f"BatchAugment: expected a NumPy batch of images (N, C, H, W), got "
                             f"{type(batch).__name__} of shape {getattr(batch, 'shape', None)}")
        x = batch.astype(np.float64)
        n = x.shape[0]
        rng = self.rng
        if self.degrees > 0 or self.translate > 0 or self.scale != (1.0, 1.0):
            theta = np.radians(rng.uniform(-self.degrees, self.degrees, n))
            s = rng.uniform(*self.scale, n)
            shift = rng.uniform(-self.translate, self.translate, (n, 2))
            x = _affine(x, theta, s, shift)
        if self.contrast > 0 or self.brightness > 0:
            a = rng.uniform(1.0 - self.contrast, 1.0 + self.contrast, (n, 1, 1, 1))
            b = rng.uniform(-self.brightness, self.brightness, (n, 1, 1, 1))
            m = x.mean(axis=(1, 2, 3), keepdims=True)
            x = (x - m) * a + m + b
        if self.noise_std > 0:
            x = x + self.noise_std * rng.standard_normal(x.shape)
        if self.cutout_size > 0 and self.cutout_p > 0:
            x = _cutout(x, self.cutout_size, rng.random(n) < self.cutout_p, rng)
        return x.astype(batch.dtype, copy=False)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "rng")
        return f"BatchAugment({fields})"


def _affine(x: np.ndarray, theta: np.ndarray, s: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Bilinear resampling of each image at ``c + R(theta_i) (o - c) / s_i - shift_i``."""
    n, C, H, W = x.shape
    gy, gx = np.meshgrid(np.arange(H) - (H - 1) / 2.0, np.arange(W) - (W - 1) / 2.0, indexing="ij")
    cos, sin = (np.cos(theta) / s)[:, None, None], (np.sin(theta) / s)[:, None, None]
    sy = cos * gy - sin * gx + ((H - 1) / 2.0 - shift[:, 0, None, None])   # (n, H, W)
    sx = sin * gy + cos * gx + ((W - 1) / 2.0 - shift[:, 1, None, None])
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = (sy - y0)[:, None], (sx - x0)[:, None]                       # (n, 1, H, W)
    # The images inside a one-pixel ring of zeros: corners outside the image clip to the ring.
    padded = np.zeros((n, C, H + 2, W + 2))
    padded[:, :, 1:-1, 1:-1] = x
    flat = padded.reshape(n, C, -1)
    rows = [np.clip(y0 + d, 0, H + 1).astype(np.intp) * (W + 2) for d in (1, 2)]
    cols = [np.clip(x0 + d, 0, W + 1).astype(np.intp) for d in (1, 2)]

    def pixel(r, c):
        return np.take_along_axis(flat, (r + c).reshape(n, 1, -1), axis=2).reshape(n, C, H, W)

    upper = pixel(rows[0], cols[0]) * (1.0 - fx) + pixel(rows[0], cols[1]) * fx
    lower = pixel(rows[1], cols[0]) * (1.0 - fx) + pixel(rows[1], cols[1]) * fx
    return upper * (1.0 - fy) + lower * fy


def _cutout(x: np.ndarray, size: int, chosen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, _, H, W = x.shape
    y0 = rng.integers(0, H, n) - size // 2
    x0 = rng.integers(0, W, n) - size // 2
    ys, xs = np.arange(H), np.arange(W)
    inside_y = (ys >= y0[:, None]) & (ys < y0[:, None] + size)              # (n, H)
    inside_x = (xs >= x0[:, None]) & (xs < x0[:, None] + size)              # (n, W)
    hole = inside_y[:, :, None] & inside_x[:, None, :] & chosen[:, None, None]
    return np.where(hole[:, None], 0.0, x)


def digits_augmentation(strength: float = 1.0, seed: int | np.random.Generator | None = None) -> BatchAugment:
    """The random transform for views of (N, 1, 8, 8) digit images with values in [0, 1].

    Rotation up to ``15 * strength`` degrees, scale in ``1 -/+ 0.15 * strength``, shift up
    to ``strength`` pixels (the role of SimCLR's random resized crop, on an image too small
    to crop); contrast and brightness jitter ``0.4 * strength`` and ``0.1 * strength``;
    pixel noise of std ``0.1 * strength``; and a 3x3 cutout with probability 0.5 (none at
    strength 0). No flip: a mirrored digit is a different symbol. ``strength = 0`` keeps
    the images as they are.
    """
    if not 0 <= strength < 1.0 / 0.15:
        raise ValueError(f"digits_augmentation: strength must be in [0, {1 / 0.15:.3g}), got {strength}")
    s = float(strength)
    return BatchAugment(degrees=15.0 * s, translate=1.0 * s, scale=(1.0 - 0.15 * s, 1.0 + 0.15 * s),
                        brightness=0.1 * s, contrast=min(0.4 * s, 1.0), noise_std=0.1 * s,
                        cutout_size=3 if s > 0 else 0, cutout_p=0.5 if s > 0 else 0.0, seed=seed)


class TwoViews:
    """``TwoViews(transform)(batch) -> (view1, view2)``: the batch (N, C, H, W) transformed
    twice, independently; both views have the batch's shape and dtype.

    ``transform`` is a batch transform (an object with ``batched = True``, such as
    ``BatchAugment``) or a per-image transform on (C, H, W) arrays (then applied image by
    image). ``second`` is another transform for the second view (BYOL's augmentations are
    asymmetric); by default both views use ``transform``.
    """

    def __init__(self, transform: Callable[[np.ndarray], np.ndarray],
                 second: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if not callable(transform) or (second is not None and not callable(second)):
            raise TypeError("TwoViews: transforms must be callables")
        self.first = transform
        self.second = transform if second is None else second

    @staticmethod
    def _apply(transform: Callable, batch: np.ndarray) -> np.ndarray:
        if getattr(transform, "batched", False):
            return transform(batch)
        return np.stack([transform(x) for x in batch]).astype(batch.dtype, copy=False)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise ValueError(f"TwoViews: expected a NumPy batch of images (N, C, H, W), got "
                             f"{type(batch).__name__} of shape {getattr(batch, 'shape', None)}")
        return self._apply(self.first, batch), self._apply(self.second, batch)

    def __repr__(self) -> str:
        return f"TwoViews({self.first!r}, second={self.second!r})"

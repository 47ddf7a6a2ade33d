"""Data augmentation: composable, seeded transforms on single images (C x H x W arrays).

Each random transform owns a ``numpy.random.Generator`` built from ``seed`` (an int, an
existing Generator to share, or None: seeded from minidl's global generator, which
``minidl.manual_seed`` resets), so that a run with the
same seeds sees the same augmented images. Each is applied with probability ``p``; with
``p == 0`` it returns its input unchanged (and draws nothing). Every transform returns an
array of the same shape and dtype as its input.

Per-image transforms work on NumPy arrays (the data pipeline runs on the CPU, before the
batch is moved to a device). ``mixup`` works on a whole batch, on NumPy/CuPy arrays or
minidl Tensors.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .dataset import _generator

__all__ = ["Compose", "RandomTransform", "RandomCrop", "RandomShift", "RandomHorizontalFlip",
           "RandomRotation", "RandomScale", "RandomAffine", "GaussianNoise",
           "BrightnessContrast", "Cutout", "Normalize", "affine_resample", "mixup"]


def _check_image(x: Any, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array of shape (C, H, W), got "
                        f"{type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{name}: expected one image of shape (C, H, W), got shape {x.shape}; "
                         "apply transforms per sample (e.g. as a dataset's transform)")
    return x


class Compose:
    """Apply ``transforms`` one after another: ``Compose([a, b])(x) == b(a(x))``."""

    def __init__(self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got "
                                f"{type(t).__name__}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomTransform:
    """Base of the random transforms: applies ``self.apply(x)`` with probability ``p``."""

    def __init__(self, p: float = 1.0, seed: int | np.random.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = _generator(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_image(x, type(self).__name__)
        if self.p == 0.0:
            return self.skip(x)
        if self.p < 1.0 and self.rng.random() >= self.p:
            return self.skip(x)
        return self.apply(x)

    def skip(self, x: np.ndarray) -> np.ndarray:
        """What a sample not picked (probability 1 - p) becomes: itself."""
        return x

    def apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "rng")
        return f"{type(self).__name__}({fields})"


class RandomCrop(RandomTransform):
    """Pad each side by ``padding`` pixels of ``fill``, then cut a ``size`` window at a
    uniformly random position: ``out = pad(x)[:, i:i+h, j:j+w]``,
    ``i ~ U{0..H+2p-h}``, ``j ~ U{0..W+2p-w}``.

    ``size`` is an int (square) or (h, w). A sample not picked (probability 1 - p) gets the
    centre window, so that every output has the same shape (with ``size == (H, W)`` and
    ``p == 0`` that is the input itself).
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, fill: float = 0.0,
                 p: float = 1.0, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        self.size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.fill = fill

    def _window(self, x: np.ndarray, i: int, j: int) -> np.ndarray:
        h, w = self.size
        pad = self.padding
        if pad:
            x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=self.fill)
        if h > x.shape[1] or w > x.shape[2]:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded "
                             f"image {x.shape[1:]}")
        return x[:, i:i + h, j:j + w]

    def apply(self, x: np.ndarray) -> np.ndarray:
        h, w = self.size
        i = int(self.rng.integers(0, x.shape[1] + 2 * self.padding - h + 1))
        j = int(self.rng.integers(0, x.shape[2] + 2 * self.padding - w + 1))
        return self._window(x, i, j)

    def skip(self, x: np.ndarray) -> np.ndarray:
        h, w = self.size
        if (h, w) == x.shape[1:]:
            return x
        return self._window(x, (x.shape[1] + 2 * self.padding - h) // 2,
                            (x.shape[2] + 2 * self.padding - w) // 2)


class RandomShift(RandomTransform):
    """Translate by a random whole number of pixels ``(dy, dx)``, each uniform in
    ``[-max_shift, max_shift]``, filling uncovered pixels with ``fill``:
    ``out[:, y, x] = in[:, y - dy, x - dx]``. Same as ``RandomCrop((H, W), padding=max_shift)``.
    """

    def __init__(self, max_shift: int, fill: float = 0.0, p: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)
        self.fill = fill

    def apply(self, x: np.ndarray) -> np.ndarray:
        s = self.max_shift
        dy, dx = (int(v) for v in self.rng.integers(-s, s + 1, size=2))
        out = np.full_like(x, self.fill)
        H, W = x.shape[1:]
        ys, yd = slice(max(0, -dy), H - max(0, dy)), slice(max(0, dy), H - max(0, -dy))
        xs, xd = slice(max(0, -dx), W - max(0, dx)), slice(max(0, dx), W - max(0, -dx))
        out[:, yd, xd] = x[:, ys, xs]
        return out


class RandomHorizontalFlip(RandomTransform):
    """Mirror left-right with probability ``p``: ``out[:, y, x] = in[:, y, W-1-x]``.

    Right for natural images (CIFAR-10); wrong for digits and letters, whose meaning
    changes when mirrored.
    """

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:, :, ::-1])


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _centred_grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the centre, (H, W) each; cached per image size."""
    if (H, W) not in _GRIDS:
        gy, gx = np.meshgrid(np.arange(H) - (H - 1) / 2.0, np.arange(W) - (W - 1) / 2.0,
                             indexing="ij")
        _GRIDS[(H, W)] = (gy, gx)
    return _GRIDS[(H, W)]


def affine_resample(x: np.ndarray, matrix: np.ndarray, fill: float = 0.0,
                    shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Resample image ``x`` (C, H, W) through an affine map about its centre, bilinearly.

    Output pixel ``o = (y, x)`` reads the input at ``s = c + A @ (o - c) - shift``, with
    ``c = ((H-1)/2, (W-1)/2)`` the centre, ``A = matrix`` (2x2, output-to-input) and
    ``shift = (dy, dx)`` (the content moves by +shift). With ``s = (y0 + fy, x0 + fx)``,
    integer ``y0, x0`` and fractions ``fy, fx``, the value is
    ``(1-fy)[(1-fx) I(y0,x0) + fx I(y0,x0+1)] + fy[(1-fx) I(y0+1,x0) + fx I(y0+1,x0+1)]``,
    where pixels outside the image are ``fill``. Returns (C, H, W) in the input's dtype.
    """
    C, H, W = x.shape
    gy, gx = _centred_grid(H, W)
    # Rounding to 1e-9 makes the identity and rotations by multiples of 90 degrees land
    # exactly on pixel centres, so that they copy pixels instead of blending neighbours.
    sy = np.round(matrix[0, 0] * gy + matrix[0, 1] * gx + ((H - 1) / 2.0 - shift[0]), 9)
    sx = np.round(matrix[1, 0] * gy + matrix[1, 1] * gx + ((W - 1) / 2.0 - shift[1]), 9)
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    # The image inside a one-pixel ring of ``fill``: after clipping the corner indices to
    # the ring, every corner outside the image reads ``fill``.
    padded = np.full((C, H + 2, W + 2), fill, dtype=np.float64)
    padded[:, 1:-1, 1:-1] = x
    flat = padded.reshape(C, -1)
    top = np.clip(y0 + 1, 0, H + 1).astype(np.intp) * (W + 2)
    bottom = np.clip(y0 + 2, 0, H + 1).astype(np.intp) * (W + 2)
    left = np.clip(x0 + 1, 0, W + 1).astype(np.intp)
    right = np.clip(x0 + 2, 0, W + 1).astype(np.intp)
    upper = flat[:, top + left] * (1.0 - fx) + flat[:, top + right] * fx
    lower = flat[:, bottom + left] * (1.0 - fx) + flat[:, bottom + right] * fx
    out = upper * (1.0 - fy) + lower * fy
    return out.astype(x.dtype, copy=False)


class RandomAffine(RandomTransform):
    """Rotation, scaling and translation in one bilinear resampling (less blur, less time
    than applying them one after another).

    Draws ``theta ~ U[-degrees, degrees]`` (or from ``(lo, hi)``), ``s ~ U[scale]`` and a
    shift ``(dy, dx)``, each ``~ U[-translate, translate]`` pixels; the output reads the
    input at ``c + R(theta) (o - c) / s - (dy, dx)`` (see ``affine_resample``).
    """

    def __init__(self, degrees: float | tuple[float, float] = 0.0, translate: float = 0.0,
                 scale: tuple[float, float] = (1.0, 1.0), fill: float = 0.0, p: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        self.degrees = _angle_range(degrees, type(self).__name__)
        if translate < 0:
            raise ValueError(f"RandomAffine: translate must be >= 0 pixels, got {translate}")
        self.translate = float(translate)
        self.scale = _scale_range(scale, type(self).__name__)
        self.fill = fill

    def apply(self, x: np.ndarray) -> np.ndarray:
        angle = math.radians(self.rng.uniform(*self.degrees))
        s = self.rng.uniform(*self.scale)
        shift = self.rng.uniform(-self.translate, self.translate, size=2)
        c, si = math.cos(angle) / s, math.sin(angle) / s
        return affine_resample(x, np.array([[c, -si], [si, c]]), self.fill, tuple(shift))


def _angle_range(degrees: float | tuple[float, float], name: str) -> tuple[float, float]:
    if np.ndim(degrees) == 0:
        if degrees < 0:
            raise ValueError(f"{name}: degrees must be >= 0, got {degrees}")
        return (-float(degrees), float(degrees))
    lo, hi = (float(d) for d in degrees)
    if lo > hi:
        raise ValueError(f"{name}: degrees range must be (lo, hi) with lo <= hi, got {degrees}")
    return (lo, hi)


def _scale_range(scale: tuple[float, float], name: str) -> tuple[float, float]:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"{name}: scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
    return (float(scale[0]), float(scale[1]))


class RandomRotation(RandomTransform):
    """Rotate about the image centre by an angle drawn uniformly from ``[-degrees, degrees]``
    (or from ``(lo, hi)``), with bilinear resampling (see ``affine_resample``)."""

    def __init__(self, degrees: float | tuple[float, float], fill: float = 0.0, p: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        self.degrees = _angle_range(degrees, type(self).__name__)
        self.fill = fill

    def apply(self, x: np.ndarray) -> np.ndarray:
        angle = math.radians(self.rng.uniform(*self.degrees))
        c, s = math.cos(angle), math.sin(angle)
        return affine_resample(x, np.array([[c, -s], [s, c]]), self.fill)


class RandomScale(RandomTransform):
    """Zoom about the centre by a factor ``s ~ U[scale[0], scale[1]]`` keeping the size:
    output (y, x) reads the input at ``c + ((y, x) - c) / s`` (bilinear; ``s > 1`` enlarges)."""

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), fill: float = 0.0,
                 p: float = 1.0, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        self.scale = _scale_range(scale, type(self).__name__)
        self.fill = fill

    def apply(self, x: np.ndarray) -> np.ndarray:
        s = self.rng.uniform(*self.scale)
        return affine_resample(x, np.eye(2) / s, self.fill)


class GaussianNoise(RandomTransform):
    """Add independent noise: ``out = x + std * N(0, 1)`` per element, optionally clipped
    to ``clip = (lo, hi)``."""

    def __init__(self, std: float = 0.05, clip: tuple[float, float] | None = None,
                 p: float = 1.0, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = float(std)
        self.clip = clip

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = x + self.std * self.rng.standard_normal(x.shape)
        if self.clip is not None:
            out = np.clip(out, *self.clip)
        return out.astype(x.dtype, copy=False)


class BrightnessContrast(RandomTransform):
    """Random contrast then brightness: ``out = (x - m) * c + m + b`` with ``m`` the image
    mean, ``c ~ U[1 - contrast, 1 + contrast]``, ``b ~ U[-brightness, brightness]``;
    optionally clipped to ``clip = (lo, hi)``."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2,
                 clip: tuple[float, float] | None = None, p: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        if brightness < 0 or not 0 <= contrast <= 1:
            raise ValueError(f"BrightnessContrast: need brightness >= 0 and 0 <= contrast <= 1, "
                             f"got brightness={brightness}, contrast={contrast}")
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.clip = clip

    def apply(self, x: np.ndarray) -> np.ndarray:
        c = self.rng.uniform(1.0 - self.contrast, 1.0 + self.contrast)
        b = self.rng.uniform(-self.brightness, self.brightness)
        m = x.mean(dtype=np.float64)
        out = (x - m) * c + m + b
        if self.clip is not None:
            out = np.clip(out, *self.clip)
        return out.astype(x.dtype, copy=False)


class Cutout(RandomTransform):
    """Set a ``size`` x ``size`` square to ``fill`` in all channels, its centre uniform over
    the image (so it may hang over an edge and cover less)."""

    def __init__(self, size: int, fill: float = 0.0, p: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> None:
        super().__init__(p, seed)
        if size < 1:
            raise ValueError(f"Cutout: size must be >= 1, got {size}")
        self.size = int(size)
        self.fill = fill

    def apply(self, x: np.ndarray) -> np.ndarray:
        H, W = x.shape[1:]
        cy, cx = int(self.rng.integers(0, H)), int(self.rng.integers(0, W))
        y0, x0 = cy - self.size // 2, cx - self.size // 2
        out = x.copy()
        out[:, max(0, y0):max(0, y0 + self.size), max(0, x0):max(0, x0 + self.size)] = self.fill
        return out


class Normalize:
    """Per-channel standardisation: ``out[c] = (x[c] - mean[c]) / std[c]``."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_image(x, "Normalize")
        if self.mean.size not in (1, x.shape[0]) or self.std.size not in (1, x.shape[0]):
            raise ValueError(f"Normalize: mean/std have {self.mean.size}/{self.std.size} "
                             f"values but the image has {x.shape[0]} channels")
        out = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return out.astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def mixup(x: Any, y_onehot: Any, alpha: float = 0.2,
          rng: int | np.random.Generator | None = None) -> tuple[Any, Any]:
    """Mixup on a batch: blend each sample with another from the same batch.

    ``lam ~ Beta(alpha, alpha)``, ``perm`` a random permutation of the batch;
    ``x' = lam * x + (1 - lam) * x[perm]``, ``y' = lam * y + (1 - lam) * y[perm]``.
    ``x`` is (N, ...), ``y_onehot`` (N, K) one-hot (or soft) targets; NumPy/CuPy arrays or
    minidl Tensors, and the outputs are the same kind. ``alpha == 0`` returns the inputs.
    Train with a loss that takes probability targets (``F.cross_entropy`` does).
    """
    if alpha < 0:
        raise ValueError(f"mixup: alpha must be >= 0, got {alpha}")
    n = x.shape[0]
    if y_onehot.ndim != 2 or y_onehot.shape[0] != n:
        raise ValueError(f"mixup: y_onehot must be (N, K) with N = {n} (the batch of x, shape "
                         f"{tuple(x.shape)}); got shape {tuple(y_onehot.shape)}. Convert class "
                         "indices with one-hot encoding first")
    if alpha == 0:
        return x, y_onehot
    rng = _generator(rng)
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(n)
    x_mixed = x * lam + x[perm] * (1.0 - lam)
    y_mixed = y_onehot * lam + y_onehot[perm] * (1.0 - lam)
    if isinstance(x, np.ndarray):
        x_mixed = x_mixed.astype(x.dtype, copy=False)
    if isinstance(y_onehot, np.ndarray):
        y_mixed = y_mixed.astype(y_onehot.dtype, copy=False)
    return x_mixed, y_mixed

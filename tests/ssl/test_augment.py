"""minidl.ssl.augment: batched views against the per-image transforms of minidl.data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from minidl.data.transforms import Compose, GaussianNoise, RandomShift, affine_resample
from minidl.ssl.augment import BatchAugment, TwoViews, _affine, digits_augmentation


def test_batched_affine_matches_per_image_affine_resample(rng):
    x = rng.random((6, 2, 8, 8))
    theta, s, shift = rng.uniform(-0.4, 0.4, 6), rng.uniform(0.8, 1.2, 6), rng.uniform(-1.5, 1.5, (6, 2))
    got = _affine(x, theta, s, shift)
    for i in range(6):
        c, si = math.cos(theta[i]) / s[i], math.sin(theta[i]) / s[i]
        ref = affine_resample(x[i], np.array([[c, -si], [si, c]]), 0.0, tuple(shift[i]))
        np.testing.assert_allclose(got[i], ref, atol=1e-8)


def test_identity_parameters_copy_the_images(rng):
    x = rng.random((3, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_affine(x.astype(np.float64), np.zeros(3), np.ones(3), np.zeros((3, 2))), x, atol=1e-12)
    out = digits_augmentation(strength=0.0, seed=0)(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


def test_brightness_contrast_noise_follow_their_formulas():
    x = np.arange(2 * 16, dtype=np.float64).reshape(2, 1, 4, 4) / 32
    aug = BatchAugment(brightness=0.3, contrast=0.5, seed=7)
    got = aug(x)
    rng = np.random.default_rng(7)
    a = rng.uniform(0.5, 1.5, (2, 1, 1, 1))
    b = rng.uniform(-0.3, 0.3, (2, 1, 1, 1))
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(got, (x - m) * a + m + b, rtol=1e-12)
    noisy = BatchAugment(noise_std=0.2, seed=3)(x)
    np.testing.assert_allclose(noisy, x + 0.2 * np.random.default_rng(3).standard_normal(x.shape), rtol=1e-12)


def test_cutout_zeroes_one_square_per_chosen_image():
    x = np.ones((50, 1, 8, 8))
    out = BatchAugment(cutout_size=3, cutout_p=1.0, seed=0)(x)
    zeros = (out == 0).sum(axis=(1, 2, 3))
    assert np.all(zeros >= 1) and np.all(zeros <= 9) and np.any(zeros == 9)
    assert np.array_equal(BatchAugment(cutout_size=3, cutout_p=0.0, seed=0)(x), x)


def test_views_are_seeded_and_differ_from_each_other(rng):
    x = rng.random((4, 1, 8, 8)).astype(np.float32)
    a1, a2 = TwoViews(digits_augmentation(seed=5))(x)
    b1, b2 = TwoViews(digits_augmentation(seed=5))(x)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert a1.shape == x.shape and a1.dtype == x.dtype
    assert not np.allclose(a1, a2)


def test_two_views_accepts_per_image_transforms(rng):
    x = rng.random((3, 1, 8, 8)).astype(np.float32)
    per_image = Compose([RandomShift(1, seed=0), GaussianNoise(0.1, seed=1)])
    v1, v2 = TwoViews(per_image, second=lambda img: img)(x)
    assert v1.shape == x.shape and v1.dtype == np.float32
    np.testing.assert_array_equal(v2, x)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="BatchAugment: expected 0 <= contrast <= 1"):
        BatchAugment(contrast=2.0)
    with pytest.raises(ValueError, match="digits_augmentation: strength must be in"):
        digits_augmentation(strength=-1)
    with pytest.raises(ValueError, match=r"BatchAugment: expected a NumPy batch of images \(N, C, H, W\)"):
        BatchAugment()(np.ones((8, 8)))
    with pytest.raises(ValueError, match="TwoViews: expected a NumPy batch"):
        TwoViews(BatchAugment())(np.ones((1, 8, 8)))

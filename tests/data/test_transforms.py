"""Augmentations: shapes/dtypes kept, identity at p=0, seeded, and each matches its formula."""
import math

import numpy as np
import pytest
from scipy import ndimage

import minidl
from minidl.data import transforms as T

ALL = [
    lambda p, s: T.RandomCrop(8, padding=2, p=p, seed=s),
    lambda p, s: T.RandomShift(2, p=p, seed=s),
    lambda p, s: T.RandomHorizontalFlip(p=p, seed=s),
    lambda p, s: T.RandomRotation(20, p=p, seed=s),
    lambda p, s: T.RandomScale((0.8, 1.2), p=p, seed=s),
    lambda p, s: T.GaussianNoise(0.1, p=p, seed=s),
    lambda p, s: T.BrightnessContrast(0.2, 0.3, p=p, seed=s),
    lambda p, s: T.Cutout(3, p=p, seed=s),
    lambda p, s: T.RandomAffine(15, 1.5, (0.9, 1.1), p=p, seed=s),
]
IDS = ["crop", "shift", "hflip", "rotation", "scale", "noise", "brightness", "cutout", "affine"]


def _image(dtype=np.float32, shape=(3, 8, 8), seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


@pytest.mark.parametrize("make", ALL, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_keeps_shape_and_dtype(make, dtype):
    x = _image(dtype)
    t = make(1.0, 0)
    for _ in range(5):
        out = t(x)
        assert out.shape == x.shape and out.dtype == dtype


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_transform_is_identity_at_p0(make):
    x = _image()
    t = make(0.0, 0)
    for _ in range(3):
        assert t(x) is x


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_transform_changes_the_image_at_p1(make):
    x = _image()
    outs = [make(1.0, 0)(x) for _ in range(1)] + [make(1.0, s)(x) for s in range(1, 6)]
    assert any(not np.array_equal(o, x) for o in outs)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_transform_is_reproducible_with_a_seed(make):
    x = _image()
    a, b = make(0.7, 42), make(0.7, 42)
    for _ in range(6):
        np.testing.assert_array_equal(a(x), b(x))


def test_probability_p_applies_about_that_often():
    x = _image()
    t = T.RandomHorizontalFlip(p=0.3, seed=0)
    flipped = sum(not np.array_equal(t(x), x) for _ in range(2000))
    assert 0.25 < flipped / 2000 < 0.35


def test_compose_applies_in_order_and_unseeded_follows_manual_seed():
    x = _image()
    t = T.Compose([T.RandomHorizontalFlip(p=1.0), T.Normalize([0.5] * 3, [0.25] * 3)])
    np.testing.assert_allclose(t(x), (x[:, :, ::-1] - 0.5) / 0.25, rtol=1e-6)
    minidl.manual_seed(3)
    a = T.RandomRotation(30)(x)
    minidl.manual_seed(3)
    b = T.RandomRotation(30)(x)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="callable"):
        T.Compose([3])


def test_random_shift_is_a_whole_pixel_translation_with_zero_fill():
    x = _image(shape=(1, 6, 6)) + 1.0          # no zeros in the input
    t = T.RandomShift(2, seed=1)
    for _ in range(10):
        out = t(x)
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x)
                src = np.roll(x, (dy, dx), axis=(1, 2))
                ys = slice(max(dy, 0), 6 + min(dy, 0))
                xs = slice(max(dx, 0), 6 + min(dx, 0))
                ref[:, ys, xs] = src[:, ys, xs]
                matches.append(np.array_equal(out, ref))
        assert sum(matches) == 1


def test_random_crop_is_a_window_of_the_padded_image():
    x = _image(shape=(2, 5, 5))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    t = T.RandomCrop(4, padding=1, seed=0)
    for _ in range(10):
        out = t(x)
        assert out.shape == (2, 4, 4)
        assert any(np.array_equal(out, padded[:, i:i + 4, j:j + 4])
                   for i in range(4) for j in range(4))
    centre = T.RandomCrop(3, p=0.0)(x)         # not picked: centre window, same shape
    np.testing.assert_array_equal(centre, x[:, 1:4, 1:4])


def test_horizontal_flip_mirrors_the_last_axis():
    x = _image()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[:, :, ::-1])


@pytest.mark.parametrize("degrees", [23.0, -71.0, 5.0])
def test_rotation_matches_scipy_bilinear_affine_transform(degrees):
    x = _image(np.float64, (2, 9, 11))
    out = T.RandomRotation((degrees, degrees), seed=0)(x)
    a = math.radians(degrees)
    A = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.array([4.0, 5.0])
    ref = np.stack([ndimage.affine_transform(ch, A, offset=c - A @ c, order=1,
                                             mode="grid-constant", cval=0.0) for ch in x])
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_rotation_by_zero_and_by_90_degrees_is_exact():
    x = _image(shape=(1, 7, 7))
    np.testing.assert_array_equal(T.RandomRotation((0, 0))(x), x)
    r90 = T.RandomRotation((90, 90))(x)
    assert np.array_equal(r90, np.rot90(x, 1, axes=(1, 2))) or \
        np.array_equal(r90, np.rot90(x, -1, axes=(1, 2)))


def test_scale_matches_scipy_zoom_about_the_centre():
    x = _image(np.float64, (1, 10, 10))
    out = T.RandomScale((1.3, 1.3))(x)
    A = np.eye(2) / 1.3
    c = np.array([4.5, 4.5])
    ref = ndimage.affine_transform(x[0], A, offset=c - A @ c, order=1, mode="grid-constant")
    np.testing.assert_allclose(out[0], ref, atol=1e-12)
    np.testing.assert_array_equal(T.RandomScale((1.0, 1.0))(x), x)


def test_affine_matches_scipy_and_translates_by_whole_pixels():
    x = _image(np.float64, (2, 9, 9))
    t = T.RandomAffine(30, translate=2.0, scale=(0.8, 1.2), seed=4)
    out = t(x)
    g = np.random.default_rng(4)          # replay the draws: angle, scale, shift
    a, s, shift = math.radians(g.uniform(-30, 30)), g.uniform(0.8, 1.2), g.uniform(-2, 2, 2)
    A = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) / s
    c = np.array([4.0, 4.0])
    ref = np.stack([ndimage.affine_transform(ch, A, offset=c - A @ c - shift, order=1,
                                             mode="grid-constant") for ch in x])
    np.testing.assert_allclose(out, ref, atol=1e-12)
    moved = T.affine_resample(x, np.eye(2), shift=(1.0, -2.0))
    np.testing.assert_array_equal(moved[:, 1:, :-2], x[:, :-1, 2:])
    assert np.all(moved[:, 0, :] == 0) and np.all(moved[:, :, -2:] == 0)


def test_gaussian_noise_has_the_requested_std():
    x = np.zeros((1, 200, 200), np.float32)
    out = T.GaussianNoise(0.1, seed=0)(x)
    assert abs(out.mean()) < 0.003 and abs(out.std() - 0.1) < 0.003
    clipped = T.GaussianNoise(0.5, clip=(0.0, 1.0), seed=0)(x)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_brightness_contrast_is_an_affine_map_around_the_mean():
    x = _image(np.float64)
    out = T.BrightnessContrast(0.3, 0.5, seed=1)(x)
    c = (out - out.mean()).ravel() @ (x - x.mean()).ravel() / ((x - x.mean()) ** 2).sum()
    np.testing.assert_allclose(out - out.mean(), c * (x - x.mean()), atol=1e-12)
    assert 0.5 <= c <= 1.5 and abs(out.mean() - x.mean()) <= 0.3 + 1e-12
    np.testing.assert_allclose(T.BrightnessContrast(0.0, 0.0)(x), x, atol=1e-15)


def test_cutout_zeroes_one_square_and_nothing_else():
    x = _image(shape=(3, 10, 10)) + 1.0
    t = T.Cutout(4, seed=0)
    for _ in range(20):
        out = t(x)
        zero = np.all(out == 0, axis=0)
        ys, xs = np.nonzero(zero)
        assert 0 < zero.sum() <= 16
        assert zero.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # a box
        np.testing.assert_array_equal(out[:, ~zero], x[:, ~zero])


def test_normalize_per_channel_and_channel_mismatch():
    x = _image(np.float32, (2, 3, 3))
    out = T.Normalize([0.1, 0.2], [0.5, 2.0])(x)
    np.testing.assert_allclose(out[0], (x[0] - 0.1) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(out[1], (x[1] - 0.2) / 2.0, rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="3 values but the image has 2 channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="positive"):
        T.Normalize(0.0, 0.0)


def test_transforms_reject_batches_and_bad_arguments():
    with pytest.raises(ValueError, match=r"\(C, H, W\).*\(4, 1, 8, 8\)"):
        T.RandomRotation(10)(np.zeros((4, 1, 8, 8)))
    with pytest.raises(TypeError, match="NumPy array"):
        T.Cutout(2)([[1.0]])
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        T.GaussianNoise(0.1, p=1.5)


def test_mixup_blends_pairs_of_samples():
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 4, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    xm, ym = T.mixup(x, y, alpha=0.4, rng=np.random.default_rng(7))
    assert xm.shape == x.shape and xm.dtype == x.dtype and ym.dtype == y.dtype
    # recover lam and perm from the same generator sequence and check the formula
    g = np.random.default_rng(7)
    lam, perm = g.beta(0.4, 0.4), g.permutation(6)
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[perm], rtol=1e-5)
    np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[perm], rtol=1e-5)
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    x0, y0 = T.mixup(x, y, alpha=0.0)
    assert x0 is x and y0 is y


def test_mixup_works_on_tensors_and_checks_target_shape():
    x = minidl.tensor(np.ones((4, 2), np.float32))
    y = minidl.tensor(np.eye(2, dtype=np.float32)[[0, 1, 0, 1]])
    xm, ym = T.mixup(x, y, alpha=1.0, rng=0)
    assert isinstance(xm, minidl.Tensor) and xm.shape == (4, 2)
    np.testing.assert_allclose(ym.numpy().sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        T.mixup(np.ones((4, 2)), np.array([0, 1, 0, 1]), alpha=1.0)

"""Pseudo-labelling: augmentations, confidence mask, the FixMatch loss, and a short run."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.semi.pseudo_label import (fixmatch_loss, pseudo_label_targets, random_shift, strong_augment,
                                      train_pseudo_label, weak_augment)


def _shift_one(img, dy, dx):
    out = np.zeros_like(img)
    H, W = img.shape[1:]
    for i in range(H):
        for j in range(W):
            si, sj = i - dy, j - dx
            if 0 <= si < H and 0 <= sj < W:
                out[:, i, j] = img[:, si, sj]
    return out


def test_random_shift_moves_each_image_by_its_own_offset():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 2, 5, 6)).astype(np.float32)
    out = random_shift(x, 2, np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    shifts = set()
    for n in range(20):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out[n], _shift_one(x[n], dy, dx))]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 5
    np.testing.assert_array_equal(random_shift(x, 0, rng), x)


def test_augmentations_keep_shape_range_and_are_seeded():
    x = np.random.default_rng(1).uniform(size=(8, 1, 8, 8)).astype(np.float32)
    w = weak_augment(x, np.random.default_rng(3))
    s = strong_augment(x, np.random.default_rng(3))
    for out in (w, s):
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(s, strong_augment(x, np.random.default_rng(3)))
    # strong changes more than weak
    assert np.abs(s - x).mean() > np.abs(w - x).mean()
    # each strong image has a cutout x cutout square of zeros
    for k in (2, 3):
        for img in strong_augment(np.ones((5, 1, 8, 8), np.float32), np.random.default_rng(0), cutout=k):
            zero_rows, zero_cols = np.nonzero(img[0] == 0)
            assert len(zero_rows) >= k * k


def test_pseudo_label_targets_threshold():
    logits = minidl.tensor(np.log(np.array([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.01, 0.01, 0.98]])))
    yhat, mask = pseudo_label_targets(logits, 0.95)
    np.testing.assert_array_equal(yhat, [0, 0, 2])
    np.testing.assert_array_equal(mask, [1.0, 0.0, 1.0])
    _, mask0 = pseudo_label_targets(logits, 0.0)
    np.testing.assert_array_equal(mask0, [1.0, 1.0, 1.0])


def test_fixmatch_loss_matches_formula_and_stops_weak_gradient():
    rng = np.random.default_rng(2)
    zx, zw, zs = rng.normal(size=(3, 4)), rng.normal(0, 3, size=(6, 4)), rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=3)
    tx, tw, ts = (minidl.tensor(a, requires_grad=True) for a in (zx, zw, zs))
    loss, loss_u, rate = fixmatch_loss(tx, minidl.tensor(y), tw, ts, threshold=0.7, lambda_u=2.0)

    def logsm(z):
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.exp(logsm(zw))
    mask = q.max(axis=1) >= 0.7
    ref_u = (-logsm(zs)[np.arange(6), q.argmax(axis=1)] * mask).mean()
    ref = -logsm(zx)[np.arange(3), y].mean() + 2.0 * ref_u
    np.testing.assert_allclose([loss.item(), loss_u.item(), rate], [ref, ref_u, mask.mean()], rtol=1e-10)
    loss.backward()
    assert tw.grad is None                       # the pseudo-labels are constants
    assert ts.grad is not None and tx.grad is not None


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_invalid_threshold_is_a_clear_error(threshold):
    z = minidl.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
        pseudo_label_targets(z, threshold)
    X = np.zeros((4, 1, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="threshold"):
        train_pseudo_label(nn.Linear(4, 2), X, np.zeros(4, dtype=np.int64), X, threshold=threshold)


def test_mismatched_sets_are_clear_errors():
    X = np.zeros((4, 1, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="same shape"):
        train_pseudo_label(nn.Linear(4, 2), X, np.zeros(4, dtype=np.int64), np.zeros((4, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"y_labeled must be \(4,\) integer labels"):
        train_pseudo_label(nn.Linear(4, 2), X, np.zeros(3, dtype=np.int64), X)
    with pytest.raises(ValueError, match="weak and strong logits"):
        fixmatch_loss(minidl.tensor(np.zeros((2, 3))), [0, 1], minidl.tensor(np.zeros((4, 3))),
                      minidl.tensor(np.zeros((5, 3))))


def test_short_pseudo_label_run_uses_unlabeled_data():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-1, 0.3, size=(60, 1, 2, 2)), rng.normal(1, 0.3, size=(60, 1, 2, 2))])
    X = X.astype(np.float32)
    y = np.repeat([0, 1], 60)
    lab = np.array([0, 60])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    noise = lambda x, r: x + r.normal(0, 0.05, size=x.shape).astype(x.dtype)  # noqa: E731
    model, hist = train_pseudo_label(model, X[lab], y[lab], X, steps=80, batch_size=4, threshold=0.9, seed=0,
                                     progress=False, weak=noise, strong=noise)
    assert hist["mask_rate"][-1] > 0.9               # almost every guess passes once trained
    with minidl.no_grad():
        pred = model(minidl.tensor(X)).numpy().argmax(axis=1)
    assert (pred == y).mean() > 0.95

"""minidl.generative.autoencoder: corruption, the reconstruction loss against NumPy, and a
short training run that really removes noise from held-out digits."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.data import load_digits
from minidl.generative.autoencoder import (
    DenoisingAutoencoder, corrupt, reconstruction_loss, train_denoising_autoencoder,
)


def _t(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_gaussian_corruption_is_clipped_noise_of_the_given_level():
    x = np.full((200, 1, 8, 8), 0.5, np.float32)
    noisy = corrupt(x, "gaussian", 0.1, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    assert (noisy - x).std() == pytest.approx(0.1, rel=0.05)
    assert corrupt(x, "gaussian", 5.0, np.random.default_rng(0)).min() == 0.0   # clipped to [0, 1]


def test_masking_zeroes_the_requested_share_of_pixels():
    x = np.ones((100, 1, 8, 8), np.float32)
    masked = corrupt(x, "masking", 0.3, np.random.default_rng(0))
    assert set(np.unique(masked)) <= {0.0, 1.0}
    assert np.mean(masked == 0) == pytest.approx(0.3, abs=0.02)


def test_corrupt_rejects_bad_arguments():
    with pytest.raises(ValueError, match="noise must be one of"):
        corrupt(np.zeros(3), "salt")
    with pytest.raises(ValueError, match="level must be >= 0"):
        corrupt(np.zeros(3), "masking", 1.5)


def test_reconstruction_loss_matches_numpy_and_gradchecks(rng):
    out, target = rng.normal(size=(3, 1, 2, 2)), rng.random((3, 1, 2, 2))
    p = 1 / (1 + np.exp(-out))
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).reshape(3, -1).sum(1).mean()
    mse = ((p - target) ** 2).reshape(3, -1).sum(1).mean()
    assert reconstruction_loss(_t(out, False), _t(target, False)).item() == pytest.approx(bce, rel=1e-12)
    assert reconstruction_loss(_t(out, False), _t(target, False), "mse").item() == pytest.approx(mse, rel=1e-12)
    for kind in ("bce", "mse"):
        assert minidl.gradcheck(lambda o: reconstruction_loss(o, _t(target, False), kind), [_t(out)])
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(_t(out, False), _t(target[:2], False))


def test_autoencoder_shapes_and_code_size_error():
    model = DenoisingAutoencoder(code_dim=5, hidden=(16,))
    x = minidl.rand(4, 1, 8, 8)
    assert model.encode(x).shape == (4, 5) and model(x).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"codes must have shape \(N, 5\), got \(4, 3\)"):
        model.decode(minidl.zeros(4, 3))
    with pytest.raises(ValueError, match=r"expected images \(N, 1, 8, 8\)"):
        model(minidl.zeros(4, 64))


def test_training_removes_noise_from_held_out_digits():
    X, _ = load_digits()
    train, test = X[:600], X[1500:1600]
    model = DenoisingAutoencoder(code_dim=16, hidden=(64,), noise="gaussian", level=0.5)
    hist = train_denoising_autoencoder(model, train, epochs=10, batch_size=32, lr=3e-3, val_images=test,
                                       progress=False)
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    noisy = corrupt(test, "gaussian", 0.5, np.random.default_rng(5))
    cleaned = model.denoise(minidl.tensor(noisy)).numpy()
    assert np.mean((cleaned - test) ** 2) < 0.6 * np.mean((noisy - test) ** 2)

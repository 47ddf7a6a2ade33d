"""minidl.ssl.evaluate: k-NN against scikit-learn, the linear probe on known features."""
from __future__ import annotations

import numpy as np
import pytest

import minidl.nn as nn
from minidl.data import load_digits
from minidl.ssl.encoders import DigitEncoder
from minidl.ssl.evaluate import extract_features, knn_accuracy, linear_probe


@pytest.fixture(scope="module")
def split():
    X, y = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    tr, te = order[:300], order[300:600]
    return X[tr], y[tr], X[te], y[te]


def test_knn_matches_scikit_learn_on_pixel_features(split):
    neighbors = pytest.importorskip("sklearn.neighbors")
    X_tr, y_tr, X_te, y_te = split
    for k in (1, 5):
        ours = knn_accuracy(nn.Flatten(), X_tr, y_tr, X_te, y_te, k=k)
        clf = neighbors.KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
        ref = clf.fit(X_tr.reshape(300, -1), y_tr).score(X_te.reshape(300, -1), y_te)
        # Majority ties may be broken differently (we prefer the more similar neighbours).
        assert abs(ours - ref) <= 0.01, (k, ours, ref)


def test_linear_probe_on_pixels_is_close_to_logistic_regression(split):
    linear_model = pytest.importorskip("sklearn.linear_model")
    X_tr, y_tr, X_te, y_te = split
    ours = linear_probe(nn.Flatten(), X_tr, y_tr, X_te, y_te, epochs=300, seed=0)
    flat_tr, flat_te = X_tr.reshape(300, -1), X_te.reshape(300, -1)
    mean, std = flat_tr.mean(0), flat_tr.std(0) + 1e-6
    ref = linear_model.LogisticRegression(max_iter=2000).fit((flat_tr - mean) / std, y_tr).score((flat_te - mean) / std, y_te)
    assert ours > 0.85 and abs(ours - ref) < 0.04, (ours, ref)


def test_linear_probe_with_augmented_views_trains_on_the_copies(split):
    X_tr, y_tr, X_te, y_te = split
    seen = []

    def augment(batch):
        seen.append(batch.shape)
        return batch[:, :, ::-1, :]  # any transform; here an exact vertical flip

    with_views = linear_probe(nn.Flatten(), X_tr[:60], y_tr[:60], X_te, y_te, epochs=50, augment=augment, views=2)
    assert seen == [(60, 1, 8, 8)] * 2
    # Training on images plus flipped copies equals training on that union of images by hand.
    union = np.concatenate([X_tr[:60]] + [X_tr[:60, :, ::-1, :]] * 2)
    by_hand = linear_probe(nn.Flatten(), union, np.tile(y_tr[:60], 3), X_te, y_te, epochs=50)
    assert with_views == by_hand
    with pytest.raises(ValueError, match="linear_probe: views must be an integer >= 0, and > 0 only with an augment"):
        linear_probe(nn.Flatten(), X_tr, y_tr, X_te, y_te, views=3)


def test_features_are_computed_in_eval_mode_and_the_mode_is_restored(split):
    X_tr = split[0]
    enc = DigitEncoder(width=4, feature_dim=8)
    enc.train()
    feats = extract_features(enc, X_tr[:10], batch_size=3)
    assert feats.shape == (10, 8) and enc.training
    enc.eval()
    one_by_one = np.concatenate([extract_features(enc, X_tr[i:i + 1]) for i in range(10)])
    np.testing.assert_allclose(feats, one_by_one, rtol=1e-5, atol=1e-6)  # running stats: batch-independent


def test_evaluation_rejects_bad_labels_and_k(split):
    X_tr, y_tr, X_te, y_te = split
    with pytest.raises(ValueError, match=r"knn_accuracy: k must be an integer in \[1, 300\]"):
        knn_accuracy(nn.Flatten(), X_tr, y_tr, X_te, y_te, k=301)
    with pytest.raises(ValueError, match=r"linear_probe: y_train must be \(N,\) integer class labels"):
        linear_probe(nn.Flatten(), X_tr, y_tr[:-1], X_te, y_te)
    with pytest.raises(ValueError, match=r"knn_accuracy: y_test must be \(N,\) integer class labels"):
        knn_accuracy(nn.Flatten(), X_tr, y_tr, X_te, y_te.astype(np.float64))

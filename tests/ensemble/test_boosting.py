"""Boosting: SAMME weight updates against a hand-computed case, weights reaching the loss,
gradient boosting fitting each member to the negative gradient."""
import math

import numpy as np
import pytest

from minidl import nn
from minidl.ensemble import (AdaBoostClassifier, GradientBoostingClassifier, GradientBoostingRegressor,
                             samme_update)
from minidl.ensemble import boosting
from minidl.ensemble.base import member_outputs, softmax_np
from minidl.tensor import Tensor

from .conftest import FAST

Y6 = np.array([0, 0, 1, 1, 2, 2])
# Fixed labels predicted by three members for samples 0..5 (one mistake each).
TABLES = [np.array([0, 0, 1, 1, 2, 0]),     # misses sample 5
          np.array([0, 1, 1, 1, 2, 2]),     # misses sample 1
          np.array([1, 0, 1, 1, 2, 2])]     # misses sample 0


class FixedPredictions(nn.Module):
    """No parameters (so training leaves it alone); predicts table[id] for X[:, 0] = id."""

    def __init__(self, table, n_classes):
        super().__init__()
        self.table, self.n_classes = table, n_classes

    def forward(self, x):
        ids = np.rint(x.numpy()[:, 0]).astype(int)
        return Tensor(10.0 * np.eye(self.n_classes, dtype=np.float32)[self.table[ids]])


def _table_factory(tables):
    queue = list(tables)

    def factory(n_features, n_outputs):
        return FixedPredictions(queue.pop(0), n_outputs)
    return factory


def _ids(n):
    return np.arange(n, dtype=np.float32)[:, None]


def test_samme_weights_match_the_hand_computed_case():
    # K = 3; round 1: err = 1/6, alpha = log(5) + log(2) = log(10); the missed sample's weight x10
    # round 2: err = 1/15, alpha = log(14) + log(2) = log(28); round 3: err = 1/42, alpha = log(82)
    clf = AdaBoostClassifier(_table_factory(TABLES), n_estimators=3, standardize=False).fit(_ids(6), Y6)
    np.testing.assert_allclose(clf.estimator_errors_, [1 / 6, 1 / 15, 1 / 42])
    np.testing.assert_allclose(clf.estimator_weights_, [math.log(10), math.log(28), math.log(82)])
    expected_weights = [np.full(6, 1 / 6),
                        np.array([1, 1, 1, 1, 1, 10]) / 15,
                        np.array([1, 28, 1, 1, 1, 10]) / 42]
    for got, want in zip(clf.sample_weights_, expected_weights):
        np.testing.assert_allclose(got, want)
    # votes: sample 0 gets log 10 + log 28 for class 0 and log 82 for class 1 -> class 0
    np.testing.assert_array_equal(clf.predict(_ids(6)), Y6)
    votes = clf.decision_function(_ids(6))
    np.testing.assert_allclose(votes[0], np.array([math.log(280), math.log(82), 0]) / math.log(280 * 82))


def test_samme_update_function_and_learning_rate():
    w = np.full(4, 0.25)
    miss = np.array([True, False, False, False])
    new, alpha, err = samme_update(w, miss, n_classes=2, learning_rate=0.5)
    assert err == pytest.approx(0.25)
    assert alpha == pytest.approx(0.5 * math.log(3))
    np.testing.assert_allclose(new, np.array([math.sqrt(3), 1, 1, 1]) / (3 + math.sqrt(3)))
    with pytest.raises(ValueError, match=r"\(0, 1 - 1/K\)"):
        samme_update(w, np.array([True, True, False, False]), n_classes=2)


def test_the_member_is_trained_with_the_current_weights_in_its_loss(monkeypatch, blobs3):
    X, y = blobs3
    seen = []
    real_fit_member = boosting.fit_member

    def recording_fit_member(module, X, y, sample_weight=None, **kwargs):
        seen.append(np.array(sample_weight))
        return real_fit_member(module, X, y, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(boosting, "fit_member", recording_fit_member)
    clf = AdaBoostClassifier(n_estimators=3, random_state=0, epochs=1, batch_size=32).fit(X, y)
    assert len(seen) >= len(clf.sample_weights_) >= 2      # a hopeless last member is dropped
    for got, want in zip(seen, clf.sample_weights_):
        np.testing.assert_allclose(got, want)
    assert not np.allclose(seen[0], seen[1])


def test_a_perfect_member_stops_boosting_and_a_hopeless_first_one_raises():
    perfect = AdaBoostClassifier(_table_factory([Y6, TABLES[0]]), n_estimators=2, standardize=False)
    perfect.fit(_ids(6), Y6)
    assert len(perfect.estimators_) == 1 and perfect.estimator_weights_[0] == 1.0
    wrong = AdaBoostClassifier(_table_factory([(Y6 + 1) % 3]), n_estimators=2, standardize=False)
    with pytest.raises(ValueError, match="no better than chance"):
        wrong.fit(_ids(6), Y6)


def test_adaboost_learns(blobs3):
    X, y = blobs3
    clf = AdaBoostClassifier(n_estimators=3, random_state=0, **FAST).fit(X, y)
    assert clf.score(X, y) > 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def _recording(monkeypatch):
    calls = []
    real_fit_member = boosting.fit_member

    def recording_fit_member(module, X, y, **kwargs):
        calls.append(np.array(y, dtype=np.float64))
        return real_fit_member(module, X, y, **kwargs)

    monkeypatch.setattr(boosting, "fit_member", recording_fit_member)
    return calls


def test_gradient_boosting_classifier_fits_each_member_to_the_negative_gradient(monkeypatch, blobs3):
    X, y = blobs3
    calls = _recording(monkeypatch)
    clf = GradientBoostingClassifier(n_estimators=3, learning_rate=0.5, random_state=0, **FAST).fit(X, y)
    Y = np.eye(3)[y]
    np.testing.assert_allclose(clf.init_, np.log(Y.mean(axis=0)))
    F = np.repeat(clf.init_[None], len(X), axis=0)
    Xs = clf._scale(X)
    for target, module, scale in zip(calls, clf.estimators_, clf.scales_):
        residual = Y - softmax_np(F)                       # -dL/dF for the multinomial deviance
        assert scale == pytest.approx(residual.std())
        np.testing.assert_allclose(target, residual / scale, rtol=1e-5, atol=1e-6)
        F = F + 0.5 * scale * member_outputs(module, Xs)
    np.testing.assert_allclose(clf.predict_proba(X), softmax_np(F), rtol=1e-5)
    assert all(a > b for a, b in zip(clf.train_loss_, clf.train_loss_[1:]))
    assert clf.score(X, y) > 0.9


def test_gradient_boosting_regressor_fits_residuals_and_its_loss_falls(monkeypatch, regression_data):
    X, y = regression_data
    calls = _recording(monkeypatch)
    reg = GradientBoostingRegressor(n_estimators=4, learning_rate=0.5, random_state=0, epochs=10,
                                    batch_size=32).fit(X, y)
    assert reg.init_[0] == pytest.approx(y.mean())
    F = np.full((len(X), 1), y.mean())
    Xs = reg._scale(X)
    for target, module, scale in zip(calls, reg.estimators_, reg.scales_):
        np.testing.assert_allclose(target, (y[:, None] - F) / scale, rtol=1e-5, atol=1e-6)
        F = F + 0.5 * scale * member_outputs(module, Xs)
    np.testing.assert_allclose(reg.predict(X), F[:, 0], rtol=1e-5)
    staged = list(reg.staged_predict(X))
    assert len(staged) == 4
    np.testing.assert_allclose(staged[-1], reg.predict(X))
    assert all(a > b for a, b in zip(reg.train_loss_, reg.train_loss_[1:]))
    assert reg.score(X, y) > 0.9


def test_boosting_rejects_bad_settings(blobs3):
    X, y = blobs3
    with pytest.raises(ValueError, match="n_estimators must be a positive int"):
        AdaBoostClassifier(n_estimators=0, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate must be a positive"):
        GradientBoostingClassifier(learning_rate=-1.0, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight must be"):
        AdaBoostClassifier(**FAST).fit(X, y, sample_weight=np.ones(3))

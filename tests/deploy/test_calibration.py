"""Calibration: ECE against a hand count, temperature scaling lowers the ECE of an
over-confident model, reliability diagram PNG, thresholds, TTA and conditional prediction."""
import numpy as np
import pytest

import minidl.nn as nn
from minidl.deploy import (TemperatureScaler, best_threshold, expected_calibration_error, predict_given,
                           predict_with_rejection, predict_with_threshold, reliability_diagram, shift_transforms,
                           softmax_np, tta_predict)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    # bins of width 0.5: [0.5, 1) holds all four: conf mean 0.7375, accuracy 0.75
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(abs(0.75 - 0.7375))
    # 10 bins: 0.9 (acc 1), 0.8 (acc 0), 0.7 (acc 1), 0.55 (acc 1)
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.55)) / 4
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)


def _overconfident(rng, n=2000, k=5):
    """Logits whose true probabilities are softmax(z), made over-confident by a factor 4."""
    z = rng.standard_normal((n, k)) * 1.5
    p = softmax_np(z)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return z * 4.0, labels


def test_temperature_scaling_lowers_ece_of_an_overconfident_model(rng, tmp_path):
    val_logits, val_y = _overconfident(rng)
    test_logits, test_y = _overconfident(rng)
    scaler = TemperatureScaler().fit(val_logits, val_y)
    assert scaler.temperature == pytest.approx(4.0, rel=0.15)  # it recovers the factor
    before = expected_calibration_error(softmax_np(test_logits), test_y)
    after = expected_calibration_error(scaler(test_logits), test_y)
    assert after < 0.5 * before
    assert scaler.nll(test_logits, test_y) < TemperatureScaler(1.0).nll(test_logits, test_y)
    assert np.array_equal(scaler(test_logits).argmax(1), test_logits.argmax(1))
    path = reliability_diagram([softmax_np(test_logits), scaler(test_logits)], test_y, tmp_path / "rel.png",
                               ["before", "after"])
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_temperature_fit_checks_shapes():
    with pytest.raises(ValueError, match="logits"):
        TemperatureScaler().fit(np.zeros((3, 2)), np.zeros(4))


def test_best_threshold_and_decisions():
    scores = np.array([0.1, 0.35, 0.4, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    assert best_threshold(scores, labels, "f1") == 0.4
    assert best_threshold(scores, labels, "youden") == 0.4
    np.testing.assert_array_equal(predict_with_threshold(scores, 0.4), [0, 0, 1, 1, 1])
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    np.testing.assert_array_equal(predict_with_rejection(probs, 0.6), [-1, 0])


def test_predict_given_a_condition():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    np.testing.assert_array_equal(predict_given(probs, [1, 2]), [1, 2])
    np.testing.assert_array_equal(predict_given(probs, np.array([[False, False, True], [True, False, False]])), [2, 0])
    with pytest.raises(ValueError, match="no class"):
        predict_given(probs, np.zeros((2, 3), bool))


def test_tta_averages_softmax_over_shifts(rng):
    X = rng.random((3, 1, 4, 4)).astype(np.float32)
    shifted = shift_transforms(1)[1](X)
    np.testing.assert_array_equal(shifted[:, :, 1:], X[:, :, :-1])
    assert np.all(shifted[:, :, 0] == 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    from minidl.deploy import predict
    expected = np.mean([softmax_np(predict(model, t(X))) for t in shift_transforms(1)], axis=0)
    np.testing.assert_allclose(tta_predict(model, X), expected, rtol=1e-6)

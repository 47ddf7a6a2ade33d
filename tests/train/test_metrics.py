"""Metrics checked against scikit-learn, plus their input validation."""
import numpy as np
import pytest
from sklearn import metrics as skm

import minidl
from minidl.train import metrics as M


def _labels(n=200, k=5, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    return y_true, y_pred


def test_accuracy_matches_sklearn_from_labels_and_from_scores():
    y_true, y_pred = _labels()
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    scores = np.random.default_rng(1).random((200, 5))
    assert M.accuracy(y_true, scores) == pytest.approx(
        skm.accuracy_score(y_true, scores.argmax(1)))


def test_metrics_accept_minidl_tensors():
    y_true, y_pred = _labels()
    t = minidl.tensor(y_true)
    p = minidl.tensor(y_pred)
    assert M.accuracy(t, p) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert M.mean_squared_error(minidl.tensor(y_true * 1.0), minidl.tensor(y_pred * 1.0)) == \
        pytest.approx(skm.mean_squared_error(y_true, y_pred))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_matches_sklearn(k):
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 6, 150)
    scores = rng.random((150, 6))
    ours = M.top_k_accuracy(y_true, scores, k=k)
    assert ours == pytest.approx(skm.top_k_accuracy_score(y_true, scores, k=k,
                                                          labels=np.arange(6)))
    assert M.top_k_accuracy(y_true, scores, k=6) == 1.0


def test_confusion_matrix_matches_sklearn():
    y_true, y_pred = _labels(k=4)
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred),
                                  skm.confusion_matrix(y_true, y_pred))
    cm = M.confusion_matrix([0, 1], [1, 1], num_classes=4)
    assert cm.shape == (4, 4) and cm[0, 1] == 1 and cm[1, 1] == 1 and cm.sum() == 2


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_precision_recall_f1_match_sklearn(average):
    y_true, y_pred = _labels(k=5, seed=3)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                     zero_division=0)
    ours = M.precision_recall_f1(y_true, y_pred, average=average)
    np.testing.assert_allclose(ours, (p, r, f), rtol=1e-12)
    assert M.f1_score(y_true, y_pred, average) == pytest.approx(f)


def test_per_class_and_missing_classes_match_sklearn():
    # class 3 is never predicted (0/0 precision counts as 0), class 4 never occurs at all
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 0, 2])
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=None,
                                                     zero_division=0)
    ours = M.precision_recall_f1(y_true, y_pred, average=None)
    for a, b in zip(ours, (p, r, f)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    macro = skm.precision_recall_fscore_support(y_true, y_pred, average="macro",
                                                zero_division=0)[:3]
    np.testing.assert_allclose(M.precision_recall_f1(y_true, y_pred), macro, rtol=1e-12)
    with_absent = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(5),
                                                      average="macro", zero_division=0)[:3]
    np.testing.assert_allclose(M.precision_recall_f1(y_true, y_pred, num_classes=5),
                               with_absent, rtol=1e-12)


@pytest.mark.parametrize("shape", [(50,), (50, 3)])
def test_regression_metrics_match_sklearn(shape):
    rng = np.random.default_rng(4)
    y = rng.normal(size=shape)
    f = y + 0.3 * rng.normal(size=shape)
    assert M.mean_squared_error(y, f) == pytest.approx(skm.mean_squared_error(y, f))
    assert M.mean_absolute_error(y, f) == pytest.approx(skm.mean_absolute_error(y, f))
    assert M.r2_score(y, f) == pytest.approx(skm.r2_score(y, f))


def test_r2_of_constant_targets_matches_sklearn():
    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    f = np.array([[1.0, 2.5], [1.0, 3.0], [1.0, 3.5]])
    assert M.r2_score(y, f) == pytest.approx(skm.r2_score(y, f))
    g = f.copy()
    g[0, 0] = 2.0
    assert M.r2_score(y, g) == pytest.approx(skm.r2_score(y, g))


def test_float_labels_are_rejected_with_a_clear_error():
    with pytest.raises(TypeError, match="integer class labels, got dtype float64"):
        M.accuracy(np.array([0.0, 1.0]), np.array([0, 1]))
    with pytest.raises(TypeError, match="y_pred must hold integer"):
        M.confusion_matrix(np.array([0, 1]), np.array([0.5, 1.0]))


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="label 5 but num_classes is 5"):
        M.confusion_matrix([0, 5], [0, 1], num_classes=5)
    with pytest.raises(ValueError, match="negative class label"):
        M.accuracy(np.array([0, -1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="label 4 but num_classes is 3"):
        M.top_k_accuracy(np.array([0, 4]), np.zeros((2, 3)), k=1)


def test_mismatched_and_empty_inputs_are_rejected():
    with pytest.raises(ValueError, match="3 samples but y_pred has 2"):
        M.accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="no samples"):
        M.accuracy(np.array([], np.int64), np.array([], np.int64))
    with pytest.raises(ValueError, match=r"shape \(3,\) but y_pred has shape \(3, 1\)"):
        M.mean_squared_error(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="'macro', 'micro' or None"):
        M.precision_recall_f1([0], [0], average="weighted")


def test_get_metric_finds_names_and_rejects_unknown_ones():
    assert M.get_metric("accuracy") is M.accuracy
    assert M.get_metric("MSE") is M.mean_squared_error
    y_true, y_pred = _labels()
    assert M.get_metric("f1_micro")(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="micro"))
    fn = M.accuracy
    assert M.get_metric(fn) is fn
    with pytest.raises(ValueError) as info:
        M.get_metric("acuracy")
    msg = str(info.value)
    assert "unknown metric 'acuracy'" in msg and "Did you mean 'accuracy'" in msg
    assert "r2" in msg and "confusion_matrix" in msg

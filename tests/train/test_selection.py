"""Hold-out splits, k-fold splitters, cross-validation and the error report."""
import numpy as np
import pytest
from sklearn.model_selection import KFold as SkKFold

from minidl.data import load_iris
from minidl.train import (KFold, StratifiedKFold, cross_validate, error_report,
                          train_val_test_split)


def _imbalanced(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    X = np.arange(n)[:, None] * np.ones((1, 2))
    return X, y


def test_split_sizes_are_exact_and_disjoint():
    X, y = _imbalanced(200)
    Xtr, Xva, Xte, ytr, yva, yte = train_val_test_split(X, y, val_size=0.15, test_size=0.2,
                                                        seed=0)
    assert (len(Xtr), len(Xva), len(Xte)) == (130, 30, 40)
    ids = np.concatenate([Xtr[:, 0], Xva[:, 0], Xte[:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(200))
    np.testing.assert_array_equal(y[Xte[:, 0].astype(int)], yte)   # X and y stay aligned


def test_stratified_split_keeps_class_proportions_within_one():
    X, y = _imbalanced(301, seed=1)
    _, _, _, ytr, yva, yte = train_val_test_split(X, y, val_size=0.2, test_size=0.2, seed=5)
    for part in (ytr, yva, yte):
        expected = np.bincount(y, minlength=3) * len(part) / len(y)
        assert np.all(np.abs(np.bincount(part, minlength=3) - expected) <= 1.0 + 1e-9)


def test_split_is_reproducible_and_sizes_can_be_counts():
    X, y = _imbalanced(100)
    a = train_val_test_split(X, y, 10, 20, seed=3)
    b = train_val_test_split(X, y, 10, 20, seed=3)
    c = train_val_test_split(X, y, 10, 20, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    assert (len(a[0]), len(a[1]), len(a[2])) == (70, 10, 20)
    r = train_val_test_split(X, y * 0.5, 0.1, 0.1, stratify=False, seed=0)
    assert len(r[0]) == 80


def test_split_bad_input_is_a_clear_error():
    X, y = _imbalanced(10)
    with pytest.raises(ValueError, match="leave no training samples"):
        train_val_test_split(X, y, 0.5, 0.5)
    with pytest.raises(ValueError, match="X has 9 samples but y has 10"):
        train_val_test_split(X[:9], y)
    with pytest.raises(TypeError, match="stratify=False"):
        train_val_test_split(X, y * 0.5)
    with pytest.raises(ValueError, match="val_size"):
        train_val_test_split(X, y, val_size=1.5)


@pytest.mark.parametrize("n, k", [(10, 3), (12, 4), (7, 7)])
def test_kfold_matches_sklearn_without_shuffle(n, k):
    X = np.zeros((n, 1))
    ours = list(KFold(k).split(X))
    ref = list(SkKFold(k).split(X))
    assert len(ours) == k
    for (tr, va), (rtr, rva) in zip(ours, ref):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(va, rva)


def test_shuffled_kfold_covers_every_sample_once_and_is_seeded():
    X = np.zeros((23, 1))
    folds = [va for _, va in KFold(5, shuffle=True, seed=1).split(X)]
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(23))
    again = [va for _, va in KFold(5, shuffle=True, seed=1).split(X)]
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]


@pytest.mark.parametrize("shuffle", [False, True])
def test_stratified_kfold_balances_classes_in_every_fold(shuffle):
    X, y = _imbalanced(157, seed=2)
    k = 5
    splits = list(StratifiedKFold(k, shuffle=shuffle, seed=0).split(X, y))
    vals = np.concatenate([va for _, va in splits])
    np.testing.assert_array_equal(np.sort(vals), np.arange(157))
    sizes = [len(va) for _, va in splits]
    assert max(sizes) - min(sizes) <= 1
    for tr, va in splits:
        assert np.intersect1d(tr, va).size == 0 and tr.size + va.size == 157
        expected = np.bincount(y, minlength=3) / k
        assert np.all(np.abs(np.bincount(y[va], minlength=3) - expected) <= 1.0)


def test_kfold_errors_and_small_class_warning():
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        KFold(1)
    with pytest.raises(ValueError, match="cannot make 5 folds out of 3 samples"):
        list(KFold(5).split(np.zeros(3)))
    with pytest.raises(ValueError, match="needs the class labels"):
        list(StratifiedKFold(2).split(np.zeros(4)))
    with pytest.warns(UserWarning, match="fewer than n_splits"):
        list(StratifiedKFold(3).split(np.zeros(7), np.array([0, 0, 0, 0, 0, 1, 1])))


def _nearest_centroid_fit(X_train, y_train, X_val, y_val):
    centroids = np.stack([X_train[y_train == c].mean(axis=0) for c in range(3)])
    pred = np.argmin(((X_val[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    return {"accuracy": float(np.mean(pred == y_val)), "n_val": len(y_val)}


def test_cross_validate_returns_per_fold_scores_on_iris():
    X, y = load_iris()
    res = cross_validate(_nearest_centroid_fit, X, y, k=5, seed=0)
    assert set(res) == {"accuracy", "n_val"}
    assert res["accuracy"].shape == (5,)
    assert res["n_val"].sum() == 150
    assert 0.85 < res["accuracy"].mean() <= 1.0      # nearest centroid on iris is ~0.92
    plain = cross_validate(lambda *a: _nearest_centroid_fit(*a)["accuracy"], X, y, k=3)
    assert set(plain) == {"score"} and plain["score"].shape == (3,)


def test_cross_validate_rejects_non_numeric_scores():
    X, y = load_iris()
    with pytest.raises(TypeError, match="expected a number"):
        cross_validate(lambda *a: "good", X, y, k=3)


def test_error_report_flags_overfitting_underfitting_and_good_fit(capsys):
    over = error_report(0.01, 0.09, 0.10)
    assert over.overfitting and not over.underfitting
    out = capsys.readouterr().out
    assert "OVER-FITTING" in out and "training" in out and "0.0900" in out and "0.1000" in out
    under = error_report(0.30, 0.31, verbose=False)
    assert under.underfitting and not under.overfitting
    assert "UNDER-FITTING" in str(under) and "test (out-of-sample)" in str(under)
    good = error_report(0.02, 0.03, 0.035, verbose=False)
    assert not (good.overfitting or good.underfitting or good.test_gap)
    assert "good fit" in str(good)
    gap = error_report(0.02, 0.03, 0.2, verbose=False)
    assert gap.test_gap and "TEST GAP" in str(gap)
    loss_scale = error_report(0.5, 0.9, gap_threshold=0.5, high_error_threshold=1.0,
                              verbose=False)
    assert not (loss_scale.overfitting or loss_scale.underfitting)
    with pytest.raises(ValueError, match="val_err must be a finite number"):
        error_report(0.1, float("nan"))

"""Stacking: the meta-learner only ever sees out-of-fold predictions; the minidl logistic
regression agrees with scikit-learn's."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from minidl import nn
from minidl.ensemble import LogisticRegression, LogisticRegressionCV, MLPFactory, StackingClassifier
from minidl.ensemble.stacking import fit_logistic_batch
from minidl.nn import Parameter
from minidl.tensor import Tensor

from .conftest import FAST


class SawSpy(nn.Module):
    """Remembers the ids (X[:, 0]) it was trained on; predicts class 0 with probability ~1
    for a sample it saw and ~0 for one it did not. The bias keeps it trainable."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.bias = Parameter(np.zeros(n_outputs, dtype=np.float32))
        self.seen = set()

    def forward(self, x):
        ids = np.rint(x.numpy()[:, 0]).astype(int)
        if self.training:
            self.seen.update(ids.tolist())
        saw = np.isin(ids, sorted(self.seen))
        scores = np.where(saw[:, None], [[10.0, -10.0]], [[-10.0, 10.0]]).astype(np.float32)
        return Tensor(scores) + self.bias * 0.0


class RecordingMeta(ClassifierMixin, BaseEstimator):
    """A meta-learner that keeps the inputs it was fitted on."""

    def fit(self, Z, y):
        self.Z_, self.classes_ = np.array(Z), np.unique(y)
        return self

    def predict_proba(self, Z):
        return np.full((len(Z), len(self.classes_)), 1.0 / len(self.classes_))


def _binary_id_data(n=40):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    X = np.stack([np.arange(n), rng.normal(size=n) + y], axis=1).astype(np.float32)
    return X, y


def test_the_meta_learner_never_sees_a_prediction_from_a_model_that_saw_the_sample():
    X, y = _binary_id_data()
    clf = StackingClassifier(estimators=[("a", SawSpy), ("b", SawSpy)], final_estimator=RecordingMeta(),
                             cv=4, standardize=False, random_state=0, epochs=2, batch_size=8).fit(X, y)
    Z = clf.final_estimator_.Z_
    assert Z.shape == (len(X), 4)
    np.testing.assert_allclose(Z, clf.oof_predictions_)
    # default stack_method="log_proba": the inputs are log-probabilities
    assert np.all(Z[:, [0, 2]] < np.log(0.5)), "a meta-learner input came from a model trained on that sample"
    # the folds partition the samples, and each fold model trained on exactly the other folds
    np.testing.assert_array_equal(np.sort(np.concatenate([va for _, va in clf.folds_])), np.arange(len(X)))
    for b in range(2):
        for (train, val), module in zip(clf.folds_, clf.fold_estimators_[b]):
            assert module.seen == set(train.tolist())
            assert not module.seen & set(val.tolist())
    # the spy does work: the models refit on all data have seen every sample
    assert np.all(clf.transform(X)[:, [0, 2]] > np.log(0.5))
    probas = StackingClassifier(estimators=[("a", SawSpy)], final_estimator=RecordingMeta(), cv=4,
                                stack_method="predict_proba", standardize=False, random_state=0, epochs=1,
                                batch_size=8).fit(X, y)
    assert np.all(probas.final_estimator_.Z_[:, 0] < 0.5) and np.all(probas.transform(X)[:, 0] > 0.5)


def test_stacking_learns_with_the_default_meta_learner(blobs3):
    X, y = blobs3
    clf = StackingClassifier(estimators=[MLPFactory((8,)), MLPFactory(())], cv=3, random_state=0, epochs=12,
                             batch_size=32)
    clf.fit(X, y)
    assert isinstance(clf.final_estimator_, LogisticRegressionCV)
    assert clf.final_estimator_.C_ in clf.final_estimator_.Cs
    assert clf.oof_predictions_.shape == (len(X), 6)
    # log-probabilities: each base's row exponentiates to a distribution
    np.testing.assert_allclose(np.exp(clf.oof_predictions_).reshape(len(X), 2, 3).sum(axis=2), 1.0, rtol=1e-5)
    assert clf.score(X, y) > 0.9
    assert set(clf.named_estimators_) == {"member0", "member1"}


def test_passthrough_appends_the_features(blobs3):
    X, y = blobs3
    clf = StackingClassifier(estimators=[MLPFactory(())], cv=2, passthrough=True, random_state=0, **FAST)
    assert clf.fit(X, y).transform(X).shape == (len(X), 3 + 6)


def test_cv_must_partition_the_samples(blobs3):
    X, y = blobs3

    class Overlapping:
        def split(self, X, y):
            n = len(X)
            yield np.arange(n // 2, n), np.arange(0, n // 2 + 5)
            yield np.arange(0, n // 2), np.arange(n // 2, n)

    with pytest.raises(ValueError, match="exactly once"):
        StackingClassifier(estimators=[MLPFactory(())], cv=Overlapping(), **FAST).fit(X, y)
    with pytest.raises(TypeError, match="cv must be"):
        StackingClassifier(estimators=[MLPFactory(())], cv="five", **FAST).fit(X, y)
    with pytest.raises(ValueError, match="stack_method must be"):
        StackingClassifier(estimators=[MLPFactory(())], stack_method="decision_function", **FAST).fit(X, y)
    with pytest.raises(TypeError, match="estimators must be a non-empty list"):
        StackingClassifier(estimators=[], **FAST).fit(X, y)


def test_logistic_regression_matches_scikit_learn(blobs3):
    X, y = blobs3
    X = (X - X.mean(0)) / X.std(0)
    ours = LogisticRegression(C=0.5, max_iter=1500, lr=0.05).fit(X, y)
    ref = SkLogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-3)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))


def test_logistic_regression_cv_picks_the_c_with_the_lowest_held_out_log_loss(blobs3):
    X, y = blobs3
    X = (X - X.mean(0)) / X.std(0)
    Cs = (1e-3, 1.0)
    cv = LogisticRegressionCV(Cs=Cs, cv=3, random_state=0).fit(X, y)
    # recompute the held-out log-loss of each C on the same folds with scikit-learn's model
    from minidl.train.selection import StratifiedKFold
    losses = []
    for C in Cs:
        fold = []
        for tr, va in StratifiedKFold(3, shuffle=True, seed=0).split(X, y):
            p = SkLogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(X[tr], y[tr]).predict_proba(X[va])
            fold.append(-np.mean(np.log(p[np.arange(len(va)), y[va]])))
        losses.append(np.mean(fold))
    np.testing.assert_allclose(cv.cv_loss_, losses, rtol=2e-2)
    assert cv.C_ == Cs[int(np.argmin(losses))] == 1.0         # well separated classes: the weak penalty
    ref = SkLogisticRegression(C=cv.C_, max_iter=5000, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(cv.predict_proba(X), ref.predict_proba(X), atol=2e-2)
    with pytest.raises(ValueError, match="Cs must be"):
        LogisticRegressionCV(Cs=(0.0,)).fit(X, y)


def test_batched_logistic_fits_follow_the_same_steps_as_separate_fits(blobs3):
    X, y = blobs3
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float64)
    rows = np.ones((3, len(X)), dtype=bool)
    rows[1, :40] = False
    rows[2, 60:] = False
    Cs = np.array([0.01, 1.0, 0.3])
    W, b = fit_logistic_batch(X, y, 3, rows, Cs, max_iter=60, lr=0.1)
    for p in range(3):
        alone = LogisticRegression(C=Cs[p], max_iter=60, lr=0.1).fit(X[rows[p]], y[rows[p]])
        np.testing.assert_allclose(W[p].T, alone.coef_, atol=1e-10)
        np.testing.assert_allclose(b[p], alone.intercept_, atol=1e-10)

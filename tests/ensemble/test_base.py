"""The shared machinery: weighted member training, factories, seeding, input checks, and
the scikit-learn contract (clone, cross_val_score) for every ensemble."""
import numpy as np
import pytest
from sklearn.base import clone, is_regressor
from sklearn.model_selection import cross_val_score

import minidl
from minidl import nn
from minidl.backend import random_generator
from minidl.ensemble import (AdaBoostClassifier, BaggingClassifier, BaggingRegressor, DiverseEnsembleClassifier,
                             GradientBoostingClassifier, GradientBoostingRegressor, MLPFactory, NCLClassifier,
                             NCLRegressor, NotFittedError, StackingClassifier, default_mlp, fit_member,
                             member_outputs)
from minidl.ensemble.base import run_jobs, seeded

from .conftest import FAST

CLASSIFIERS = [
    lambda: BaggingClassifier(n_estimators=2, random_state=0, **FAST),
    lambda: AdaBoostClassifier(n_estimators=2, random_state=0, **FAST),
    lambda: GradientBoostingClassifier(n_estimators=2, random_state=0, **FAST),
    lambda: StackingClassifier(estimators=[default_mlp, MLPFactory(())], cv=2, random_state=0, **FAST),
    lambda: DiverseEnsembleClassifier(factories=[MLPFactory((8,)), MLPFactory((), "tanh")], random_state=0,
                                      **FAST),
    lambda: NCLClassifier(n_estimators=2, random_state=0, **FAST),
]
REGRESSORS = [
    lambda: BaggingRegressor(n_estimators=2, random_state=0, **FAST),
    lambda: GradientBoostingRegressor(n_estimators=2, random_state=0, **FAST),
    lambda: NCLRegressor(n_estimators=2, random_state=0, **FAST),
]
ALL = CLASSIFIERS + REGRESSORS


def _data(make, blobs3, regression_data):
    est = make()
    return est, (regression_data if is_regressor(est) else blobs3)


# --------------------------------------------------------------------------- fit_member

def _weights_of(module):
    return [p.numpy().copy() for p in module.parameters()]


def test_zero_one_sample_weights_equal_training_on_the_subset(blobs3):
    X, y = blobs3
    keep = np.arange(len(X)) % 3 != 0
    a = fit_member(MLPFactory((8,))(6, 3), X, y, sample_weight=keep.astype(float), epochs=5, lr=0.05,
                   batch_size=None, seed=1)
    minidl.manual_seed(0)
    b = fit_member(MLPFactory((8,))(6, 3), X[keep], y[keep], epochs=5, lr=0.05, batch_size=None, seed=1)
    for wa, wb in zip(_weights_of(a), _weights_of(b)):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_sample_weights_change_the_loss_and_their_scale_does_not(blobs3):
    X, y = blobs3
    w = np.linspace(0.1, 3.0, len(X))
    runs = []
    for weight in (w, 7.0 * w, None):
        minidl.manual_seed(0)
        runs.append(_weights_of(fit_member(MLPFactory((8,))(6, 3), X, y, sample_weight=weight, epochs=3,
                                           batch_size=None, seed=1)))
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, c) for a, c in zip(runs[0], runs[2]))


def test_fit_member_regression_reduces_the_squared_error(regression_data):
    X, y = regression_data
    X = (X - X.mean(0)) / X.std(0)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    module = MLPFactory((16,))(5, 1)
    before = np.mean((member_outputs(module, X)[:, 0] - y) ** 2)
    fit_member(module, X, y, task="regression", epochs=20, lr=0.02, batch_size=32, seed=0)
    after = np.mean((member_outputs(module, X)[:, 0] - y) ** 2)
    assert after < 0.2 * before


def test_fit_member_rejects_bad_weights_and_tasks(blobs3):
    X, y = blobs3
    module = default_mlp(6, 3)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        fit_member(module, X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        fit_member(module, X, y, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="task must be"):
        fit_member(module, X, y, task="ranking")
    with pytest.raises(ValueError, match="integer class indices"):
        fit_member(module, X, y.astype(np.float32))


def test_default_mlp_is_sized_from_the_data():
    small, big = default_mlp(4, 2), default_mlp(300, 10)
    assert [tuple(p.shape) for p in small.parameters()] == [(16, 4), (16,), (2, 16), (2,)]
    assert [tuple(p.shape) for p in big.parameters()] == [(64, 300), (64,), (10, 64), (10,)]


def test_seeded_gives_reproducible_members_and_restores_the_users_stream():
    minidl.manual_seed(123)
    expected = random_generator().random(3)
    minidl.manual_seed(123)
    with seeded(7):
        a = default_mlp(5, 2)
    with seeded(7):
        b = default_mlp(5, 2)
    np.testing.assert_array_equal(_weights_of(a)[0], _weights_of(b)[0])
    np.testing.assert_array_equal(random_generator().random(3), expected)


def _double(x):
    return 2 * x


@pytest.mark.slow
def test_run_jobs_keeps_order_in_worker_processes():
    assert run_jobs(_double, [(i,) for i in range(5)], n_jobs=2) == [0, 2, 4, 6, 8]
    assert run_jobs(_double, [(i,) for i in range(3)], n_jobs=None, progress=True) == [0, 2, 4]


@pytest.mark.slow
def test_bagging_members_trained_in_parallel_processes_equal_sequential_ones(blobs3):
    X, y = blobs3
    seq = BaggingClassifier(n_estimators=2, random_state=3, **FAST).fit(X, y)
    par = BaggingClassifier(n_estimators=2, random_state=3, n_jobs=2, **FAST).fit(X, y)
    np.testing.assert_allclose(seq.predict_proba(X), par.predict_proba(X), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the sklearn contract

def test_bagging_with_defaults_just_works(blobs3):
    X, y = blobs3
    clf = BaggingClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    assert clf.predict_proba(X).shape == (len(X), 3)


@pytest.mark.parametrize("make", ALL)
def test_clone_gives_an_unfitted_copy_with_equal_params(make):
    est = make()
    est.set_params(random_state=5)
    twin = clone(est)
    assert twin is not est and type(twin) is type(est)
    assert twin.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((2, 6), dtype=np.float32))


@pytest.mark.parametrize("make", ALL)
def test_cross_val_score_runs_and_learns(make, blobs3, regression_data):
    est, (X, y) = _data(make, blobs3, regression_data)
    scores = cross_val_score(est, X, y, cv=2)
    assert scores.shape == (2,)
    assert np.all(scores > 0.5), scores


def test_string_labels_come_back_as_labels(blobs3):
    X, y = blobs3
    names = np.array(["cat", "dog", "eel"])[y]
    clf = BaggingClassifier(n_estimators=2, random_state=0, **FAST).fit(X, names)
    assert set(clf.predict(X)) <= set(names) and list(clf.classes_) == ["cat", "dog", "eel"]


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("make", ALL)
def test_predict_before_fit_says_fit_first(make):
    with pytest.raises(NotFittedError, match=r"not fitted yet.*call fit"):
        make().predict(np.zeros((2, 6), dtype=np.float32))


@pytest.mark.parametrize("make", ALL)
def test_features_of_the_wrong_width_are_named(make, blobs3, regression_data):
    est, (X, y) = _data(make, blobs3, regression_data)
    est.fit(X, y)
    width = X.shape[1]
    with pytest.raises(ValueError, match=rf"\({width + 1},\).*{width + 1} features.*fitted on \({width},\)"):
        est.predict(np.zeros((3, width + 1), dtype=np.float32))


def _not_a_module(n_features, n_outputs):
    return np.zeros((n_features, n_outputs))


@pytest.mark.parametrize("make", [
    lambda f: BaggingClassifier(f, n_estimators=2, **FAST),
    lambda f: AdaBoostClassifier(f, n_estimators=2, **FAST),
    lambda f: GradientBoostingRegressor(f, n_estimators=2, **FAST),
    lambda f: StackingClassifier([f], cv=2, **FAST),
    lambda f: DiverseEnsembleClassifier([f], **FAST),
    lambda f: NCLClassifier(f, n_estimators=2, **FAST),
])
def test_a_factory_that_does_not_return_a_module_is_named(make, blobs3):
    X, y = blobs3
    with pytest.raises(TypeError, match=r"_not_a_module returned a ndarray, expected a minidl.nn.Module"):
        make(_not_a_module).fit(X, y)


def _too_many_outputs(n_features, n_outputs):
    return nn.Linear(n_features, n_outputs + 1)


@pytest.mark.parametrize("make", [
    lambda f: BaggingClassifier(f, n_estimators=1, **FAST),
    lambda f: AdaBoostClassifier(f, n_estimators=1, **FAST),
    lambda f: GradientBoostingClassifier(f, n_estimators=1, **FAST),
    lambda f: NCLClassifier(f, n_estimators=2, **FAST),
])
def test_a_module_with_the_wrong_number_of_outputs_is_named_at_fit(make, blobs3):
    X, y = blobs3
    with pytest.raises(ValueError, match=r"_too_many_outputs maps inputs of shape \(2, 6\) to outputs of "
                                         r"shape \(2, 4\); expected \(2, 3\)"):
        make(_too_many_outputs).fit(X, y)


def test_other_bad_inputs_are_named(blobs3):
    X, y = blobs3
    clf = BaggingClassifier(n_estimators=1, **FAST)
    with pytest.raises(ValueError, match="X has 120 samples but y has 119"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="single class"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.full_like(X, np.nan), y)
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_features\)"):
        clf.fit(X[:, 0], y)
    with pytest.raises(TypeError, match="factory must be callable"):
        BaggingClassifier(factory=3, **FAST).fit(X, y)

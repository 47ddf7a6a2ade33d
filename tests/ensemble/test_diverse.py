"""Diverse ensembles: different architectures and seeds; negative correlation learning's
penalty, its gradient, and its effect on the members' spread."""
import numpy as np
import pytest

import minidl
from minidl.ensemble import (DiverseEnsembleClassifier, MLPFactory, NCLClassifier, NCLEnsemble, NCLRegressor,
                             default_zoo, disagreement, ncl_loss)
from minidl.ensemble.base import member_outputs, softmax_np

from .conftest import FAST


def test_ncl_loss_value_is_the_error_plus_lambda_times_the_penalty():
    rng = np.random.default_rng(0)
    fs = [rng.normal(size=(5, 3)) for _ in range(4)]
    y = rng.normal(size=(5, 3))
    f_bar = np.mean(fs, axis=0)
    error = sum(0.5 * ((f - y) ** 2).sum() for f in fs) / 5
    # p_i = (f_i - f_bar) . sum_{j != i} (f_j - f_bar)
    penalty = sum(((fs[i] - f_bar) * sum(fs[j] - f_bar for j in range(4) if j != i)).sum()
                  for i in range(4)) / 5
    loss, err, pen = ncl_loss([minidl.tensor(f) for f in fs], minidl.tensor(y), lam=0.3)
    assert err == pytest.approx(error) and pen == pytest.approx(penalty)
    assert pen == pytest.approx(-sum(((f - f_bar) ** 2).sum() for f in fs) / 5)
    assert loss.item() == pytest.approx(error + 0.3 * penalty)


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_ncl_gradient_is_liu_and_yaos(lam):
    rng = np.random.default_rng(1)
    fs = [minidl.tensor(rng.normal(size=(6, 2)), requires_grad=True) for _ in range(3)]
    y = rng.normal(size=(6, 2))
    loss, _, _ = ncl_loss(fs, minidl.tensor(y), lam)
    loss.backward()
    f_bar = np.mean([f.numpy() for f in fs], axis=0)
    for f in fs:
        expected = ((1 - lam) * (f.numpy() - y) + lam * (f_bar - y)) / 6
        np.testing.assert_allclose(f.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_ncl_loss_checks_shapes():
    with pytest.raises(ValueError, match=r"member output shape \(2, 3\) differs from the target's \(2, 2\)"):
        ncl_loss([minidl.zeros((2, 3))], minidl.zeros((2, 2)), 0.5)


def test_penalty_spreads_the_members_out(blobs3):
    X, y = blobs3
    spread = [NCLClassifier(n_estimators=3, lam=lam, random_state=0, epochs=10, batch_size=32, lr=0.02)
              .fit(X, y).ambiguity(X) for lam in (0.0, 1.0)]
    assert spread[1] > spread[0]


def test_ncl_classifier_averages_member_probabilities_and_learns(blobs3):
    X, y = blobs3
    clf = NCLEnsemble(n_estimators=3, lam=0.5, random_state=0, epochs=10, batch_size=32).fit(X, y)
    assert NCLEnsemble is NCLClassifier
    Xs = clf._scale(X)
    probas = [softmax_np(member_outputs(m, Xs)) for m in clf.estimators_]
    np.testing.assert_allclose(clf.predict_proba(X), np.mean(probas, axis=0), rtol=1e-6)
    assert clf.score(X, y) > 0.9
    assert len(clf.history_["error"]) == 10 and clf.history_["error"][-1] < clf.history_["error"][0]
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        NCLClassifier(lam=2.0, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="n_estimators must be an int >= 2"):
        NCLClassifier(n_estimators=1, **FAST).fit(X, y)


def test_ncl_regressor_learns_in_the_units_of_y(regression_data):
    X, y = regression_data
    reg = NCLRegressor(n_estimators=3, lam=0.5, random_state=0, epochs=15, batch_size=32).fit(X, y)
    assert reg.score(X, y) > 0.9
    assert reg.predict(X).shape == y.shape


def test_members_have_different_architectures_and_seeds(blobs3):
    X, y = blobs3
    zoo = [MLPFactory((8,), "relu"), MLPFactory((4, 4), "tanh")]
    clf = DiverseEnsembleClassifier(zoo, n_estimators=4, random_state=0, **FAST).fit(X, y)
    assert clf.member_factories_ == [zoo[0], zoo[1], zoo[0], zoo[1]]
    shapes = [[tuple(p.shape) for p in m.parameters()] for m in clf.estimators_]
    assert shapes[0] == shapes[2] != shapes[1] == shapes[3]
    assert len(set(clf.estimators_seeds_)) == 4
    first = [m.state_dict()["1.weight"] for m in clf.estimators_]
    assert not np.allclose(first[0], first[2])              # same architecture, other seed
    assert clf.score(X, y) > 0.85
    labels = clf.member_predict(X)
    assert labels.shape == (4, len(X))
    np.testing.assert_array_equal(labels[1], clf.estimators_[1](minidl.tensor(clf._scale(X))).numpy().argmax(1))
    assert clf.diversity(X) == pytest.approx(disagreement(list(labels)))
    assert 0.0 < clf.diversity(X) < 0.5
    hard = DiverseEnsembleClassifier(zoo, n_estimators=4, voting="hard", random_state=0, **FAST).fit(X, y)
    assert set(np.unique(hard.predict_proba(X) * 4)) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_default_zoo_is_diverse_and_used_by_default(blobs3):
    X, y = blobs3
    assert len({(f.hidden, f.activation) for f in default_zoo()}) == len(default_zoo())
    clf = DiverseEnsembleClassifier(random_state=0, **FAST).fit(X, y)
    assert len(clf.estimators_) == len(default_zoo())


def test_disagreement():
    assert disagreement([np.array([0, 1, 2])]) == 0.0
    # pairs: (a,b) differ on 1 of 4, (a,c) on 2, (b,c) on 1 -> mean (0.25 + 0.5 + 0.25) / 3
    a, b, c = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]), np.array([1, 0, 1, 2])
    assert disagreement([a, b, c]) == pytest.approx(1.0 / 3.0)

"""Bagging: bootstrap samples, out-of-bag sets and score, voting, the regressor."""
import numpy as np
import pytest
from sklearn.metrics import r2_score

from minidl import nn
from minidl.ensemble import BaggingClassifier, BaggingRegressor, bootstrap_indices, oob_mask
from minidl.ensemble.base import member_outputs, softmax_np

from .conftest import FAST


class RowSpy(nn.Module):
    """Scores from a linear layer; records the ids (column 0 of X) of every training row."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        self.trained_on = []

    def forward(self, x):
        if self.training:
            self.trained_on.extend(np.rint(x.numpy()[:, 0]).astype(int).tolist())
        return self.linear(x)


def _id_data(blobs3):
    X, y = blobs3
    return np.concatenate([np.arange(len(X), dtype=np.float32)[:, None], X], axis=1), y


def test_bootstrap_indices_draw_with_replacement_uniformly():
    rng = np.random.default_rng(0)
    idx = bootstrap_indices(1000, 1000, rng)
    assert idx.shape == (1000,) and idx.min() >= 0 and idx.max() < 1000
    unique_fraction = len(np.unique(idx)) / 1000
    assert abs(unique_fraction - (1 - (1 - 1 / 1000) ** 1000)) < 0.03     # ~ 1 - 1/e = 0.632
    counts = np.bincount(bootstrap_indices(10, 100_000, rng), minlength=10)
    assert np.all(np.abs(counts / 100_000 - 0.1) < 0.005)
    subset = bootstrap_indices(50, 20, rng, replace=False)
    assert len(np.unique(subset)) == 20
    with pytest.raises(ValueError, match="without replacement"):
        bootstrap_indices(5, 6, rng, replace=False)


def test_oob_mask_marks_exactly_the_samples_not_drawn():
    mask = oob_mask(6, np.array([0, 0, 2, 5, 2, 2]))
    np.testing.assert_array_equal(mask, [False, True, False, True, True, False])


def test_each_member_trains_on_exactly_its_bootstrap_sample(blobs3):
    X, y = _id_data(blobs3)
    clf = BaggingClassifier(RowSpy, n_estimators=3, standardize=False, random_state=0, epochs=2,
                            batch_size=32).fit(X, y)
    for module, idx in zip(clf.estimators_, clf.estimators_samples_):
        assert len(idx) == len(X)
        assert len(np.unique(idx)) < len(X)                                  # with replacement
        # every epoch runs over the bootstrap sample once, repeats included
        np.testing.assert_array_equal(np.sort(module.trained_on), np.sort(np.tile(idx, 2)))
    samples = clf.estimators_samples_
    assert not np.array_equal(samples[0], samples[1])


def test_max_samples_and_pasting(blobs3):
    X, y = blobs3
    clf = BaggingClassifier(n_estimators=2, max_samples=0.5, bootstrap=False, random_state=0, **FAST).fit(X, y)
    for idx in clf.estimators_samples_:
        assert len(idx) == 60 and len(np.unique(idx)) == 60
    clf = BaggingClassifier(n_estimators=2, max_samples=30, random_state=0, **FAST).fit(X, y)
    assert all(len(idx) == 30 for idx in clf.estimators_samples_)
    with pytest.raises(ValueError, match="max_samples"):
        BaggingClassifier(max_samples=1.5, **FAST).fit(X, y)


@pytest.mark.filterwarnings("ignore:.*no OOB prediction")
def test_oob_score_uses_only_members_that_did_not_see_the_sample(blobs3):
    X, y = blobs3
    clf = BaggingClassifier(n_estimators=6, oob_score=True, random_state=1, **FAST).fit(X, y)
    Xs = clf._scale(X)
    total, count = np.zeros((len(X), 3)), np.zeros(len(X))
    for module, idx in zip(clf.estimators_, clf.estimators_samples_):
        out = oob_mask(len(X), idx)
        total[out] += softmax_np(member_outputs(module, Xs[out]))
        count[out] += 1
    seen = count > 0
    expected = total[seen] / count[seen, None]
    np.testing.assert_allclose(clf.oob_decision_function_[seen], expected, rtol=1e-6)
    assert np.all(np.isnan(clf.oob_decision_function_[~seen]))
    assert clf.oob_score_ == pytest.approx(np.mean(expected.argmax(1) == y[seen]))
    assert clf.oob_score_ > 0.8


def test_oob_warns_when_a_sample_is_in_every_bootstrap(blobs3):
    X, y = blobs3
    with pytest.warns(UserWarning, match="no OOB prediction"):
        BaggingClassifier(n_estimators=1, oob_score=True, random_state=0, **FAST).fit(X, y)


def test_soft_voting_averages_probabilities_and_hard_voting_counts_votes(blobs3):
    X, y = blobs3
    soft = BaggingClassifier(n_estimators=3, random_state=2, **FAST).fit(X, y)
    hard = BaggingClassifier(n_estimators=3, voting="hard", random_state=2, **FAST).fit(X, y)
    Xs = soft._scale(X)
    probas = [softmax_np(member_outputs(m, Xs)) for m in soft.estimators_]
    np.testing.assert_allclose(soft.predict_proba(X), np.mean(probas, axis=0), rtol=1e-6)
    votes = np.mean([np.eye(3)[p.argmax(1)] for p in probas], axis=0)
    np.testing.assert_allclose(hard.predict_proba(X), votes)   # same seeds: same members
    assert set(np.unique(hard.predict_proba(X) * 3)) <= {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(ValueError, match="voting must be"):
        BaggingClassifier(voting="median", **FAST).fit(X, y)


def test_same_random_state_same_ensemble(blobs3):
    X, y = blobs3
    a = BaggingClassifier(n_estimators=2, random_state=7, **FAST).fit(X, y)
    b = BaggingClassifier(n_estimators=2, random_state=7, **FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.filterwarnings("ignore:.*no OOB prediction")
def test_bagging_regressor_averages_members_in_the_units_of_y(regression_data):
    X, y = regression_data
    reg = BaggingRegressor(n_estimators=3, oob_score=True, random_state=0, epochs=20, batch_size=32).fit(X, y)
    Xs = reg._scale(X)
    members = [member_outputs(m, Xs)[:, 0] * reg.y_scale_ + reg.y_mean_ for m in reg.estimators_]
    np.testing.assert_allclose(reg.predict(X), np.mean(members, axis=0), rtol=1e-5)
    assert reg.score(X, y) > 0.9
    assert reg.oob_score_ == pytest.approx(r2_score(y[~np.isnan(reg.oob_prediction_)],
                                                    reg.oob_prediction_[~np.isnan(reg.oob_prediction_)]))
    two = BaggingRegressor(n_estimators=2, random_state=0, **FAST).fit(X, np.stack([y, -y], axis=1))
    assert two.predict(X).shape == (len(X), 2)

"""Class-incremental learning: exemplar memory budget and balance, herding, metrics, replay vs naive."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.semi.incremental import (ExemplarMemory, average_accuracy, forgetting, herding_order, split_tasks,
                                     train_incremental)


def _data(n_per_class=30, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_per_class * classes, 1, 2, 3)).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per_class)
    return X, y


@pytest.mark.parametrize("selection", ["herding", "random"])
def test_memory_respects_budget_and_class_balance(selection):
    X, y = _data()
    mem = ExemplarMemory(budget=25, selection=selection, seed=0)
    for task in split_tasks(6, 2):
        keep = np.isin(y, task)
        mem.add_classes(X[keep], y[keep])
        Xm, ym = mem.data()
        counts = np.bincount(ym)
        n_seen = len(mem.classes)
        assert len(mem) == len(Xm) <= 25
        assert np.all(counts == 25 // n_seen)                   # every class holds the same m
        assert mem.classes == sorted(set(ym.tolist()))
        # exemplars are real samples of their class
        for xi, yi in zip(Xm, ym):
            assert np.any(np.all(X[y == yi] == xi, axis=(1, 2, 3)))


def test_shrinking_keeps_the_first_ranked_exemplars():
    X, y = _data()
    mem = ExemplarMemory(budget=20, selection="herding")
    mem.add_classes(X[y < 2], y[y < 2])
    first = mem.exemplars[0].copy()                             # 10 of class 0
    mem.add_classes(X[(y >= 2) & (y < 4)], y[(y >= 2) & (y < 4)])
    np.testing.assert_array_equal(mem.exemplars[0], first[:5])


def test_herding_matches_a_direct_greedy_and_tracks_the_mean():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(40, 5))
    order = herding_order(f, 8)
    phi = f / np.linalg.norm(f, axis=1, keepdims=True)
    mu = phi.mean(axis=0)
    chosen = []
    for k in range(1, 9):
        best = min((i for i in range(40) if i not in chosen),
                   key=lambda i: np.linalg.norm(mu - (phi[chosen].sum(axis=0) + phi[i]) / k))
        chosen.append(best)
    assert order.tolist() == chosen
    # the herded mean is closer to the class mean than a random subset's, on average
    err_herd = np.linalg.norm(phi[order].mean(axis=0) - mu)
    err_rand = np.mean([np.linalg.norm(phi[rng.choice(40, 8, replace=False)].mean(axis=0) - mu) for _ in range(50)])
    assert err_herd < 0.5 * err_rand


def test_metrics_on_a_known_matrix():
    nan = np.nan
    R = np.array([[0.9, nan, nan], [0.6, 0.8, nan], [0.5, 0.4, 0.7]])
    assert average_accuracy(R) == pytest.approx((0.5 + 0.4 + 0.7) / 3)
    assert forgetting(R) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)
    assert forgetting(R[:1, :1]) == 0.0


def test_memory_bad_input():
    X, y = _data()
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        ExemplarMemory(0)
    with pytest.raises(ValueError, match="selection"):
        ExemplarMemory(10, selection="closest")
    mem = ExemplarMemory(3)
    with pytest.raises(ValueError, match="cannot hold one exemplar"):
        mem.add_classes(X[y < 4], y[y < 4])
    mem = ExemplarMemory(10)
    mem.add_classes(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="already in memory"):
        mem.add_classes(X[y == 1], y[y == 1])
    with pytest.raises(ValueError, match="empty"):
        ExemplarMemory(5).data()
    with pytest.raises(ValueError, match="do not split"):
        split_tasks(5, 2)


def test_replay_forgets_less_than_naive_fine_tuning():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(6, 4))
    y = np.repeat(np.arange(6), 40)
    X = (centers[y] + rng.normal(0, 0.5, size=(240, 4))).astype(np.float32).reshape(240, 1, 2, 2)
    tr = np.arange(240) % 4 != 0
    tasks = split_tasks(6, 2)
    results = {}
    for name, mem in (("naive", None), ("replay", ExemplarMemory(30, seed=0))):
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 6))
        results[name] = train_incremental(model, X[tr], y[tr], X[~tr], y[~tr], tasks, memory=mem, epochs=15,
                                          lr=1e-2, seed=0, progress=False)
    naive, replay = results["naive"], results["replay"]
    assert naive["R"].shape == (3, 3) and np.isnan(naive["R"][0, 1])
    assert naive["forgetting"] > 0.3                 # fine-tuning on new classes erodes the old ones
    assert replay["forgetting"] < naive["forgetting"] - 0.3
    assert replay["average_accuracy"] > naive["average_accuracy"] + 0.2
    assert replay["average_accuracy_curve"][-1] == pytest.approx(replay["average_accuracy"])

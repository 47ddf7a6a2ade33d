"""Class weights, the focal loss (formula, torch, gradients) and the class-balanced sampler."""
import numpy as np
import pytest
import torch

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.data import DataLoader, TensorDataset
from minidl.optim import Adam
from minidl.semi.imbalanced import ClassBalancedSampler, class_weights, focal_loss


def _focal_numpy(z, t, gamma, alpha=None):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    logpt = logp[np.arange(len(t)), t]
    pt = np.exp(logpt)
    a = np.ones(len(t)) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), (z.shape[1],))[t]
    return -a * (1 - pt) ** gamma * logpt


def test_class_weights_inverse_and_effective():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    w = class_weights(y)
    np.testing.assert_allclose(w, 100 / (3 * np.array([80, 15, 5])), rtol=1e-6)
    e = class_weights(y, scheme="effective", beta=0.99)
    raw = (1 - 0.99) / (1 - 0.99 ** np.array([80, 15, 5]))
    np.testing.assert_allclose(e, raw * 3 / raw.sum(), rtol=1e-6)
    assert e[2] > e[1] > e[0]
    np.testing.assert_allclose(class_weights(y, scheme="effective", beta=0.0), [1, 1, 1], rtol=1e-6)
    w5 = class_weights(y, num_classes=5)
    assert w5.shape == (5,) and w5[3] == w5[4] == 0


def test_class_weights_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        class_weights(np.array([0, 1]), scheme="sqrt")
    with pytest.raises(ValueError, match="beta"):
        class_weights(np.array([0, 1]), scheme="effective", beta=1.0)
    with pytest.raises(ValueError, match="1-D integer"):
        class_weights(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="num_classes=2"):
        class_weights(np.array([0, 3]), num_classes=2)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, [0.1, 0.2, 0.3, 0.4]])
def test_focal_loss_matches_its_formula(gamma, alpha):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, size=(7, 4))
    t = rng.integers(0, 4, size=7)
    ours = focal_loss(minidl.tensor(z), t, gamma=gamma, alpha=alpha, reduction="none").numpy()
    np.testing.assert_allclose(ours, _focal_numpy(z, t, gamma, alpha), rtol=1e-10, atol=1e-12)
    mean = focal_loss(minidl.tensor(z), t, gamma=gamma, alpha=alpha).item()
    np.testing.assert_allclose(mean, _focal_numpy(z, t, gamma, alpha).mean(), rtol=1e-10)


def test_focal_loss_gradient_matches_torch():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, size=(6, 5))
    t = rng.integers(0, 5, size=6)
    alpha = rng.uniform(0.2, 1.0, size=5)
    x = minidl.tensor(z, requires_grad=True)
    focal_loss(x, t, gamma=2.0, alpha=alpha).backward()
    zt = torch.tensor(z, requires_grad=True)
    logpt = torch.log_softmax(zt, dim=1)[torch.arange(6), torch.tensor(t)]
    loss = (-torch.tensor(alpha)[torch.tensor(t)] * (1 - logpt.exp()) ** 2 * logpt).mean()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), zt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_focal_loss_at_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(3)
    z = minidl.tensor(rng.normal(size=(9, 3)))
    t = rng.integers(0, 3, size=9)
    np.testing.assert_allclose(focal_loss(z, t, gamma=0.0).item(), F.cross_entropy(z, minidl.tensor(t)).item(),
                               rtol=1e-12)


def test_focal_loss_down_weights_easy_samples():
    z = minidl.tensor(np.array([[6.0, 0.0], [0.2, 0.0]]))
    t = np.array([0, 0])
    ce = focal_loss(z, t, gamma=0.0, reduction="none").numpy()
    fl = focal_loss(z, t, gamma=2.0, reduction="none").numpy()
    assert fl[0] / ce[0] < 1e-4 < 0.1 < fl[1] / ce[1]


@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.5])
def test_focal_loss_gradcheck_and_gradgradcheck(gamma):
    rng = np.random.default_rng(4)
    z = minidl.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    t = rng.integers(0, 3, size=4)
    alpha = [0.5, 1.0, 2.0]
    assert minidl.gradcheck(lambda x: focal_loss(x, t, gamma=gamma, alpha=alpha), [z])
    assert minidl.gradgradcheck(lambda x: focal_loss(x, t, gamma=gamma, reduction="sum"), [z])


def test_focal_loss_bad_input():
    z = minidl.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        focal_loss(z, [0, 1, 2], gamma=-1.0)
    with pytest.raises(ValueError, match=r"target must be \(3,\) integer class indices"):
        focal_loss(z, [0, 1], gamma=2.0)
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        focal_loss(z, [0, 1, 4])
    with pytest.raises(ValueError, match=r"alpha must be a number or \(4,\)"):
        focal_loss(z, [0, 1, 2], alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(z, [0, 1, 2], reduction="avg")
    with pytest.raises(ValueError, match=r"floating \(N, C\)"):
        focal_loss(minidl.tensor(np.zeros(3)), [0, 1, 2])


def test_class_balanced_sampler_draws_classes_evenly():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = ClassBalancedSampler(y, num_samples=30000, seed=0)
    drawn = y[np.fromiter(iter(sampler), dtype=np.int64)]
    freq = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.015)
    # within a class, samples are drawn uniformly: every one of the 10 rare samples comes up
    rare = np.fromiter(iter(sampler), dtype=np.int64)
    assert set(rare[y[rare] == 2]) == set(range(990, 1000))


def test_class_balanced_sampler_without_replacement_undersamples():
    y = np.array([0] * 50 + [1] * 7 + [2] * 12)
    sampler = ClassBalancedSampler(y, replacement=False, seed=1)
    idx = list(sampler)
    assert len(idx) == len(sampler) == 21 and len(set(idx)) == 21
    assert np.bincount(y[idx]).tolist() == [7, 7, 7]


def test_class_balanced_sampler_plugs_into_dataloader():
    y = np.array([0] * 60 + [1] * 4)
    X = np.arange(64, dtype=np.float32)[:, None]
    loader = DataLoader(TensorDataset(X, y), batch_size=16,
                        sampler=ClassBalancedSampler(y, num_samples=6400, seed=0))
    labels = np.concatenate([yb.numpy() for _, yb in loader])
    assert len(loader) == 400 and labels.size == 6400
    assert abs(labels.mean() - 0.5) < 0.03
    same = list(ClassBalancedSampler(y, seed=3)) == list(ClassBalancedSampler(y, seed=3))
    assert same


def test_class_balanced_sampler_bad_input():
    with pytest.raises(ValueError, match="num_samples"):
        ClassBalancedSampler([0, 1], num_samples=0)
    with pytest.raises(ValueError, match="leave it None"):
        ClassBalancedSampler([0, 1], num_samples=4, replacement=False)
    with pytest.raises(ValueError, match=">= 0"):
        ClassBalancedSampler([0, -1])


def test_focal_loss_on_each_device_matches_numpy(device):
    rng = np.random.default_rng(6)
    z = rng.normal(size=(5, 3))
    t = rng.integers(0, 3, size=5)
    x = minidl.tensor(z, requires_grad=True, device=device)
    loss = focal_loss(x, minidl.tensor(t, device=device), gamma=2.0, alpha=[0.2, 0.5, 1.0])
    loss.backward()
    np.testing.assert_allclose(loss.item(), _focal_numpy(z, t, 2.0, [0.2, 0.5, 1.0]).mean(), rtol=1e-10)
    assert x.grad.device == x.device


def _minority_recall(loss_fn, X, y, steps=300):
    minidl.manual_seed(0)
    model = nn.Linear(2, 2)
    opt = Adam(model.parameters(), lr=0.05)
    xt, yt = minidl.tensor(X), minidl.tensor(y)
    for _ in range(steps):
        loss = loss_fn(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with minidl.no_grad():
        pred = model(xt).numpy().argmax(axis=1)
    return (pred[y == 1] == 1).mean()


def test_class_weights_and_focal_loss_raise_minority_recall():
    # 400 vs 20 samples of two overlapping Gaussians: plain cross-entropy favours the majority.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, size=(400, 2)), rng.normal(1.5, 1, size=(20, 2))]).astype(np.float32)
    y = np.repeat([0, 1], [400, 20])
    plain = _minority_recall(lambda z, t: F.cross_entropy(z, t), X, y)
    w = minidl.tensor(class_weights(y))
    weighted = _minority_recall(lambda z, t: F.cross_entropy(z, t, weight=w), X, y)
    focal = _minority_recall(lambda z, t: focal_loss(z, t, gamma=2.0, alpha=class_weights(y)), X, y)
    assert weighted > plain + 0.3
    assert focal > plain + 0.3

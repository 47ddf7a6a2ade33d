"""MixMatch: sharpening, mixup, label guessing, the loss and ramp-up, and a short run."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.semi.mixmatch import guess_labels, linear_rampup, mixmatch_loss, mixup, sharpen, train_mixmatch


def _probs(rng, n=5, c=4):
    p = rng.uniform(0.01, 1.0, size=(n, c))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("T", [0.1, 0.5, 1.0, 2.0])
def test_sharpen_matches_formula(T):
    rng = np.random.default_rng(0)
    p = _probs(rng)
    ref = p ** (1 / T) / (p ** (1 / T)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sharpen(p, T), ref, rtol=1e-10)
    np.testing.assert_allclose(sharpen(minidl.tensor(p), T).numpy(), ref, rtol=1e-10)


def test_sharpen_limits():
    p = np.array([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(sharpen(p, 1.0), p)
    np.testing.assert_allclose(sharpen(p, 1e-3), [[1.0, 0.0, 0.0]], atol=1e-12)
    assert sharpen(p, 0.5)[0, 0] > 0.5


def test_sharpen_is_differentiable():
    rng = np.random.default_rng(1)
    p = minidl.tensor(_probs(rng, 3, 3), requires_grad=True)
    assert minidl.gradcheck(lambda x: sharpen(x, 0.5), [p])


@pytest.mark.parametrize("lam", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_mixup_uses_max_lambda(lam):
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(4, 1, 3, 3)), rng.normal(size=(4, 1, 3, 3))
    p1, p2 = _probs(rng, 4, 3), _probs(rng, 4, 3)
    x, p = mixup(x1, p1, x2, p2, lam)
    lp = max(lam, 1 - lam)
    np.testing.assert_allclose(x, lp * x1 + (1 - lp) * x2)
    np.testing.assert_allclose(p, lp * p1 + (1 - lp) * p2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # the mixed example stays at least as close to its first input as to the second
    assert np.all(np.abs(x - x1) <= np.abs(x - x2) + 1e-12)


def test_guess_labels_averages_k_augmentations():
    rng = np.random.default_rng(3)
    net = nn.Linear(6, 4).double()
    views = [minidl.tensor(rng.normal(size=(5, 6))) for _ in range(3)]
    w, b = net.weight.numpy(), net.bias.numpy()
    probs = []
    for v in views:
        z = v.numpy() @ w.T + b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probs.append(e / e.sum(axis=1, keepdims=True))
    mean = np.mean(probs, axis=0)
    ref = mean ** 2 / (mean ** 2).sum(axis=1, keepdims=True)          # T = 0.5
    np.testing.assert_allclose(guess_labels(net, views, T=0.5), ref, rtol=1e-10)
    # one view and T = 1: just the model's probabilities
    np.testing.assert_allclose(guess_labels(net, views[:1], T=1.0), probs[0], rtol=1e-10)


def test_guess_labels_records_no_graph():
    net = nn.Linear(3, 2)
    q = guess_labels(net, [minidl.tensor(np.ones((2, 3), dtype=np.float32))], T=0.5)
    assert not hasattr(q, "requires_grad")
    assert all(p.grad is None for p in net.parameters())


def test_mixmatch_loss_formula():
    rng = np.random.default_rng(4)
    zx, zu = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    px, pu = _probs(rng, 3, 4), _probs(rng, 6, 4)
    loss, lx, lu = mixmatch_loss(minidl.tensor(zx), px, minidl.tensor(zu), pu, lambda_u=75.0, weight=0.4)
    logp = zx - np.log(np.exp(zx).sum(axis=1, keepdims=True))
    ref_x = -(px * logp).sum(axis=1).mean()
    su = np.exp(zu) / np.exp(zu).sum(axis=1, keepdims=True)
    ref_u = ((su - pu) ** 2).mean()
    np.testing.assert_allclose([lx.item(), lu.item(), loss.item()], [ref_x, ref_u, ref_x + 30.0 * ref_u], rtol=1e-10)


def test_linear_rampup():
    assert [linear_rampup(t, 10) for t in (-1, 0, 5, 10, 20)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert linear_rampup(0, 0) == 1.0


def test_bad_temperature_and_inputs():
    p = np.full((2, 2), 0.5)
    for T in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature T must be > 0"):
            sharpen(p, T)
        with pytest.raises(ValueError, match="temperature T must be > 0"):
            guess_labels(nn.Linear(2, 2), [minidl.tensor(p)], T=T)
    with pytest.raises(ValueError, match="at least one augmented view"):
        guess_labels(nn.Linear(2, 2), [], T=0.5)
    with pytest.raises(ValueError, match="same shapes"):
        mixup(np.zeros((2, 3)), p, np.zeros((3, 3)), p, 0.5)
    with pytest.raises(ValueError, match="lam must be in"):
        mixup(p, p, p, p, 1.5)
    with pytest.raises(ValueError, match="must match the logits"):
        mixmatch_loss(minidl.tensor(p), np.zeros((2, 3)), minidl.tensor(p), p, 1.0)
    X = np.zeros((4, 1, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="temperature"):
        train_mixmatch(nn.Linear(4, 2), X, np.zeros(4, dtype=np.int64), X, T=0.0)


def test_short_mixmatch_run_learns_two_blobs():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-1, 0.3, size=(60, 1, 2, 2)), rng.normal(1, 0.3, size=(60, 1, 2, 2))])
    X = X.astype(np.float32)
    y = np.repeat([0, 1], 60)
    lab = np.array([0, 1, 60, 61])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model, hist = train_mixmatch(model, X[lab], y[lab], X, steps=60, batch_size=8, seed=0, progress=False,
                                 augment=lambda x, r: x + r.normal(0, 0.05, size=x.shape).astype(x.dtype))
    assert len(hist["loss"]) == 60 and hist["weight"][0] == 0.0 and hist["weight"][-1] == 1.0
    with minidl.no_grad():
        pred = model(minidl.tensor(X)).numpy().argmax(axis=1)
    assert (pred == y).mean() > 0.95

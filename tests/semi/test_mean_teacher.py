"""Mean Teacher: the EMA rule (exactly), no gradients to the teacher, ramp-up, consistency loss."""
import math

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.optim import SGD
from minidl.semi.mean_teacher import MeanTeacher, consistency_loss, ema_update, sigmoid_rampup, train_mean_teacher


def _net():
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).double()


def test_teacher_moves_by_exactly_the_ema_rule():
    student = _net()
    mt = MeanTeacher(student, alpha=0.9)
    opt = SGD(student.parameters(), lr=0.1)
    x = minidl.tensor(np.random.default_rng(0).normal(size=(8, 3)))
    for step in range(5):
        before = [p.numpy().copy() for p in mt.teacher.parameters()]
        loss = (student(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        a = mt.update()
        assert a == min(1 - 1 / (step + 2), 0.9)
        for t, b, s in zip(mt.teacher.parameters(), before, student.parameters()):
            np.testing.assert_allclose(t.numpy(), a * b + (1 - a) * s.numpy(), rtol=1e-14, atol=1e-15)
    # the BatchNorm running statistics follow the student
    for t, s in zip(mt.teacher.buffers(), student.buffers()):
        np.testing.assert_array_equal(t.numpy(), s.numpy())


def test_teacher_gets_no_gradients():
    student = _net()
    mt = MeanTeacher(student)
    x = minidl.tensor(np.random.default_rng(1).normal(size=(4, 3)))
    assert all(not p.requires_grad for p in mt.teacher.parameters())
    loss = consistency_loss(student(x), mt.teacher(x))        # even a teacher call outside no_grad
    loss.backward()
    assert all(p.grad is None for p in mt.teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert not mt.teacher_logits(x).requires_grad


def test_ema_update_limits_and_errors():
    s, t = nn.Linear(2, 2), nn.Linear(2, 2)
    ema_update(t, s, 0.0)
    np.testing.assert_array_equal(t.weight.numpy(), s.weight.numpy())
    w = t.weight.numpy().copy()
    s2 = nn.Linear(2, 2)
    ema_update(t, s2, 1.0)
    np.testing.assert_array_equal(t.weight.numpy(), w)
    with pytest.raises(ValueError, match="alpha must be in"):
        ema_update(t, s, 1.5)
    with pytest.raises(ValueError, match="shape"):
        ema_update(nn.Linear(2, 3), s, 0.5)
    with pytest.raises(ValueError, match="copy of the student"):
        ema_update(nn.Linear(2, 2, bias=False), s, 0.5)


def test_sigmoid_rampup():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == sigmoid_rampup(50, 10) == sigmoid_rampup(3, 0) == 1.0


def test_consistency_loss_formula_and_teacher_side_detached():
    rng = np.random.default_rng(2)
    zs, zt = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    a, b = minidl.tensor(zs, requires_grad=True), minidl.tensor(zt, requires_grad=True)
    loss = consistency_loss(a, b)
    sm = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(loss.item(), ((sm(zs) - sm(zt)) ** 2).mean(), rtol=1e-12)
    loss.backward()
    assert b.grad is None and a.grad is not None
    assert minidl.gradcheck(lambda x: consistency_loss(x, minidl.tensor(zt)), [minidl.tensor(zs, requires_grad=True)])
    with pytest.raises(ValueError, match="same shape"):
        consistency_loss(a, minidl.tensor(np.zeros((4, 2))))


def test_short_mean_teacher_run():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-1, 0.3, size=(60, 1, 2, 2)), rng.normal(1, 0.3, size=(60, 1, 2, 2))])
    X = X.astype(np.float32)
    y = np.repeat([0, 1], 60)
    lab = np.array([0, 1, 60, 61])
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    noise = lambda x, r: x + r.normal(0, 0.05, size=x.shape).astype(x.dtype)  # noqa: E731
    teacher, hist = train_mean_teacher(student, X[lab], y[lab], X, steps=60, batch_size=4, mu=2, alpha=0.9,
                                       seed=0, progress=False, augment=noise)
    assert hist["student"] is student and teacher is not student
    assert len(hist["loss"]) == 60
    with minidl.no_grad():
        pred = teacher(minidl.tensor(X)).numpy().argmax(axis=1)
    assert (pred == y).mean() > 0.95


def test_mean_teacher_trains_on_each_device(device):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(16, 1, 2, 2)).astype(np.float32)
    y = (X.reshape(16, -1).sum(axis=1) > 0).astype(np.int64)
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).to(device)
    teacher, hist = train_mean_teacher(student, X[:4], y[:4], X, steps=3, batch_size=4, mu=1, seed=0,
                                       progress=False, augment=lambda x, r: x)
    assert all(str(p.device) == str(q.device) for p, q in zip(teacher.parameters(), student.parameters()))
    assert len(hist["loss"]) == 3 and np.all(np.isfinite(hist["loss"]))

"""Distillation loss against its formula (NumPy), its gradient (gradcheck and the closed
form (q - p) T / N), and a student that learns from a teacher."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.deploy import distill, distillation_loss, predict


def _np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0)])
def test_distillation_loss_matches_its_formula(T, alpha, rng):
    s, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)) * 3
    y = rng.integers(0, 5, 6)
    got = distillation_loss(minidl.tensor(s), t, minidl.tensor(y), T, alpha).item()
    lp, lq = _np_log_softmax(t / T), _np_log_softmax(s / T)
    kl = np.sum(np.exp(lp) * (lp - lq)) / 6
    ce = -np.mean(_np_log_softmax(s)[np.arange(6), y])
    assert got == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, rel=1e-10)


def test_distillation_loss_gradcheck_and_closed_form(rng):
    t = rng.standard_normal((4, 3))
    y = minidl.tensor(rng.integers(0, 3, 4))
    s = minidl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert minidl.gradcheck(lambda a: distillation_loss(a, t, y, 3.0, 0.7), [s])
    assert minidl.gradgradcheck(lambda a: distillation_loss(a, t, y, 3.0, 0.7), [s])
    s.grad = None
    distillation_loss(s, t, None, 3.0, 1.0).backward()
    q, p = np.exp(_np_log_softmax(s.numpy() / 3.0)), np.exp(_np_log_softmax(t / 3.0))
    np.testing.assert_allclose(s.grad.numpy(), (q - p) * 3.0 / 4, rtol=1e-10)


def test_distillation_loss_checks_shapes():
    with pytest.raises(ValueError, match="teacher logits"):
        distillation_loss(minidl.tensor(np.zeros((2, 3))), np.zeros((2, 4)), None, 2.0, 1.0)
    with pytest.raises(ValueError, match="target"):
        distillation_loss(minidl.tensor(np.zeros((2, 3))), np.zeros((2, 3)), None, 2.0, 0.5)


def test_student_learns_the_teachers_function(rng):
    X = rng.standard_normal((200, 4)).astype(np.float32)
    teacher = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    y = predict(teacher, X).argmax(1)
    student = nn.Sequential(nn.Linear(4, 3))
    before = np.mean(predict(student, X).argmax(1) == y)
    history = distill(teacher, student, X, y, epochs=25, lr=0.05, batch_size=50, progress=False)
    after = np.mean(predict(student, X).argmax(1) == y)
    assert history[-1] < history[0] and after > max(before, 0.8)

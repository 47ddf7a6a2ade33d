"""FGSM/PGD: perturbations of L-inf norm eps that raise the loss; adversarial training
improves accuracy under attack on a small problem."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.deploy import accuracy_under_attack, adversarial_training, fgsm, pgd, predict


def _loss(model, x, y):
    return F.cross_entropy(model(minidl.tensor(x)), minidl.tensor(y)).item()


@pytest.fixture
def problem(rng):
    X = rng.random((64, 1, 4, 4)).astype(np.float32)
    y = (X[:, 0, :2].mean(axis=(1, 2)) > X[:, 0, 2:].mean(axis=(1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2))
    return model, X, y


def test_fgsm_step_has_linf_norm_eps_and_raises_the_loss(problem):
    model, X, y = problem
    Xa = fgsm(model, X, y, 0.05, clip=None)
    np.testing.assert_allclose(np.abs(Xa - X).max(axis=(1, 2, 3)), 0.05, rtol=1e-5)
    assert _loss(model, Xa, y) > _loss(model, X, y)
    assert all(p.grad is None for p in model.parameters())  # attacks leave .grad alone


def test_fgsm_equals_sign_of_the_torch_input_gradient(problem):
    torch = pytest.importorskip("torch", reason="torch is the reference for the input gradient")
    model, X, y = problem
    tm = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for tp, (_, p) in zip(tm.parameters(), model.named_parameters()):
            tp.copy_(torch.from_numpy(p.data))
    xt = torch.from_numpy(X).requires_grad_(True)
    torch.nn.functional.cross_entropy(tm(xt), torch.from_numpy(y)).backward()
    ref = np.clip(X + 0.1 * np.sign(xt.grad.numpy()), 0, 1)
    np.testing.assert_allclose(fgsm(model, X, y, 0.1), ref, atol=1e-6)


def test_pgd_stays_in_the_ball_and_beats_fgsm(problem):
    model, X, y = problem
    Xa = pgd(model, X, y, 0.1, steps=10)
    assert np.abs(Xa - X).max() <= 0.1 + 1e-6 and Xa.min() >= 0 and Xa.max() <= 1
    assert _loss(model, Xa, y) >= _loss(model, fgsm(model, X, y, 0.1), y) - 1e-6


def test_accuracy_under_attack_falls_with_eps_and_adversarial_training_helps(problem):
    model, X, y = problem
    opt = minidl.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(minidl.tensor(X)), minidl.tensor(y)).backward()
        opt.step()
    normal = accuracy_under_attack(model, X, y, [0.0, 0.05, 0.1])
    assert normal[0.0] >= 0.9 and normal[0.1] < normal[0.0]
    robust = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2))
    adversarial_training(robust, X, y, eps=0.1, epochs=60, lr=0.05, batch_size=64, progress=False)
    hardened = accuracy_under_attack(robust, X, y, [0.1])
    assert hardened[0.1] > normal[0.1]
    assert np.mean(predict(robust, X).argmax(1) == y) >= 0.75

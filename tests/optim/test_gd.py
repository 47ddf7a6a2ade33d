import numpy as np
import torch

import minidl
from minidl.optim import GD


def test_gd_matches_torch_plain_sgd_for_50_steps(assert_matches_torch):
    assert_matches_torch(GD, torch.optim.SGD, lrs=(0.1, 0.03))


def test_gd_step_is_theta_minus_lr_grad():
    p = minidl.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    opt = GD([p], lr=0.25)
    (p * p).sum().backward()  # grad = 2p
    opt.step()
    np.testing.assert_array_equal(p.numpy(), np.array([1.0, -2.0, 3.0]) * (1 - 0.5))


def test_gd_full_batch_converges_on_least_squares():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 4))
    w_true = rng.normal(size=4)
    b = a @ w_true
    w = minidl.tensor(np.zeros(4), requires_grad=True)
    opt = GD([w], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        ((minidl.tensor(a) @ w - minidl.tensor(b)) ** 2).mean().backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), w_true, atol=1e-6)

import numpy as np
import pytest
import torch

import minidl
from minidl.optim import Adam

OPTIONS = [
    {},
    {"betas": (0.8, 0.99)},
    {"amsgrad": True},
    {"weight_decay": 0.1},
    {"eps": 1e-3},
    {"betas": (0.5, 0.9), "amsgrad": True, "weight_decay": 0.05, "eps": 1e-6},
    {"maximize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_adam_matches_torch_for_50_steps(assert_matches_torch, options):
    lrs = (0.01, 0.005) if not options.get("maximize") else (0.001, 0.0005)
    assert_matches_torch(Adam, torch.optim.Adam, lrs=lrs, **options)


def test_adam_first_step_moves_each_coordinate_by_lr():
    # m̂ = g, v̂ = g², so the first step is lr · g / (|g| + eps) ≈ lr · sign(g).
    p = minidl.tensor(np.array([5.0, -0.01]), requires_grad=True)
    opt = Adam([p], lr=0.1, eps=0.0)
    (p * p).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), [4.9, 0.09], rtol=1e-12)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, -0.1), (0.9,), "bad"])
def test_adam_rejects_invalid_betas(betas):
    with pytest.raises(ValueError, match="beta"):
        Adam([minidl.tensor(np.ones(2), requires_grad=True)], betas=betas)

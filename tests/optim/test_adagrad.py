import numpy as np
import pytest
import torch

import minidl
from minidl.optim import Adagrad

OPTIONS = [
    {},
    {"lr_decay": 0.05},
    {"weight_decay": 0.1},
    {"initial_accumulator_value": 0.3},
    {"eps": 1e-3},
    {"lr_decay": 0.01, "weight_decay": 0.02, "initial_accumulator_value": 0.1, "maximize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_adagrad_matches_torch_for_50_steps(assert_matches_torch, options):
    lrs = (0.05, 0.02) if not options.get("maximize") else (0.005, 0.002)
    assert_matches_torch(Adagrad, torch.optim.Adagrad, lrs=lrs, **options)


def test_adagrad_first_step_is_lr_times_sign():
    p = minidl.tensor(np.array([2.0, -3.0]), requires_grad=True)
    opt = Adagrad([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), [1.9, -2.9], rtol=1e-9)


def test_adagrad_rejects_negative_lr_decay():
    with pytest.raises(ValueError, match="lr_decay"):
        Adagrad([minidl.tensor(np.ones(2), requires_grad=True)], lr_decay=-1.0)

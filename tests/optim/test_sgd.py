import numpy as np
import pytest
import torch

import minidl
from minidl.optim import SGD

OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 0.05},
    {"momentum": 0.8, "weight_decay": 0.05, "nesterov": True},
    {"momentum": 0.5, "dampening": 0.1, "weight_decay": 0.01, "maximize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_sgd_matches_torch_for_50_steps(assert_matches_torch, options):
    lrs = (0.05, 0.02) if not options.get("maximize") else (0.002, 0.001)
    assert_matches_torch(SGD, torch.optim.SGD, lrs=lrs, **options)


def test_sgd_group_without_lr_takes_the_default(problem):
    params = problem.minidl_params()
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9]


def test_sgd_skips_parameters_without_grad():
    a = minidl.tensor(np.ones(3), requires_grad=True)
    b = minidl.tensor(np.ones(3), requires_grad=True)
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    (a * 2.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.8)
    np.testing.assert_array_equal(b.numpy(), 1.0)
    assert b not in opt.state


def test_nesterov_needs_momentum_and_no_dampening():
    p = minidl.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


def test_sgd_closure_returns_the_loss(problem):
    params = problem.minidl_params()
    opt = SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = problem.minidl_loss(params)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    second = opt.step(closure).item()
    assert second < first

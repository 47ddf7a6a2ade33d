import numpy as np
import pytest
import torch

import minidl
from minidl.optim import RMSprop

OPTIONS = [
    {},
    {"alpha": 0.9},
    {"centered": True},
    {"momentum": 0.9},
    {"momentum": 0.5, "centered": True},
    {"weight_decay": 0.05},
    {"eps": 1e-3, "alpha": 0.95, "momentum": 0.3, "centered": True, "weight_decay": 0.01},
    {"maximize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_rmsprop_matches_torch_for_50_steps(assert_matches_torch, options):
    lrs = (0.01, 0.003) if not options.get("maximize") else (0.001, 0.0005)
    assert_matches_torch(RMSprop, torch.optim.RMSprop, lrs=lrs, **options)


def test_rmsprop_keeps_only_the_state_its_options_need(problem):
    params, opt = problem.run_minidl(lambda ps: RMSprop(ps, lr=0.01), 2)
    assert set(opt.state[params[0]]) == {"step", "square_avg"}
    params, opt = problem.run_minidl(lambda ps: RMSprop(ps, lr=0.01, momentum=0.9, centered=True), 2)
    assert set(opt.state[params[0]]) == {"step", "square_avg", "momentum_buffer", "grad_avg"}


def test_rmsprop_rejects_negative_alpha():
    with pytest.raises(ValueError, match="alpha"):
        RMSprop([minidl.tensor(np.ones(2), requires_grad=True)], alpha=-0.5)

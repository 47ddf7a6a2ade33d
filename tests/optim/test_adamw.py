import numpy as np
import pytest
import torch

import minidl
from minidl.optim import Adam, AdamW

OPTIONS = [
    {},
    {"weight_decay": 0.0},
    {"weight_decay": 0.3},
    {"amsgrad": True},
    {"betas": (0.7, 0.95), "amsgrad": True, "weight_decay": 0.1, "eps": 1e-5},
    {"maximize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_adamw_matches_torch_for_50_steps(assert_matches_torch, options):
    lrs = (0.01, 0.005) if not options.get("maximize") else (0.001, 0.0005)
    assert_matches_torch(AdamW, torch.optim.AdamW, lrs=lrs, **options)


def test_adamw_default_weight_decay_is_1e_2():
    opt = AdamW([minidl.tensor(np.ones(2), requires_grad=True)])
    assert opt.param_groups[0]["weight_decay"] == 1e-2


def test_adamw_decay_is_decoupled_from_adam_l2(problem):
    # Same weight_decay, different meaning: AdamW shrinks θ directly, Adam adds λθ to g.
    a, _ = problem.run_minidl(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.5), 20)
    b, _ = problem.run_minidl(lambda ps: Adam(ps, lr=0.01, weight_decay=0.5), 20)
    assert not np.allclose(a[0].numpy(), b[0].numpy())


def test_adamw_with_zero_grad_only_decays():
    p = minidl.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    (p * 0.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), np.array([1.0, -2.0]) * 0.95, rtol=1e-12)


def test_adamw_rejects_negative_weight_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW([minidl.tensor(np.ones(2), requires_grad=True)], weight_decay=-0.1)

"""Every schedule's lr sequence equals torch.optim.lr_scheduler's, group by group."""
import math

import numpy as np
import pytest

import minidl
from minidl.optim import SGD, lr_scheduler as ours

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for schedule values")
theirs = torch.optim.lr_scheduler

LRS = (0.1, 0.03)


def _minidl_opt():
    a, b = (minidl.tensor(np.ones(2), requires_grad=True) for _ in range(2))
    return SGD([{"params": [a], "lr": LRS[0]}, {"params": [b], "lr": LRS[1]}], lr=1.0, momentum=0.9)


def _torch_opt():
    a, b = (torch.ones(2, requires_grad=True) for _ in range(2))
    return torch.optim.SGD([{"params": [a], "lr": LRS[0]}, {"params": [b], "lr": LRS[1]}], lr=1.0, momentum=0.9)


def _lr_sequence(opt, sched, steps, metrics=None):
    seq = [sched.get_last_lr()]
    for t in range(steps):
        opt.step()  # no gradients: a no-op that keeps torch's call-order check quiet
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
        seq.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == seq[-1]
    return np.array(seq, dtype=float)


def _check(make, steps=40, metrics=None):
    """``make(lr_scheduler_module, optimizer)`` builds the same schedule in either library."""
    o1, o2 = _minidl_opt(), _torch_opt()
    a = _lr_sequence(o1, make(ours, o1), steps, metrics)
    b = _lr_sequence(o2, make(theirs, o2), steps, metrics)
    assert len(np.unique(b[:, 0])) > 1, "the reference lr never changed: the test would prove nothing"
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 10, 10, 25], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=15, eta_min=0.001),
    "CosineAnnealingLR-past-T_max": lambda m, o: m.CosineAnnealingLR(o, T_max=8),
    "LinearLR-warmup": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=10),
    "LinearLR-decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=12),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 1.0 / (1.0 + 0.2 * e)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 0.9 ** e, lambda e: 1.0 + math.sin(e)]),
    "SequentialLR-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.2, total_iters=5), m.CosineAnnealingLR(o, T_max=30, eta_min=1e-3)],
        milestones=[5]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.9), m.StepLR(o, step_size=4, gamma=0.5), m.LambdaLR(o, lambda e: 0.5)],
        milestones=[8, 20]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    _check(SCHEDULES[name])


PLATEAU = {
    "min-rel": dict(mode="min", factor=0.5, patience=2),
    "min-abs-cooldown": dict(mode="min", factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    "max-rel-min_lr": dict(mode="max", factor=0.5, patience=1, min_lr=[0.02, 0.01]),
    "max-abs-eps": dict(mode="max", factor=0.9, patience=0, threshold=0.01, threshold_mode="abs", eps=1e-3),
}


@pytest.mark.parametrize("name", list(PLATEAU))
def test_reduce_lr_on_plateau_matches_torch_on_a_scripted_curve(name):
    rng = np.random.default_rng(3)
    t = np.arange(60)
    curve = 1.0 / (1 + 0.3 * t) + 0.02 * rng.normal(size=60)  # improves, then plateaus under noise
    if PLATEAU[name]["mode"] == "max":
        curve = 1.0 - curve
    _check(lambda m, o: m.ReduceLROnPlateau(o, **PLATEAU[name]), steps=60, metrics=[float(c) for c in curve])


def test_reduce_lr_on_plateau_accepts_a_tensor_metric():
    opt = _minidl_opt()
    sched = ours.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(minidl.tensor(1.0))
    sched.step(minidl.tensor(2.0))
    assert sched.get_last_lr() == [LRS[0] * 0.5, LRS[1] * 0.5]


def test_scheduler_state_dict_round_trip_continues_the_sequence():
    make = SCHEDULES["SequentialLR-warmup-cosine"]
    o1 = _minidl_opt()
    s1 = make(ours, o1)
    straight = _lr_sequence(o1, s1, 20)

    o2 = _minidl_opt()
    s2 = make(ours, o2)
    first = _lr_sequence(o2, s2, 8)
    opt_sd, sched_sd = o2.state_dict(), s2.state_dict()
    o3 = _minidl_opt()
    s3 = make(ours, o3)  # build both, then load both (PyTorch's order)
    o3.load_state_dict(opt_sd)
    s3.load_state_dict(sched_sd)
    rest = _lr_sequence(o3, s3, 12)
    np.testing.assert_array_equal(np.vstack([first, rest[1:]]), straight)


def test_schedulers_reject_bad_arguments():
    opt = _minidl_opt()
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        ours.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        ours.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="milestones must be increasing"):
        ours.MultiStepLR(opt, milestones=[5, 2])
    with pytest.raises(ValueError, match="start_factor"):
        ours.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="expected 1 milestones"):
        ours.SequentialLR(opt, [ours.StepLR(opt, 2), ours.StepLR(opt, 3)], milestones=[])
    with pytest.raises(TypeError, match="Optimizer"):
        ours.StepLR("not an optimizer", 3)
    with pytest.raises(KeyError, match="initial_lr"):
        ours.StepLR(_minidl_opt(), 3, last_epoch=4)

"""A training step makes no hidden host round trips, on every backend.

On a machine without a GPU the counter is told to count every conversion to a host value
(``include_host_arrays=True``), so any ``.item()``/``.numpy()``/``to_numpy`` inside the
forward pass, the loss, the backward pass or the optimizer step is caught here too.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend, nn, optim


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 4 * 4, 16), nn.LayerNorm(16), nn.GELU(),
        nn.Linear(16, 10),
    )


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda p: optim.Adam(p, lr=1e-3, amsgrad=True),
    lambda p: optim.AdamW(p, lr=1e-3),
    lambda p: optim.RMSprop(p, lr=1e-3, centered=True, momentum=0.5),
    lambda p: optim.Adagrad(p, lr=1e-2),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_training_step_makes_no_host_round_trips(device, make_opt):
    model = _model().to(device)
    opt = make_opt(model.parameters())
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), device=device)
    y = minidl.tensor(rng.integers(0, 10, 8), device=device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    step()  # first step creates optimizer state
    with backend.count_host_transfers(include_host_arrays=(device == "cpu")) as counter:
        loss = step()
    assert counter.count == 0, f"host round trips in a training step: {counter.events}"
    assert np.isfinite(loss.item())


def test_counter_sees_item_and_numpy_calls():
    x = minidl.tensor([1.0, 2.0])
    with backend.count_host_transfers(include_host_arrays=True) as counter:
        x.sum().item()
        x.numpy()
    assert counter.count == 2

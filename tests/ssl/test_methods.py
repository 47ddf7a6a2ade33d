"""The five methods: momentum networks, queue, stop-gradients, and short pretraining runs."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.data import load_digits
from minidl.ssl import byol, moco, simclr, simsiam, swav
from minidl.ssl.augment import TwoViews, digits_augmentation
from minidl.ssl.encoders import DigitEncoder
from minidl.ssl.losses import simsiam_loss
from minidl.ssl.moco import KeyQueue
from tests.test_fake_cupy import fake_cuda  # noqa: F401  (fixture: device="cuda" on a CuPy stand-in)


def _small_encoder():
    return DigitEncoder(width=4, feature_dim=16)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits()
    return X[:128]


def _views(x, seed=0):
    v1, v2 = TwoViews(digits_augmentation(seed=seed))(x)
    return minidl.tensor(v1), minidl.tensor(v2)


# ----------------------------------------------------------------------------- MoCo queue

def test_key_queue_keeps_fifo_order_and_size():
    q = KeyQueue(size=5, dim=2, seed=0)
    initial = q.ordered().copy()
    assert q.keys.shape == (5, 2)
    batches = [np.full((2, 2), float(i)) for i in range(1, 5)]  # keys 1,1,2,2,3,3,4,4
    q.push(batches[0])
    np.testing.assert_array_equal(q.ordered()[:3], initial[2:])   # the 2 oldest dropped
    np.testing.assert_array_equal(q.ordered()[3:], batches[0])
    for b in batches[1:]:
        q.push(b)
        assert len(q) == 5 and q.keys.shape == (5, 2)
    np.testing.assert_array_equal(q.ordered()[:, 0], [2, 3, 3, 4, 4])  # the five most recent, oldest first


def test_key_queue_push_of_more_than_its_size_keeps_the_newest():
    q = KeyQueue(size=3, dim=1, seed=0)
    q.push(np.arange(7.0)[:, None])
    np.testing.assert_array_equal(q.ordered()[:, 0], [4, 5, 6])
    with pytest.raises(ValueError, match=r"KeyQueue.push: keys must be \(n, 1\)"):
        q.push(np.ones((2, 3)))


# ----------------------------------------------------------------------------- momentum networks

def _check_momentum_network(model, online, target, momentum_of, x1, x2):
    target_before = [p.data.copy() for p in target.parameters()]
    loss = model(x1, x2)
    loss.backward()
    for p in target.parameters():
        assert not p.requires_grad and p.grad is None
    assert all(p.grad is not None for p in online.parameters())
    for p in online.parameters():  # an optimizer step, by hand
        p.data -= 0.1 * p.grad.data
    model.after_step(1, 10)
    m = momentum_of(model)
    for t, old, o in zip(target.parameters(), target_before, online.parameters()):
        np.testing.assert_allclose(t.data, m * old + (1 - m) * o.data, rtol=1e-5, atol=1e-7)


def test_moco_key_encoder_gets_no_gradient_and_moves_by_the_ema_rule(digits):
    model = moco.MoCo(_small_encoder(), projection_dim=8, hidden_dim=16, queue_size=32, momentum=0.9)
    x1, x2 = _views(digits[:16])
    _check_momentum_network(model, model.query_net, model.key_net, lambda m: 0.9, x1, x2)


def test_moco_pushes_one_key_per_image_after_each_step(digits):
    model = moco.MoCo(_small_encoder(), projection_dim=8, hidden_dim=16, queue_size=32)
    x1, x2 = _views(digits[:12])
    model(x1, x2).backward()
    expected = model.keys(minidl.concat([x2, x1])).numpy()[:12]  # the keys of view 2, as forward made them
    model.after_step(1, 10)
    np.testing.assert_allclose(model.queue.ordered()[-12:], expected, rtol=1e-5, atol=1e-6)


def test_byol_target_gets_no_gradient_and_moves_by_the_cosine_ema(digits):
    model = byol.BYOL(_small_encoder(), projection_dim=8, hidden_dim=16, base_momentum=0.9)
    x1, x2 = _views(digits[:16])
    _check_momentum_network(model, model.online, model.target,
                            lambda m: 1 - 0.1 * (np.cos(np.pi * 1 / 10) + 1) / 2, x1, x2)
    assert model.current_momentum == pytest.approx(1 - 0.1 * (np.cos(np.pi / 10) + 1) / 2)


def test_simsiam_stop_gradient_matches_a_detached_target(digits):
    """The gradient equals that of the loss with the projections z replaced by constants."""
    minidl.manual_seed(0)
    model = simsiam.SimSiam(_small_encoder(), projection_dim=8, hidden_dim=16, predictor_dim=4)
    x1, x2 = _views(digits[:16])
    model(x1, x2).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    both = minidl.concat([x1, x2])
    z = model.projector(model.encoder(both))
    p = model.predictor(z)
    z_const = minidl.tensor(np.concatenate([z.numpy()[16:], z.numpy()[:16]]))
    simsiam_loss(p, z_const).backward()
    for g, p_ in zip(got, model.parameters()):
        np.testing.assert_allclose(g, p_.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_swav_prototypes_stay_still_while_frozen(digits):
    model = swav.SwAV(_small_encoder(), projection_dim=8, hidden_dim=16, num_prototypes=5,
                      freeze_prototypes_steps=1)
    x1, x2 = _views(digits[:16])
    model(x1, x2).backward()
    assert model.prototypes.weight.grad is None
    model.after_step(1, 10)
    model.zero_grad()
    model(x1, x2).backward()
    assert model.prototypes.weight.grad is not None


# ----------------------------------------------------------------------------- short pretraining

METHODS = {
    "simclr": (simclr, {}),
    "moco": (moco, {"queue_size": 64, "momentum": 0.9}),
    "byol": (byol, {"base_momentum": 0.9}),
    "simsiam": (simsiam, {}),
    "swav": (swav, {"num_prototypes": 8}),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_short_pretrain_lowers_the_loss_and_returns_the_encoder(digits, name):
    module, options = METHODS[name]
    minidl.manual_seed(0)
    encoder = DigitEncoder(width=8, feature_dim=32)
    history: list = []
    views = TwoViews(digits_augmentation(strength=0.5, seed=0))
    out = module.pretrain(encoder, digits, epochs=8, batch_size=32, lr=5e-3, seed=0, progress=False,
                          history=history, projection_dim=16, hidden_dim=32, views=views, **options)
    assert out is encoder and not encoder.training
    assert len(history) == 8 and all(np.isfinite(history))
    # MoCo's queue starts as random unit vectors (easy negatives) and holds real keys from
    # the second epoch on, so its loss is compared from there.
    first = 1 if name == "moco" else 0
    assert min(history[-2:]) < history[first]


@pytest.mark.parametrize("name", list(METHODS))
def test_pretrain_rejects_bad_arguments(digits, name):
    module, _ = METHODS[name]
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        module.pretrain(_small_encoder(), digits, epochs=1, batch_size=1, progress=False)
    with pytest.raises(ValueError, match=r"unlabeled_data must be images \(N, C, H, W\)"):
        module.pretrain(_small_encoder(), digits.reshape(len(digits), -1), epochs=1, progress=False)


def test_method_needs_an_encoder_with_feature_dim():
    import minidl.nn as nn

    with pytest.raises(ValueError, match="SimCLR: the encoder must have an integer attribute feature_dim"):
        simclr.SimCLR(nn.Flatten())


def test_moco_queue_lives_on_the_model_device(digits, fake_cuda):
    """On a GPU the queue moves to the device once and pushes stay there (no host copies)."""
    from minidl import backend

    model = moco.MoCo(_small_encoder(), projection_dim=8, hidden_dim=16, queue_size=32).to(fake_cuda)
    x1, x2 = (v.to(fake_cuda) for v in _views(digits[:12]))
    model(x1, x2).backward()
    model.after_step(1, 10)
    assert backend.device_of(model.queue.keys).type == "cuda"
    with backend.count_host_transfers() as counter:
        model(x1, x2).backward()
        model.after_step(2, 10)
    assert counter.count == 0, counter.events

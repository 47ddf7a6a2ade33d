"""minidl.ssl.momentum and minidl.ssl.encoders."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.ssl.encoders import DigitEncoder, prediction_head, projection_head
from minidl.ssl.momentum import cosine_momentum, ema_update_, momentum_copy


def test_momentum_copy_is_a_frozen_deep_copy():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    target = momentum_copy(net)
    for p, t in zip(net.parameters(), target.parameters()):
        assert p is not t and p.data is not t.data
        np.testing.assert_array_equal(p.data, t.data)
        assert p.requires_grad and not t.requires_grad


def test_ema_update_follows_the_rule_exactly(rng):
    net = nn.Linear(3, 2)
    target = momentum_copy(net)
    for p in net.parameters():
        p.data[...] = rng.normal(size=p.shape)
    before = [t.data.copy() for t in target.parameters()]
    ema_update_(target, net, 0.9)
    for t, old, p in zip(target.parameters(), before, net.parameters()):
        np.testing.assert_allclose(t.data, 0.9 * old + 0.1 * p.data, rtol=1e-6)
    ema_update_(target, net, 0.0)
    for t, p in zip(target.parameters(), net.parameters()):
        np.testing.assert_array_equal(t.data, p.data)


def test_ema_update_rejects_bad_momentum_and_mismatched_networks():
    with pytest.raises(ValueError, match="ema_update_: momentum must be in"):
        ema_update_(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match="ema_update_: the target has 2 parameters but the online network has 1"):
        ema_update_(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.5)


def test_cosine_momentum_rises_from_base_to_one():
    assert cosine_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(50, 100, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(100, 100, 0.99) == pytest.approx(1.0)
    values = [cosine_momentum(k, 20, 0.9) for k in range(21)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    k, K = 7, 20
    assert values[k] == pytest.approx(1 - 0.1 * (math.cos(math.pi * k / K) + 1) / 2)


def test_digit_encoder_shapes_and_errors():
    enc = DigitEncoder(width=4, feature_dim=10)
    assert enc.feature_dim == 10
    assert enc(minidl.randn(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"DigitEncoder: expected images \(N, 1, 8, 8\), got shape \(3, 1, 6, 6\)"):
        enc(minidl.randn(3, 1, 6, 6))
    with pytest.raises(ValueError, match="DigitEncoder: image_size must be an even integer"):
        DigitEncoder(image_size=7)


def test_heads_map_to_the_stated_sizes():
    x = minidl.randn(5, 12)
    assert projection_head(12, 20, 6)(x).shape == (5, 6)
    assert len(projection_head(12, 20, 6, batch_norm=False)) == 3
    assert prediction_head(12, 3)(x).shape == (5, 12)
    with pytest.raises(ValueError, match="projection_head: hidden_dim must be a positive integer"):
        projection_head(12, 0, 6)

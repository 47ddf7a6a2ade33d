"""The generative losses and models on each device give the CPU's numbers (CUDA skips without CuPy)."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.generative.gan import Discriminator, Generator, gradient_penalty
from minidl.generative.vae import ConditionalVAE, elbo


def test_gradient_penalty_and_its_parameter_gradients_match_cpu(device, rng):
    real, fake, a = rng.random((3, 1, 4, 4)), rng.random((3, 1, 4, 4)), rng.random(3)
    values, grads = [], []
    for dev in ("cpu", device):
        minidl.manual_seed(1)
        critic = Discriminator((1, 4, 4), hidden=(5,)).to(dev, dtype="float64")
        gp = gradient_penalty(critic, minidl.tensor(real, device=dev), minidl.tensor(fake, device=dev), alpha=a)
        gp.backward()
        values.append(gp.item())
        grads.append(critic.net[0].weight.grad.numpy())
        assert str(minidl.backend.device_of(gp.data)) == str(minidl.Device(dev))
    assert values[1] == pytest.approx(values[0], rel=1e-10)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-8, atol=1e-12)


def test_elbo_and_generation_run_on_the_device(device, rng):
    x, out = rng.random((2, 1, 2, 2)), rng.normal(size=(2, 1, 2, 2))
    mu, logvar = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    on = lambda a: minidl.tensor(a, device=device)  # noqa: E731
    got = elbo(on(x), on(out), on(mu), on(logvar), reduction="none").numpy()
    want = elbo(*(minidl.tensor(a) for a in (x, out, mu, logvar)), reduction="none").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    cvae = ConditionalVAE(latent_dim=3, hidden=(8,)).to(device)
    images = cvae.generate([1, 2], device=device)
    assert images.shape == (2, 1, 8, 8) and str(minidl.backend.device_of(images.data)) == str(minidl.Device(device))
    G = Generator(latent_dim=3, hidden=(8,)).to(device)
    assert G.sample(2, device=device).shape == (2, 1, 8, 8)

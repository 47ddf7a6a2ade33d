"""minidl.generative.gan: GAN and WGAN losses against their formulas, the gradient penalty
against NumPy and PyTorch (values, first and second derivatives), models, short training."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.generative.gan import (
    Discriminator, Generator, critic_loss, discriminator_loss, generator_loss, gradient_penalty, train_gan,
    train_wgan_gp, wasserstein_generator_loss,
)


def _t(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _log_sigmoid(x):
    return -np.log1p(np.exp(-x))


# ------------------------------------------------------------------------- GAN losses

def test_discriminator_loss_matches_bce_formula(rng):
    r, f = rng.normal(size=7) * 3, rng.normal(size=5) * 3
    expected = -np.mean(_log_sigmoid(r)) - np.mean(np.log(1.0 - 1.0 / (1.0 + np.exp(-f))))
    got = discriminator_loss(_t(r, False), _t(f, False)).item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_generator_loss_is_non_saturating_formula(rng):
    f = rng.normal(size=6) * 3
    got = generator_loss(_t(f, False)).item()
    assert got == pytest.approx(-np.mean(_log_sigmoid(f)), rel=1e-12)
    # the gradient is -sigmoid(-f)/N: large while the discriminator rejects the fakes
    x = _t([-20.0, -20.0])
    generator_loss(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [-0.5, -0.5], rtol=1e-8)


def test_gan_losses_are_stable_for_huge_logits():
    big = _t([1e4, -1e4], False)
    assert discriminator_loss(big, -big).item() == pytest.approx(1e4, rel=1e-12)  # (0 + 1e4)/2 twice
    assert np.isfinite(generator_loss(big).item())
    assert generator_loss(_t([1e4], False)).item() == pytest.approx(0.0, abs=1e-12)


def test_gan_losses_gradcheck(rng):
    r, f = _t(rng.normal(size=4) * 2), _t(rng.normal(size=3) * 2)
    assert minidl.gradcheck(discriminator_loss, [r, f])
    assert minidl.gradcheck(generator_loss, [f])
    assert minidl.gradgradcheck(discriminator_loss, [r, f])


def test_wasserstein_losses_match_formula_and_gradcheck(rng):
    r, f = rng.normal(size=5), rng.normal(size=4)
    assert critic_loss(_t(r, False), _t(f, False)).item() == pytest.approx(f.mean() - r.mean(), rel=1e-12)
    assert wasserstein_generator_loss(_t(f, False)).item() == pytest.approx(-f.mean(), rel=1e-12)
    assert minidl.gradcheck(critic_loss, [_t(r), _t(f)])
    assert minidl.gradcheck(wasserstein_generator_loss, [_t(f)])


def test_losses_reject_bad_scores():
    with pytest.raises(ValueError, match="discriminator_loss: real_logits must be a non-empty 1-D"):
        discriminator_loss(_t(np.zeros((3, 1)), False), _t(np.zeros(3), False))
    with pytest.raises(TypeError, match="generator_loss: fake_logits must be a Tensor"):
        generator_loss(np.zeros(3))


# ------------------------------------------------------------------- gradient penalty

def _tanh_critic(W, b, v):
    """D(x) = v . tanh(W flatten(x) + b): smooth, so its derivatives of every order exist."""
    def critic(x):
        return F.tanh(x.reshape(x.shape[0], -1) @ W.T + b) @ v
    return critic


def _numpy_penalty(W, b, v, real, fake, a, eps=1e-12):
    n = real.shape[0]
    x_hat = (a.reshape(n, 1, 1) * real + (1 - a.reshape(n, 1, 1)) * fake).reshape(n, -1)
    h = np.tanh(x_hat @ W.T + b)
    g = ((1 - h ** 2) * v) @ W                   # d/dx [v . tanh(W x + b)] = W^T (v * (1 - h^2))
    norm = np.sqrt((g ** 2).sum(axis=1) + eps)
    return np.mean((norm - 1) ** 2)


def _penalty_problem(rng, n=3, d=(2, 2), hidden=3):
    W = rng.normal(size=(hidden, d[0] * d[1]))
    b = rng.normal(size=hidden) * 0.5
    v = rng.normal(size=hidden)
    real, fake = rng.random((n, *d)), rng.random((n, *d))
    a = rng.random(n)
    return W, b, v, real, fake, a


def test_gradient_penalty_matches_numpy(rng):
    W, b, v, real, fake, a = _penalty_problem(rng)
    got = gradient_penalty(_tanh_critic(_t(W, False), _t(b, False), _t(v, False)), _t(real, False),
                           _t(fake, False), alpha=a).item()
    assert got == pytest.approx(_numpy_penalty(W, b, v, real, fake, a), rel=1e-10)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    """D(x) = <w, x> has gradient w everywhere, so GP = (||w|| - 1)^2 whatever the mix."""
    w = np.array([3.0, 4.0, 0.0, 0.0])
    critic = lambda x: x.reshape(x.shape[0], -1) @ _t(w, False)  # noqa: E731
    real, fake = _t(np.random.default_rng(1).random((5, 1, 2, 2)), False), _t(np.zeros((5, 1, 2, 2)), False)
    assert gradient_penalty(critic, real, fake, rng=np.random.default_rng(0)).item() == pytest.approx(16.0)


def test_gradient_penalty_gradcheck_in_critic_parameters_and_images(rng):
    W, b, v, real, fake, a = _penalty_problem(rng)

    def penalty(W_, b_, v_, real_, fake_):
        return gradient_penalty(_tanh_critic(W_, b_, v_), real_, fake_, alpha=a)

    assert minidl.gradcheck(penalty, [_t(W), _t(b), _t(v), _t(real), _t(fake)])


def test_gradient_penalty_second_order_gradgradcheck(rng):
    W, b, v, real, fake, a = _penalty_problem(rng, n=2, hidden=2)

    def penalty(W_, v_):
        return gradient_penalty(_tanh_critic(W_, _t(b, False), v_), _t(real, False), _t(fake, False), alpha=a)

    assert minidl.gradgradcheck(penalty, [_t(W), _t(v)])


def test_gradient_penalty_matches_torch_through_the_discriminator_module(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for the module-level check")
    minidl.manual_seed(3)
    critic = Discriminator(image_shape=(1, 4, 4), hidden=(6, 5)).to(dtype="float64")
    real, fake, a = rng.random((4, 1, 4, 4)), rng.random((4, 1, 4, 4)), rng.random(4)
    gp = gradient_penalty(critic, _t(real, False), _t(fake, False), alpha=a)
    critic.zero_grad()
    gp.backward()

    layers = [m for m in critic.net if hasattr(m, "weight")]
    tw = [(torch.tensor(m.weight.numpy(), requires_grad=True), torch.tensor(m.bias.numpy(), requires_grad=True))
          for m in layers]

    def t_critic(x):
        h = x.reshape(x.shape[0], -1)
        for i, (w, b) in enumerate(tw):
            h = h @ w.T + b
            if i < len(tw) - 1:
                h = torch.nn.functional.leaky_relu(h, 0.2)
        return h.reshape(-1)

    ta = torch.tensor(a).reshape(4, 1, 1, 1)
    x_hat = (ta * torch.tensor(real) + (1 - ta) * torch.tensor(fake)).requires_grad_()
    g, = torch.autograd.grad(t_critic(x_hat).sum(), x_hat, create_graph=True)
    t_gp = (((g.reshape(4, -1) ** 2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
    t_gp.backward()
    assert gp.item() == pytest.approx(t_gp.item(), rel=1e-10)
    # the input gradient of a piecewise-linear net does not depend on its biases: a bias gets
    # no gradient (None) in minidl and zeros (or None) in torch
    as_array = lambda g, like: np.zeros(like.shape) if g is None else np.asarray(  # noqa: E731
        g.numpy() if not hasattr(g, "detach") else g.detach().numpy())
    for m, (w, b) in zip(layers, tw):
        np.testing.assert_allclose(m.weight.grad.numpy(), w.grad.numpy(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(as_array(m.bias.grad, b), as_array(b.grad, b), atol=1e-12)
    assert np.abs(layers[0].weight.grad.numpy()).max() > 1e-3


def test_gradient_penalty_rejects_bad_input():
    critic = Discriminator(image_shape=(1, 2, 2), hidden=(3,))
    with pytest.raises(ValueError, match=r"real and fake must be batches of the same shape.*\(2, 1, 2, 2\) and \(3, 1, 2, 2\)"):
        gradient_penalty(critic, minidl.zeros(2, 1, 2, 2), minidl.zeros(3, 1, 2, 2))
    with pytest.raises(ValueError, match=r"alpha must have shape \(2,\)"):
        gradient_penalty(critic, minidl.zeros(2, 1, 2, 2), minidl.zeros(2, 1, 2, 2), alpha=np.ones(3))
    with pytest.raises(ValueError, match="one score per sample"):
        gradient_penalty(lambda x: x.sum(), minidl.zeros(2, 1, 2, 2), minidl.zeros(2, 1, 2, 2))


# ---------------------------------------------------------------------------- models

def test_generator_and_discriminator_shapes():
    G, D = Generator(latent_dim=5, image_shape=(1, 8, 8)), Discriminator((1, 8, 8))
    x = G(minidl.randn(3, 5))
    assert x.shape == (3, 1, 8, 8) and 0 < x.numpy().min() and x.numpy().max() < 1
    assert D(x).shape == (3,)
    assert G.sample(4).shape == (4, 1, 8, 8)


def test_generator_rejects_a_latent_size_that_does_not_match():
    G = Generator(latent_dim=16)
    with pytest.raises(ValueError, match=r"Generator: expected latent codes of shape \(N, 16\), got \(4, 8\)"):
        G(minidl.randn(4, 8))
    with pytest.raises(ValueError, match=r"Discriminator: expected images \(N, 1, 8, 8\), got shape \(2, 1, 4, 4\)"):
        Discriminator()(minidl.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        Generator(latent_dim=0)


# ---------------------------------------------------------------------------- training

def _pattern_data(n=64):
    """Tiny data: noisy copies of one 4x4 pattern; a working generator learns to draw it."""
    pattern = np.zeros((1, 4, 4), np.float32)
    pattern[0, :, 1] = 1.0
    pattern[0, 3, :] = 1.0
    noise = np.random.default_rng(0).normal(0, 0.05, (n, 1, 4, 4)).astype(np.float32)
    return pattern, np.clip(pattern + noise, 0, 1)


def _distance_to(G, pattern):
    return float(np.mean((G.sample(64).numpy() - pattern) ** 2))


def test_gan_training_moves_samples_towards_the_data(tmp_path):
    pattern, X = _pattern_data()
    G, D = Generator(latent_dim=4, image_shape=(1, 4, 4), hidden=(32,)), Discriminator((1, 4, 4), hidden=(32,))
    before = _distance_to(G, pattern)
    hist = train_gan(G, D, X, epochs=40, batch_size=16, lr=2e-3, sample_every=20, sample_dir=tmp_path,
                     n_samples=8, progress=False)
    assert len(hist["d_loss"]) == len(hist["g_loss"]) == 40
    assert [p.rsplit("/", 1)[-1] for p in hist["grids"]] == ["gan_epoch020.png", "gan_epoch040.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in hist["grids"])
    assert _distance_to(G, pattern) < 0.1 * before


def test_wgan_gp_training_moves_samples_towards_the_data():
    pattern, X = _pattern_data()
    G, C = Generator(latent_dim=4, image_shape=(1, 4, 4), hidden=(32,)), Discriminator((1, 4, 4), hidden=(32,))
    before = _distance_to(G, pattern)
    hist = train_wgan_gp(G, C, X, epochs=80, batch_size=16, lr=2e-3, n_critic=2, progress=False)
    assert len(hist["wasserstein"]) == len(hist["penalty"]) == 80
    assert hist["wasserstein"][-1] < max(hist["wasserstein"])      # the distance estimate shrinks
    assert _distance_to(G, pattern) < 0.1 * before


def test_training_rejects_bad_images():
    G, D = Generator(latent_dim=4, image_shape=(1, 4, 4)), Discriminator((1, 4, 4))
    with pytest.raises(ValueError, match=r"train_gan: images must be a float array \(N, C, H, W\)"):
        train_gan(G, D, np.zeros((10, 16), np.float32), progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, N = 10\]"):
        train_wgan_gp(G, D, np.zeros((10, 1, 4, 4), np.float32), batch_size=32, progress=False)

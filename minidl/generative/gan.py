"""Generative adversarial networks: the non-saturating GAN (Goodfellow et al., 2014) and
WGAN-GP (Gulrajani et al., 2017), with a small MLP generator and discriminator for images.

A generator G maps latent codes z ~ N(0, I) to images; a discriminator D maps an image to
one logit (GAN) or one unbounded score (a WGAN critic).

GAN, with sigma the logistic sigmoid and log sigma(t) = -softplus(-t):

    L_D = -E_x[log sigma(D(x))] - E_z[log(1 - sigma(D(G(z))))]
        =  E_x[softplus(-D(x))] + E_z[softplus(D(G(z)))]
    L_G = -E_z[log sigma(D(G(z)))] = E_z[softplus(-D(G(z)))]      (non-saturating)

WGAN-GP, with x_hat = a x + (1 - a) G(z), a ~ U(0, 1) per sample:

    L_critic = E_z[D(G(z))] - E_x[D(x)] + lambda E_x_hat[(||grad_x_hat D(x_hat)||_2 - 1)^2]
    L_G      = -E_z[D(G(z))]

The penalty differentiates through a gradient, so it is built with
``minidl.grad(..., create_graph=True)`` and its own backward is a second-order pass.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import grad, no_grad
from ..creation import randn
from ..nn import LeakyReLU, Linear, Module, ReLU, Sequential, Sigmoid
from ..optim import Adam
from ..tensor import Tensor
from .plots import save_image_grid

__all__ = [
    "Generator", "Discriminator", "discriminator_loss", "generator_loss", "critic_loss",
    "wasserstein_generator_loss", "gradient_penalty", "train_gan", "train_wgan_gp",
]


def _check_shape(name: str, value: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in value)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name}: image_shape must be (C, H, W) with positive sizes, got {tuple(value)}")
    return shape


def _mlp(sizes: Sequence[int], hidden_activation: Callable[[], Module]) -> list[Module]:
    layers: list[Module] = []
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(hidden_activation())
    return layers


class Generator(Module):
    """MLP generator: z (N, latent_dim) -> images (N, C, H, W) with pixels in (0, 1).

        h = ReLU(Linear(...)) for each width in ``hidden``;  x = sigmoid(Linear(h)) reshaped.

    Args:
        latent_dim: size of the latent code z.
        image_shape: (C, H, W) of the images (digits: (1, 8, 8)).
        hidden: widths of the hidden layers.
    """

    def __init__(self, latent_dim: int = 16, image_shape: Sequence[int] = (1, 8, 8),
                 hidden: Sequence[int] = (128, 256)) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"Generator: latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self.image_shape = _check_shape("Generator", image_shape)
        out = int(np.prod(self.image_shape))
        self.net = Sequential(*_mlp([latent_dim, *hidden, out], ReLU), Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Generator: expected latent codes of shape (N, {self.latent_dim}), got "
                             f"{tuple(z.shape)}; this generator was built with latent_dim={self.latent_dim}")
        return self.net(z).reshape(z.shape[0], *self.image_shape)

    def sample(self, n: int, device: Any = "cpu") -> Tensor:
        """``n`` images from fresh codes z ~ N(0, I) (minidl's seeded generator), without a graph."""
        with no_grad():
            return self(randn(n, self.latent_dim, device=device))


class Discriminator(Module):
    """MLP discriminator (or WGAN critic): images (N, C, H, W) -> scores (N,).

        h = LeakyReLU_0.2(Linear(...)) for each width in ``hidden``;  D(x) = Linear(h).

    The score is a logit for the GAN losses and an unbounded critic value for WGAN-GP.
    It has no batch normalisation, so the gradient penalty sees each sample on its own.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), hidden: Sequence[int] = (256, 128),
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.image_shape = _check_shape("Discriminator", image_shape)
        inp = int(np.prod(self.image_shape))
        self.net = Sequential(*_mlp([inp, *hidden, 1], lambda: LeakyReLU(negative_slope)))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"Discriminator: expected images (N, {', '.join(map(str, self.image_shape))}), "
                             f"got shape {tuple(x.shape)}")
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape[0])


# ------------------------------------------------------------------------------- losses

def _scores(op: str, x: Any, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f" or x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"{op}: {what} must be a non-empty 1-D float Tensor (one score per sample), "
                         f"got shape {tuple(x.shape)} and dtype {x.dtype}")
    return x


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """GAN discriminator loss from logits, (N_real,) and (N_fake,) -> scalar:

        L_D = mean(softplus(-D(x))) + mean(softplus(D(G(z))))
            = BCE(sigmoid(D(x)), 1) + BCE(sigmoid(D(G(z))), 0)

    stable for any logit size.  dL_D/dD(x)_i = -sigmoid(-D(x)_i) / N_real,
    dL_D/dD(G(z))_j = sigmoid(D(G(z))_j) / N_fake.
    """
    real = _scores("discriminator_loss", real_logits, "real_logits")
    fake = _scores("discriminator_loss", fake_logits, "fake_logits")
    return F.softplus(-real, threshold=float("inf")).mean() + F.softplus(fake, threshold=float("inf")).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss from the discriminator's logits on fakes, (N,) -> scalar:

        L_G = -mean(log sigmoid(D(G(z)))) = mean(softplus(-D(G(z))))

    Its gradient -sigmoid(-D(G(z))) / N stays large while the discriminator rejects the
    fakes, unlike the saturating mean(log(1 - sigmoid(D(G(z))))).
    """
    fake = _scores("generator_loss", fake_logits, "fake_logits")
    return F.softplus(-fake, threshold=float("inf")).mean()


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss without the penalty, (N_real,), (N_fake,) -> scalar:

        L = mean(D(G(z))) - mean(D(x))

    i.e. the negative of the critic's estimate of the Wasserstein-1 distance (minimising L
    maximises the estimate). dL/dD(x)_i = -1/N_real, dL/dD(G(z))_j = 1/N_fake."""
    real = _scores("critic_loss", real_scores, "real_scores")
    fake = _scores("critic_loss", fake_scores, "fake_scores")
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss, (N,) -> scalar: -mean(D(G(z)))."""
    return -_scores("wasserstein_generator_loss", fake_scores, "fake_scores").mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     rng: np.random.Generator | None = None, alpha: Any = None,
                     eps: float = 1e-12) -> Tensor:
    """WGAN-GP gradient penalty (without its weight lambda), -> scalar:

        x_hat_i = a_i x_i + (1 - a_i) x~_i,   a_i ~ U(0, 1) one per sample
        g_i     = d(sum_k D(x_hat)_k) / d x_hat_i          (= grad of D(x_hat_i), samples independent)
        GP      = mean_i (sqrt(||g_i||^2 + eps) - 1)^2

    ``real`` and ``fake`` have the same shape (N, ...); ``critic`` maps (N, ...) to (N,)
    scores and must treat samples independently (no batch norm). ``rng``: NumPy Generator for
    a (default: minidl's seeded generator); ``alpha``: the mixing weights (N,) given
    explicitly instead. ``eps`` keeps the norm differentiable at g = 0.

    g is computed with ``create_graph=True``, so GP is differentiable with respect to the
    critic's parameters (and to real/fake when they require grad): GP.backward() is a
    second-order pass through the critic.
    """
    op = "gradient_penalty"
    for what, t in (("real", real), ("fake", fake)):
        if not isinstance(t, Tensor) or t.dtype.kind != "f":
            raise TypeError(f"{op}: {what} must be a float Tensor, got "
                            f"{type(t).__name__ if not isinstance(t, Tensor) else t.dtype}")
    if real.shape != fake.shape or real.ndim < 2 or real.shape[0] == 0:
        raise ValueError(f"{op}: real and fake must be batches of the same shape (N, ...), got "
                         f"{tuple(real.shape)} and {tuple(fake.shape)}")
    n = real.shape[0]
    xp = backend.get_array_module(real.data)
    mix_shape = (n,) + (1,) * (real.ndim - 1)
    if alpha is None:
        a = (rng.random(n) if rng is not None else backend.random_generator(xp).random(n))
    else:
        a = alpha.data if isinstance(alpha, Tensor) else alpha
        if tuple(np.shape(a)) != (n,):
            raise ValueError(f"{op}: alpha must have shape ({n},), one weight per sample, got {tuple(np.shape(a))}")
    a = backend.to_device(a, backend.device_of(real.data))
    a = Tensor(xp.asarray(a, dtype=real.dtype).reshape(mix_shape))
    x_hat = a * real + (1.0 - a) * fake
    if not x_hat.requires_grad:
        x_hat = x_hat.detach().requires_grad_()
    scores = critic(x_hat)
    if not isinstance(scores, Tensor) or scores.shape != (n,):
        raise ValueError(f"{op}: the critic must return one score per sample, shape ({n},), got "
                         f"{None if not isinstance(scores, Tensor) else tuple(scores.shape)}")
    g, = grad(scores.sum(), x_hat, create_graph=True)
    norm = ((g * g).reshape(n, -1).sum(axis=1) + eps).sqrt()
    return ((norm - 1.0) ** 2).mean()


# ----------------------------------------------------------------------------- training

def _check_images(op: str, images: Any, batch_size: int) -> np.ndarray:
    arr = backend.to_numpy(images.data) if isinstance(images, Tensor) else np.asarray(images)
    if arr.ndim != 4 or arr.dtype.kind != "f":
        raise ValueError(f"{op}: images must be a float array (N, C, H, W), got shape {arr.shape}, dtype {arr.dtype}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= arr.shape[0]:
        raise ValueError(f"{op}: batch_size must be an integer in [1, N = {arr.shape[0]}], got {batch_size!r}")
    return arr


def _full_batches(n: int, batch_size: int, rng: np.random.Generator):
    """Index arrays of a fresh permutation, full batches only (GAN steps see equal batches)."""
    order = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start:start + batch_size]


def _grid_saver(generator: Generator, sample_dir: str | os.PathLike | None, prefix: str, n_samples: int,
                device: Any, seed: int):
    """A function epoch -> path that saves G(z_fixed) as a grid (fixed codes show progress)."""
    if sample_dir is None:
        return None
    dtype = next(iter(generator.parameters())).dtype
    z = np.random.default_rng(seed + 12345).standard_normal((n_samples, generator.latent_dim))
    z = Tensor(backend.to_device(z.astype(dtype), device))

    def save(epoch: int, title: str) -> str:
        was_training = generator.training
        generator.eval()
        with no_grad():
            images = generator(z)
        generator.train(was_training)
        path = os.path.join(os.fspath(sample_dir), f"{prefix}_epoch{epoch:03d}.png")
        return save_image_grid(images, path, nrow=10, title=title)

    return save


def train_gan(generator: Generator, discriminator: Module, images: Any, epochs: int = 100,
              batch_size: int = 64, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
              seed: int = 0, device: Any = "cpu", sample_every: int = 0,
              sample_dir: str | os.PathLike | None = None, n_samples: int = 50, prefix: str = "gan",
              progress: bool = True) -> dict[str, list]:
    """Train a GAN with the non-saturating losses, alternating one D and one G Adam step.

    Per batch of real images x (N, C, H, W) and codes z ~ N(0, I) (N, latent_dim):
    D step on ``discriminator_loss(D(x), D(G(z).detach()))``, then G step on
    ``generator_loss(D(G(z')))`` with fresh z' (D's parameters frozen for it).
    Every ``sample_every`` epochs (and after the last) a grid of G(z_fixed) is saved to
    ``sample_dir/{prefix}_epochNNN.png``.

    Returns ``{"d_loss": [...], "g_loss": [...], "d_real": [...], "d_fake": [...], "grids": [...]}``:
    per-epoch means of the losses and of sigmoid(D) on real and fake images, and the grids saved.
    """
    from tqdm.auto import tqdm

    X = _check_images("train_gan", images, batch_size)
    rng = np.random.default_rng(seed)
    opt_d = Adam(discriminator.parameters(), lr=lr, betas=betas)
    opt_g = Adam(generator.parameters(), lr=lr, betas=betas)
    save = _grid_saver(generator, sample_dir, prefix, n_samples, device, seed)
    history: dict[str, list] = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "grids": []}
    generator.train()
    discriminator.train()
    bar = tqdm(range(1, epochs + 1), desc="GAN", unit="epoch", disable=not progress)
    for epoch in bar:
        sums = np.zeros(4)
        steps = 0
        for idx in _full_batches(len(X), batch_size, rng):
            real = Tensor(backend.to_device(X[idx], device))
            fake = generator(randn(len(idx), generator.latent_dim, device=device)).detach()
            real_logits, fake_logits = discriminator(real), discriminator(fake)
            d_loss = discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()

            discriminator.requires_grad_(False)
            g_loss = generator_loss(discriminator(generator(randn(len(idx), generator.latent_dim, device=device))))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            discriminator.requires_grad_(True)

            sums += [d_loss.item(), g_loss.item(), float(F.sigmoid(real_logits.detach()).mean().item()),
                     float(F.sigmoid(fake_logits.detach()).mean().item())]
            steps += 1
        for key, value in zip(("d_loss", "g_loss", "d_real", "d_fake"), sums / steps):
            history[key].append(float(value))
        bar.set_postfix(d_loss=f"{history['d_loss'][-1]:.3f}", g_loss=f"{history['g_loss'][-1]:.3f}")
        if save is not None and (epoch == epochs or sample_every and epoch % sample_every == 0):
            history["grids"].append(save(epoch, f"GAN, epoch {epoch}"))
    return history


def train_wgan_gp(generator: Generator, critic: Module, images: Any, epochs: int = 100,
                  batch_size: int = 64, lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.9),
                  n_critic: int = 5, gp_weight: float = 10.0, seed: int = 0, device: Any = "cpu",
                  sample_every: int = 0, sample_dir: str | os.PathLike | None = None, n_samples: int = 50,
                  prefix: str = "wgan_gp", progress: bool = True) -> dict[str, list]:
    """Train a WGAN-GP: ``n_critic`` critic steps per generator step (Adam, Gulrajani et al.'s
    lr 1e-4, betas (0.5, 0.9), lambda = ``gp_weight`` = 10).

    Critic step on a real batch x and fresh fakes G(z).detach():
        L = critic_loss(D(x), D(G(z))) + lambda gradient_penalty(D, x, G(z))
    generator step (after every ``n_critic`` critic steps) on wasserstein_generator_loss(D(G(z))).
    An epoch is one pass of the critic over the images. Grids as in ``train_gan``.

    Returns ``{"critic_loss": [...], "wasserstein": [...], "penalty": [...], "g_loss": [...],
    "grids": [...]}`` (per-epoch means; ``wasserstein`` = mean D(x) - mean D(G(z)), the critic's
    distance estimate).
    """
    from tqdm.auto import tqdm

    X = _check_images("train_wgan_gp", images, batch_size)
    if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"train_wgan_gp: n_critic must be a positive integer, got {n_critic!r}")
    rng = np.random.default_rng(seed)
    opt_c = Adam(critic.parameters(), lr=lr, betas=betas)
    opt_g = Adam(generator.parameters(), lr=lr, betas=betas)
    save = _grid_saver(generator, sample_dir, prefix, n_samples, device, seed)
    history: dict[str, list] = {"critic_loss": [], "wasserstein": [], "penalty": [], "g_loss": [], "grids": []}
    generator.train()
    critic.train()
    step = 0
    bar = tqdm(range(1, epochs + 1), desc="WGAN-GP", unit="epoch", disable=not progress)
    for epoch in bar:
        c_sums = np.zeros(3)
        g_losses = []
        c_steps = 0
        for idx in _full_batches(len(X), batch_size, rng):
            real = Tensor(backend.to_device(X[idx], device))
            fake = generator(randn(len(idx), generator.latent_dim, device=device)).detach()
            w_loss = critic_loss(critic(real), critic(fake))
            penalty = gradient_penalty(critic, real, fake, rng=rng)
            loss = w_loss + gp_weight * penalty
            opt_c.zero_grad()
            loss.backward()
            opt_c.step()
            c_sums += [loss.item(), -w_loss.item(), penalty.item()]
            c_steps += 1
            step += 1
            if step % n_critic == 0:
                critic.requires_grad_(False)
                g_loss = wasserstein_generator_loss(critic(generator(randn(len(idx), generator.latent_dim,
                                                                           device=device))))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
                critic.requires_grad_(True)
                g_losses.append(g_loss.item())
        for key, value in zip(("critic_loss", "wasserstein", "penalty"), c_sums / c_steps):
            history[key].append(float(value))
        history["g_loss"].append(float(np.mean(g_losses)) if g_losses else float("nan"))
        bar.set_postfix(W=f"{history['wasserstein'][-1]:.3f}", gp=f"{history['penalty'][-1]:.3f}")
        if save is not None and (epoch == epochs or sample_every and epoch % sample_every == 0):
            history["grids"].append(save(epoch, f"WGAN-GP, epoch {epoch}"))
    return history

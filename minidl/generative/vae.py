"""Variational autoencoders (Kingma and Welling, 2014) and the class-conditional VAE
(Sohn et al., 2015), with MLP encoder and decoder for small images.

The encoder gives a diagonal Gaussian q(z | x) = N(mu(x), diag(exp(logvar(x)))), the prior is
p(z) = N(0, I) and the decoder a likelihood p(x | z). Per image, the evidence lower bound is

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))   <=  log p(x)
    KL      = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))          (closed form)

and the expectation is estimated with one reparameterised sample
z = mu + exp(logvar / 2) * eps, eps ~ N(0, I), through which gradients reach mu and logvar.

Likelihoods (D pixels, decoder output o):
    bernoulli: log p(x | z) = sum_d [x_d log sigmoid(o_d) + (1 - x_d) log(1 - sigmoid(o_d))]
                            = -sum_d BCE_with_logits(o_d, x_d)     (o: logits; x in [0, 1])
    gaussian:  log p(x | z) = -sum_d [(x_d - o_d)^2 / (2 s^2) + log s + log(2 pi) / 2]   (o: means)

The conditional VAE feeds a one-hot class y to both encoder q(z | x, y) and decoder
p(x | z, y); sampling z ~ N(0, I) with a chosen y generates that class on request.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import no_grad
from ..creation import randn
from ..functional.shape import concat
from ..nn import Linear, Module, ReLU, Sequential
from ..optim import Adam
from ..tensor import Tensor

__all__ = [
    "gaussian_kl", "reparameterize", "log_likelihood", "elbo", "vae_loss",
    "VAE", "ConditionalVAE", "train_vae", "evaluate_elbo",
]

_LIKELIHOODS = ("bernoulli", "gaussian")


# ------------------------------------------------------------------------------- the math

def _pair(op: str, mu: Any, logvar: Any) -> tuple[Tensor, Tensor]:
    for what, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, Tensor) or t.dtype.kind != "f":
            raise TypeError(f"{op}: {what} must be a float Tensor, got "
                            f"{t.dtype if isinstance(t, Tensor) else type(t).__name__}")
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"{op}: mu and logvar must have the same shape (N, latent_dim), got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")
    return mu, logvar


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, (N, J), (N, J) -> (N,):

        KL = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))
        dKL/dmu = mu,   dKL/dlogvar = (exp(logvar) - 1) / 2
    """
    mu, logvar = _pair("gaussian_kl", mu, logvar)
    return -0.5 * (1.0 + logvar - mu * mu - logvar.exp()).sum(axis=1)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) (minidl's seeded generator unless
    given), (N, J) -> (N, J); differentiable in mu and logvar:
    dz/dmu = 1,  dz/dlogvar = exp(logvar / 2) eps / 2."""
    mu, logvar = _pair("reparameterize", mu, logvar)
    if eps is None:
        eps = randn(*mu.shape, dtype=mu.dtype, device=backend.device_of(mu.data))
    elif not isinstance(eps, Tensor) or eps.shape != mu.shape:
        raise ValueError(f"reparameterize: eps must be a Tensor of shape {tuple(mu.shape)}, got "
                         f"{tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__}")
    return mu + (0.5 * logvar).exp() * eps


def log_likelihood(x: Tensor, output: Tensor, likelihood: str = "bernoulli", sigma: float = 1.0) -> Tensor:
    """log p(x | z) per sample, summed over all non-batch axes, (N, ...), (N, ...) -> (N,).

    ``"bernoulli"``: ``output`` are logits, -sum BCE_with_logits(output, x) (x in [0, 1]);
    ``"gaussian"``: ``output`` are means, -sum [(x - output)^2 / (2 sigma^2) + log sigma + log(2 pi)/2].
    """
    op = "log_likelihood"
    if likelihood not in _LIKELIHOODS:
        raise ValueError(f"{op}: likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
    if not isinstance(x, Tensor) or not isinstance(output, Tensor):
        raise TypeError(f"{op}: x and output must be Tensors, got {type(x).__name__} and {type(output).__name__}")
    if x.shape != output.shape or x.ndim < 2:
        raise ValueError(f"{op}: x and the decoder output must have the same shape (N, ...), got "
                         f"{tuple(x.shape)} and {tuple(output.shape)}")
    n = x.shape[0]
    if likelihood == "bernoulli":
        per_pixel = -F.binary_cross_entropy_with_logits(output, x, reduction="none")
    else:
        if not sigma > 0:
            raise ValueError(f"{op}: sigma must be positive, got {sigma}")
        diff = x - output
        per_pixel = -(diff * diff) * (0.5 / sigma ** 2) - (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    return per_pixel.reshape(n, -1).sum(axis=1)


def _reduce(op: str, values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def elbo(x: Tensor, output: Tensor, mu: Tensor, logvar: Tensor, likelihood: str = "bernoulli",
         sigma: float = 1.0, reduction: str = "mean") -> Tensor:
    """The evidence lower bound in nats: ELBO_i = log p(x_i | z_i) - KL(q(z | x_i) || N(0, I)).

    x, output: (N, ...) images and decoder output for z_i (logits or means, see
    ``log_likelihood``); mu, logvar: (N, J). ``reduction``: ``"mean"`` over the batch
    (scalar), ``"sum"`` or ``"none"`` ((N,)).
    """
    return _reduce("elbo", log_likelihood(x, output, likelihood, sigma) - gaussian_kl(mu, logvar), reduction)


def vae_loss(x: Tensor, output: Tensor, mu: Tensor, logvar: Tensor, likelihood: str = "bernoulli",
             sigma: float = 1.0, beta: float = 1.0, reduction: str = "mean") -> Tensor:
    """The loss to minimise: -log p(x | z) + beta KL per sample (beta = 1: exactly -ELBO;
    beta != 1: the beta-VAE objective). Same shapes and reductions as ``elbo``."""
    per_sample = -log_likelihood(x, output, likelihood, sigma) + beta * gaussian_kl(mu, logvar)
    return _reduce("vae_loss", per_sample, reduction)


# ------------------------------------------------------------------------------- models

def _mlp(sizes: Sequence[int]) -> Sequential:
    layers: list[Module] = []
    for i in range(len(sizes) - 1):
        layers.append(Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class VAE(Module):
    """Variational autoencoder with MLP encoder and decoder for images (N, C, H, W).

        encoder: flatten(x) -> ReLU MLP (``hidden``) -> Linear -> [mu | logvar]   (N, 2 J)
        decoder: z (N, J) -> ReLU MLP (reversed ``hidden``) -> Linear -> output (N, C, H, W)

    The output is logits (``likelihood="bernoulli"``, pixels in [0, 1]) or means
    (``"gaussian"``). ``forward(x)`` returns ``(output, mu, logvar)`` with z sampled by
    ``reparameterize`` in training mode and z = mu in eval mode. ``sigma``: the Gaussian
    likelihood's pixel noise s. ``condition_size``: width of a conditioning vector
    concatenated to the encoder's and the decoder's inputs (``ConditionalVAE`` sets it).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8,
                 hidden: Sequence[int] = (256, 128), likelihood: str = "bernoulli", sigma: float = 0.1,
                 *, condition_size: int = 0) -> None:
        super().__init__()
        self.image_shape = tuple(_check_int(f"{type(self).__name__}: image_shape entries", s) for s in image_shape)
        self.latent_dim = _check_int(f"{type(self).__name__}: latent_dim", latent_dim)
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"{type(self).__name__}: likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        self.sigma = float(sigma)
        self.num_pixels = int(np.prod(self.image_shape))
        extra = _check_int(f"{type(self).__name__}: condition_size", condition_size, 0)
        self.encoder = _mlp([self.num_pixels + extra, *hidden, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim + extra, *reversed(tuple(hidden)), self.num_pixels])

    def _check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != self.image_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: expected images (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {got}")

    def _check_latent(self, z: Tensor) -> None:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"{type(self).__name__}.decode: latent codes must have shape (N, {self.latent_dim}) "
                             f"(the decoder was built with latent_dim={self.latent_dim}), got {got}")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, C, H, W) -> (mu, logvar), each (N, latent_dim)."""
        self._check_images(x)
        h = self.encoder(x.reshape(x.shape[0], -1))
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z: Tensor) -> Tensor:
        """z (N, latent_dim) -> decoder output (N, C, H, W): logits or Gaussian means."""
        self._check_latent(z)
        return self.decoder(z).reshape(z.shape[0], *self.image_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def loss(self, x: Tensor, *condition: Any, beta: float = 1.0) -> Tensor:
        """Mean over the batch of -log p(x | z) + beta KL, with one sampled z per image."""
        mu, logvar = self.encode(x, *condition)
        out = self.decode(reparameterize(mu, logvar), *condition)
        return vae_loss(x, out, mu, logvar, self.likelihood, self.sigma, beta)

    def elbo(self, x: Tensor, *condition: Any) -> Tensor:
        """Per-image ELBO (N,) in nats, one sampled z per image."""
        mu, logvar = self.encode(x, *condition)
        out = self.decode(reparameterize(mu, logvar), *condition)
        return elbo(x, out, mu, logvar, self.likelihood, self.sigma, reduction="none")

    def mean_image(self, output: Tensor) -> Tensor:
        """The decoder's expected image: sigmoid(logits) (Bernoulli) or the means (Gaussian)."""
        return F.sigmoid(output) if self.likelihood == "bernoulli" else output

    def sample(self, n: int, device: Any = "cpu") -> Tensor:
        """``n`` images E[x | z], z ~ N(0, I) from minidl's seeded generator, (n, C, H, W); no graph."""
        n = _check_int("VAE.sample: n", n)
        with no_grad():
            return self.mean_image(self.decode(randn(n, self.latent_dim, device=device)))

    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x | z = mu(x)] for images x (N, C, H, W); no graph."""
        with no_grad():
            mu, _ = self.encode(x)
            return self.mean_image(self.decode(mu))


class ConditionalVAE(VAE):
    """Class-conditional VAE: encoder q(z | x, y) and decoder p(x | z, y), y one-hot of
    ``num_classes`` concatenated to the flattened image and to z.

    ``forward(x, labels)`` -> (output, mu, logvar); ``generate(labels)`` draws z ~ N(0, I)
    and decodes it with the requested classes: ``generate([3] * 8)`` gives eight 3s.
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8,
                 hidden: Sequence[int] = (256, 128), likelihood: str = "bernoulli", sigma: float = 0.1) -> None:
        num_classes = _check_int("ConditionalVAE: num_classes", num_classes, 2)
        super().__init__(image_shape, latent_dim, hidden, likelihood, sigma, condition_size=num_classes)
        self.num_classes = num_classes

    def one_hot(self, labels: Any, n: int, ref: Tensor) -> Tensor:
        """Labels (n,) in [0, num_classes) -> one-hot (n, num_classes) in ``ref``'s dtype and device."""
        y = backend.to_numpy(labels.data) if isinstance(labels, Tensor) else np.asarray(labels)
        if y.ndim == 0:
            y = np.full(n, int(y))
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(f"ConditionalVAE: labels must be {n} integers (one per sample), got shape {y.shape} "
                             f"and dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"ConditionalVAE: labels must lie in [0, {self.num_classes}), got values "
                             f"from {y.min()} to {y.max()}")
        xp = backend.get_array_module(ref.data)
        onehot = np.eye(self.num_classes, dtype=ref.dtype)[y]
        return Tensor(xp.asarray(backend.to_device(onehot, backend.device_of(ref.data))))

    def encode(self, x: Tensor, labels: Any) -> tuple[Tensor, Tensor]:
        """(x (N, C, H, W), labels (N,)) -> (mu, logvar), each (N, latent_dim)."""
        self._check_images(x)
        flat = x.reshape(x.shape[0], -1)
        h = self.encoder(concat([flat, self.one_hot(labels, x.shape[0], x)], axis=1))
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z: Tensor, labels: Any) -> Tensor:
        """(z (N, latent_dim), labels (N,)) -> decoder output (N, C, H, W)."""
        self._check_latent(z)
        h = self.decoder(concat([z, self.one_hot(labels, z.shape[0], z)], axis=1))
        return h.reshape(z.shape[0], *self.image_shape)

    def forward(self, x: Tensor, labels: Any) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x, labels)
        z = reparameterize(mu, logvar) if self.training else mu
        return self.decode(z, labels), mu, logvar

    def generate(self, labels: Any, device: Any = "cpu") -> Tensor:
        """One image E[x | z, y] per requested class in ``labels`` (a sequence of ints, or a
        Tensor), z ~ N(0, I); returns (len(labels), C, H, W) without a graph."""
        y = np.asarray(backend.to_numpy(labels.data) if isinstance(labels, Tensor) else labels)
        y = np.atleast_1d(y)
        with no_grad():
            z = randn(len(y), self.latent_dim, device=device)
            return self.mean_image(self.decode(z, y))

    def sample(self, n: int, device: Any = "cpu") -> Tensor:
        """``n`` images of classes cycling 0, 1, ..., num_classes - 1 (see ``generate``)."""
        n = _check_int("ConditionalVAE.sample: n", n)
        return self.generate(np.arange(n) % self.num_classes, device)

    def reconstruct(self, x: Tensor, labels: Any) -> Tensor:
        """E[x | z = mu(x, y), y]; no graph."""
        with no_grad():
            mu, _ = self.encode(x, labels)
            return self.mean_image(self.decode(mu, labels))


# ----------------------------------------------------------------------------- training

def evaluate_elbo(model: VAE, images: Any, labels: Any = None, batch_size: int = 512,
                  device: Any = "cpu") -> float:
    """Mean per-image ELBO (nats) of ``model`` on ``images`` (N, C, H, W) (and ``labels`` for a
    conditional model), one reparameterised sample per image, without a graph."""
    X = np.asarray(images)
    was_training = model.training
    model.eval()
    total = 0.0
    with no_grad():
        for start in range(0, len(X), batch_size):
            x = Tensor(backend.to_device(X[start:start + batch_size], device))
            cond = () if labels is None else (np.asarray(labels)[start:start + batch_size],)
            total += float(model.elbo(x, *cond).sum().item())
    model.train(was_training)
    return total / len(X)


def train_vae(model: VAE, images: Any, labels: Any = None, epochs: int = 50, batch_size: int = 64,
              lr: float = 1e-3, beta: float = 1.0, val_images: Any = None, val_labels: Any = None,
              seed: int = 0, device: Any = "cpu", progress: bool = True) -> dict[str, list[float]]:
    """Fit ``model`` by Adam on mean -ELBO (or the beta-VAE loss) over shuffled minibatches.

    ``labels`` (N,) are required for a ``ConditionalVAE`` and ignored otherwise (likewise
    ``val_labels``). Returns ``{"train_elbo": [...], "val_elbo": [...]}`` (per epoch, nats
    per image; the training value is the running mean over the epoch's batches, the held-out
    value a fresh evaluation after the epoch; ``val_elbo`` only with ``val_images``).
    """
    from tqdm.auto import tqdm

    conditional = isinstance(model, ConditionalVAE)
    X = np.asarray(images)
    if X.ndim != 4 or X.dtype.kind != "f":
        raise ValueError(f"train_vae: images must be a float array (N, C, H, W), got shape {X.shape}, dtype {X.dtype}")
    if conditional and (labels is None or (val_images is not None and val_labels is None)):
        raise ValueError("train_vae: a ConditionalVAE needs labels (and val_labels with val_images)")
    Y = np.asarray(labels) if conditional else None
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"train_elbo": []}
    if val_images is not None:
        history["val_elbo"] = []
    bar = tqdm(range(1, epochs + 1), desc=type(model).__name__, unit="epoch", disable=not progress)
    for _ in bar:
        model.train()
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            x = Tensor(backend.to_device(X[idx], device))
            cond = (Y[idx],) if conditional else ()
            mu, logvar = model.encode(x, *cond)
            out = model.decode(reparameterize(mu, logvar), *cond)
            per_image = elbo(x, out, mu, logvar, model.likelihood, model.sigma, reduction="none")
            loss = -per_image.mean() if beta == 1.0 else vae_loss(x, out, mu, logvar, model.likelihood,
                                                                   model.sigma, beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(per_image.sum().item())
        history["train_elbo"].append(total / len(X))
        if val_images is not None:
            history["val_elbo"].append(evaluate_elbo(model, val_images, val_labels if conditional else None,
                                                     device=device))
            bar.set_postfix(val_elbo=f"{history['val_elbo'][-1]:.2f}")
        else:
            bar.set_postfix(train_elbo=f"{history['train_elbo'][-1]:.2f}")
    return history

"""minidl.generative.vae: KL, likelihoods and ELBO against their formulas (NumPy, SciPy,
torch.distributions), gradients, the models' shapes and errors, and short training runs."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.data import load_digits
from minidl.generative.vae import (
    VAE, ConditionalVAE, elbo, evaluate_elbo, gaussian_kl, log_likelihood, reparameterize, train_vae, vae_loss,
)


def _t(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _numpy_kl(mu, logvar):
    return -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)


def _numpy_bernoulli(x, logits):
    p = 1 / (1 + np.exp(-logits))
    return np.sum((x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(len(x), -1), axis=1)


# ------------------------------------------------------------------------------ the math

def test_gaussian_kl_matches_closed_form_and_torch(rng):
    mu, logvar = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got = gaussian_kl(_t(mu, False), _t(logvar, False)).numpy()
    np.testing.assert_allclose(got, _numpy_kl(mu, logvar), rtol=1e-12)
    torch = pytest.importorskip("torch", reason="torch.distributions is the independent KL reference")
    q = torch.distributions.Normal(torch.tensor(mu), torch.tensor(np.exp(0.5 * logvar)))
    p = torch.distributions.Normal(torch.zeros(4, 3, dtype=torch.float64), torch.ones(4, 3, dtype=torch.float64))
    np.testing.assert_allclose(got, torch.distributions.kl_divergence(q, p).sum(-1).numpy(), rtol=1e-10)


def test_gaussian_kl_is_zero_only_at_the_prior_and_gradchecks(rng):
    assert np.all(gaussian_kl(_t(np.zeros((2, 3)), False), _t(np.zeros((2, 3)), False)).numpy() == 0)
    mu, logvar = _t(rng.normal(size=(3, 2))), _t(rng.normal(size=(3, 2)))
    assert minidl.gradcheck(gaussian_kl, [mu, logvar])
    assert minidl.gradgradcheck(gaussian_kl, [mu, logvar])


def test_reparameterize_formula_gradient_and_moments(rng):
    mu, logvar, eps = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    z = reparameterize(_t(mu, False), _t(logvar, False), _t(eps, False)).numpy()
    np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * eps, rtol=1e-12)
    assert minidl.gradcheck(lambda m, lv: reparameterize(m, lv, _t(eps, False)), [_t(mu), _t(logvar)])
    draws = reparameterize(_t(np.full((20000, 1), 2.0), False), _t(np.full((20000, 1), np.log(9.0)), False)).numpy()
    assert draws.mean() == pytest.approx(2.0, abs=0.06) and draws.std() == pytest.approx(3.0, rel=0.03)


def test_bernoulli_log_likelihood_matches_numpy(rng):
    x, logits = rng.random((3, 1, 2, 2)), rng.normal(size=(3, 1, 2, 2)) * 2
    got = log_likelihood(_t(x, False), _t(logits, False), "bernoulli").numpy()
    np.testing.assert_allclose(got, _numpy_bernoulli(x, logits), rtol=1e-12)


def test_gaussian_log_likelihood_matches_scipy(rng):
    stats = pytest.importorskip("scipy.stats", reason="scipy's normal log-density is the reference")
    x, means = rng.random((3, 5)), rng.random((3, 5))
    got = log_likelihood(_t(x, False), _t(means, False), "gaussian", sigma=0.3).numpy()
    np.testing.assert_allclose(got, stats.norm.logpdf(x, loc=means, scale=0.3).sum(axis=1), rtol=1e-12)


def test_elbo_and_vae_loss_match_numpy_and_gradcheck(rng):
    x, out = rng.random((3, 1, 2, 2)), rng.normal(size=(3, 1, 2, 2))
    mu, logvar = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) * 0.5
    per_image = _numpy_bernoulli(x, out) - _numpy_kl(mu, logvar)
    args = [_t(x, False), _t(out, False), _t(mu, False), _t(logvar, False)]
    np.testing.assert_allclose(elbo(*args, reduction="none").numpy(), per_image, rtol=1e-12)
    assert elbo(*args).item() == pytest.approx(per_image.mean(), rel=1e-12)
    assert elbo(*args, reduction="sum").item() == pytest.approx(per_image.sum(), rel=1e-12)
    assert vae_loss(*args).item() == pytest.approx(-per_image.mean(), rel=1e-12)
    beta_loss = -_numpy_bernoulli(x, out) + 4.0 * _numpy_kl(mu, logvar)
    assert vae_loss(*args, beta=4.0).item() == pytest.approx(beta_loss.mean(), rel=1e-12)
    for likelihood in ("bernoulli", "gaussian"):
        fn = lambda o, m, lv: elbo(_t(x, False), o, m, lv, likelihood, sigma=0.5)  # noqa: E731
        assert minidl.gradcheck(fn, [_t(out), _t(mu), _t(logvar)])


def test_elbo_rejects_bad_input():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        elbo(_t(np.zeros((2, 3)), False), _t(np.zeros((2, 3)), False), _t(np.zeros((2, 1)), False),
             _t(np.zeros((2, 1)), False), likelihood="poisson")
    with pytest.raises(ValueError, match=r"mu and logvar must have the same shape.*\(2, 2\) and \(2, 3\)"):
        gaussian_kl(_t(np.zeros((2, 2)), False), _t(np.zeros((2, 3)), False))
    with pytest.raises(ValueError, match=r"x and the decoder output must have the same shape"):
        log_likelihood(_t(np.zeros((2, 3)), False), _t(np.zeros((2, 4)), False))
    with pytest.raises(ValueError, match="reduction must be"):
        elbo(_t(np.zeros((2, 3)), False), _t(np.zeros((2, 3)), False), _t(np.zeros((2, 1)), False),
             _t(np.zeros((2, 1)), False), reduction="max")


# ------------------------------------------------------------------------------ models

def test_vae_shapes_and_eval_mode_is_deterministic():
    model = VAE(latent_dim=3, hidden=(16,))
    x = minidl.rand(5, 1, 8, 8)
    out, mu, logvar = model(x)
    assert out.shape == (5, 1, 8, 8) and mu.shape == logvar.shape == (5, 3)
    model.eval()
    np.testing.assert_array_equal(model(x)[0].numpy(), model(x)[0].numpy())
    s = model.sample(4).numpy()
    assert s.shape == (4, 1, 8, 8) and s.min() >= 0 and s.max() <= 1
    assert model.reconstruct(x).shape == (5, 1, 8, 8)


def test_a_latent_size_that_does_not_match_the_decoder_is_a_clear_error():
    model = VAE(latent_dim=8)
    with pytest.raises(ValueError, match=r"VAE.decode: latent codes must have shape \(N, 8\) \(the decoder was built "
                                         r"with latent_dim=8\), got \(3, 4\)"):
        model.decode(minidl.randn(3, 4))
    cvae = ConditionalVAE(latent_dim=6)
    with pytest.raises(ValueError, match=r"ConditionalVAE.decode: latent codes must have shape \(N, 6\)"):
        cvae.decode(minidl.randn(2, 8), [1, 2])
    with pytest.raises(ValueError, match=r"VAE: expected images \(N, 1, 8, 8\), got \(2, 64\)"):
        model.encode(minidl.zeros(2, 64))


def test_conditional_vae_generates_the_requested_classes_shape_and_checks_labels():
    cvae = ConditionalVAE(num_classes=10, latent_dim=4, hidden=(16,))
    images = cvae.generate([3, 3, 7])
    assert images.shape == (3, 1, 8, 8) and not images.requires_grad
    assert cvae.generate(5).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), got values from 3 to 12"):
        cvae.generate([3, 12])
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        cvae(minidl.rand(2, 1, 8, 8), [0.5, 1.0])


# ---------------------------------------------------------------------------- training

def _digits(classes, n_per_class=60):
    X, y = load_digits()
    keep = np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in classes])
    return X[keep], y[keep]


def test_a_few_epochs_raise_the_held_out_elbo():
    X, _ = _digits(range(10), 30)
    model = VAE(latent_dim=4, hidden=(64,))
    before = evaluate_elbo(model, X[1::2])
    hist = train_vae(model, X[::2], epochs=8, batch_size=32, lr=3e-3, val_images=X[1::2], progress=False)
    assert len(hist["train_elbo"]) == len(hist["val_elbo"]) == 8
    assert hist["val_elbo"][-1] > before + 5.0          # nats per image
    assert hist["train_elbo"][-1] > hist["train_elbo"][0]


def test_conditional_vae_draws_the_class_it_is_asked_for():
    """Trained on 0s and 1s, generated 0s look like the mean 0 more than the mean 1, and vice versa."""
    X, y = _digits([0, 1], 90)
    cvae = ConditionalVAE(num_classes=2, latent_dim=2, hidden=(64,))
    train_vae(cvae, X, y, epochs=15, batch_size=30, lr=3e-3, progress=False)
    means = [X[y == c].mean(axis=0) for c in (0, 1)]
    for c in (0, 1):
        gen = cvae.generate([c] * 20).numpy()
        own = np.mean((gen - means[c]) ** 2)
        other = np.mean((gen - means[1 - c]) ** 2)
        assert own < 0.5 * other, (c, own, other)


def test_train_vae_needs_labels_for_a_conditional_model():
    with pytest.raises(ValueError, match="ConditionalVAE needs labels"):
        train_vae(ConditionalVAE(), np.zeros((4, 1, 8, 8), np.float32), progress=False)

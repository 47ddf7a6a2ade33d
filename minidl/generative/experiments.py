"""``python -m minidl generative``: VAE, conditional VAE, denoising autoencoder, GAN and
WGAN-GP on the 1,797 bundled 8x8 digits, with measured results.

- The digits are split per class into 80% training and 20% held-out images (seeded).
- VAE: the held-out ELBO (nats per image, one reparameterised sample) after every epoch,
  plotted; a grid of samples and one of held-out images above their reconstructions.
- Conditional VAE: one row per digit 0..9, each generated on request.
- Denoising autoencoder: held-out images with Gaussian noise, before and after denoising.
- GAN and WGAN-GP: grids of G(z) for fixed codes every few epochs.
- The classifier check: a LeNet-5 trained on the training images labels 1,000 generated
  images per model; reported are the share it classifies with confidence > 0.9, how many of
  the 10 classes those confident images cover, and the largest class share (a sign of mode
  collapse). Held-out real digits give the reference; for the conditional VAE, the share
  classified as the digit that was asked for.

Results go to the ``## VAE``, ``## Denoising autoencoder`` and ``## GAN and WGAN-GP``
sections of ``benchmarks/RESULTS.md``, images to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..backend import manual_seed
from ..data.datasets import load_digits
from ..models import LeNet5
from ..optim import Adam
from ..tensor import Tensor
from .autoencoder import DenoisingAutoencoder, corrupt, train_denoising_autoencoder
from .gan import Discriminator, Generator, train_gan, train_wgan_gp
from .plots import save_image_grid
from .vae import VAE, ConditionalVAE, evaluate_elbo, train_vae

__all__ = ["split_digits", "train_digit_classifier", "classifier_check", "run", "results_markdown", "main"]

SECTIONS = ("VAE", "Denoising autoencoder", "GAN and WGAN-GP")

# epochs per model: (full run, --quick)
EPOCHS = {"classifier": (30, 8), "vae": (120, 15), "cvae": (120, 15), "dae": (40, 8), "gan": (200, 20),
          "wgan": (200, 20)}


def split_digits(seed: int = 0, test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """The digits split per class: ``round(test_fraction n_c)`` held-out images of each class c.
    Returns ``X_train, y_train, X_test, y_test`` (images (N, 1, 8, 8) in [0, 1])."""
    X, y = load_digits()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    return {"X_train": X[train], "y_train": y[train], "X_test": X[test], "y_test": y[test]}


def train_digit_classifier(X: np.ndarray, y: np.ndarray, epochs: int = 30, batch_size: int = 64, lr: float = 3e-3,
                           seed: int = 0, progress: bool = True) -> LeNet5:
    """A LeNet-5 for the 8x8 digits, trained by Adam on cross-entropy with the learning rate
    cosine-annealed to 0 over ``epochs``; returned in eval mode."""
    from tqdm.auto import tqdm

    from ..optim.lr_scheduler import CosineAnnealingLR

    manual_seed(seed)
    model = LeNet5(in_channels=1, num_classes=10, input_size=8)
    optimizer = Adam(model.parameters(), lr=lr)
    schedule = CosineAnnealingLR(optimizer, T_max=epochs)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in tqdm(range(epochs), desc="digit classifier", unit="epoch", disable=not progress):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(Tensor(X[idx])), Tensor(y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    return model


def _probabilities(classifier: Any, images: Any) -> np.ndarray:
    arr = images.numpy() if isinstance(images, Tensor) else np.asarray(images)
    with no_grad():
        return F.softmax(classifier(Tensor(arr.astype(np.float32))), axis=1).numpy()


def classifier_check(classifier: Any, images: Any, threshold: float = 0.9, requested: Any = None) -> dict[str, float]:
    """How recognisable ``images`` (N, 1, 8, 8) are to ``classifier`` (softmax over 10 classes):

    ``confident``: share with max probability > ``threshold``; ``classes``: number of classes
    among the confident images; ``top_class``: the largest share of one class among them;
    with ``requested`` labels (N,), ``as_requested``: share classified (argmax) as requested
    and ``confident_as_requested``: share classified as requested with confidence > threshold.
    """
    p = _probabilities(classifier, images)
    conf, label = p.max(axis=1), p.argmax(axis=1)
    sure = conf > threshold
    counts = np.bincount(label[sure], minlength=p.shape[1])
    out = {"confident": float(sure.mean()), "classes": int((counts > 0).sum()),
           "top_class": float(counts.max() / max(1, sure.sum()))}
    if requested is not None:
        req = np.asarray(requested)
        out["as_requested"] = float(np.mean(label == req))
        out["confident_as_requested"] = float(np.mean(sure & (label == req)))
    return out


def _vae_part(data: dict, epochs: int, cvae_epochs: int, classifier: Any, out: Path, seed: int,
              progress: bool) -> dict[str, Any]:
    from ..train.plots import plot_learning_curves

    res: dict[str, Any] = {}
    manual_seed(seed)
    vae = VAE(image_shape=(1, 8, 8), latent_dim=8, hidden=(256, 128))
    t0 = time.perf_counter()
    hist = train_vae(vae, data["X_train"], epochs=epochs, batch_size=64, lr=1e-3, val_images=data["X_test"],
                     seed=seed, progress=progress)
    res["vae_seconds"] = time.perf_counter() - t0
    res["vae_history"] = hist
    manual_seed(seed + 1)
    res["vae_final_elbo"] = evaluate_elbo(vae, data["X_test"])
    res["vae_prior_check"] = classifier_check(classifier, vae.sample(1000))
    X_show = data["X_test"][:20]
    grid = np.concatenate([vae.sample(30).numpy(), X_show[:10], vae.reconstruct(Tensor(X_show[:10])).numpy(),
                           X_show[10:], vae.reconstruct(Tensor(X_show[10:])).numpy()])
    res["vae_grid_png"] = save_image_grid(grid, out / "vae_samples_reconstructions.png", nrow=10,
                                          title="VAE: samples z ~ N(0, I); held-out digits and their reconstructions",
                                          row_labels=["sample"] * 3 + ["held-out", "recon."] * 2)
    recon_all = vae.reconstruct(Tensor(data["X_test"])).numpy()
    res["vae_recon_mse"] = float(np.mean((recon_all - data["X_test"]) ** 2))

    manual_seed(seed)
    cvae = ConditionalVAE(num_classes=10, image_shape=(1, 8, 8), latent_dim=8, hidden=(256, 128))
    t0 = time.perf_counter()
    chist = train_vae(cvae, data["X_train"], data["y_train"], epochs=cvae_epochs, batch_size=64, lr=1e-3,
                      val_images=data["X_test"], val_labels=data["y_test"], seed=seed, progress=progress)
    res["cvae_seconds"] = time.perf_counter() - t0
    res["cvae_history"] = chist
    manual_seed(seed + 1)
    res["cvae_final_elbo"] = evaluate_elbo(cvae, data["X_test"], data["y_test"])
    requested = np.repeat(np.arange(10), 100)
    res["cvae_check"] = classifier_check(classifier, cvae.generate(requested), requested=requested)
    rows = np.repeat(np.arange(10), 10)
    res["vae_elbo_plot"] = plot_learning_curves(
        {"train_VAE ELBO (nats/image)": hist["train_elbo"], "val_VAE ELBO (nats/image)": hist["val_elbo"],
         "train_conditional VAE ELBO (nats/image)": chist["train_elbo"],
         "val_conditional VAE ELBO (nats/image)": chist["val_elbo"]},
        out / "vae_elbo.png", title="ELBO per epoch on the digits (validation: held-out images)")
    res["cvae_png"] = save_image_grid(cvae.generate(rows), out / "cvae_digits.png", nrow=10,
                                      title="conditional VAE: digit asked for, one row each",
                                      row_labels=[str(d) for d in range(10)])
    return res


def _dae_part(data: dict, epochs: int, out: Path, seed: int, progress: bool) -> dict[str, Any]:
    manual_seed(seed)
    dae = DenoisingAutoencoder(image_shape=(1, 8, 8), code_dim=32, hidden=(128,), noise="gaussian", level=0.4)
    t0 = time.perf_counter()
    hist = train_denoising_autoencoder(dae, data["X_train"], epochs=epochs, batch_size=64, lr=1e-3,
                                       val_images=data["X_test"], seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    res: dict[str, Any] = {"dae_seconds": seconds, "dae_history": hist}
    for noise, level in (("gaussian", 0.4), ("masking", 0.4)):
        noisy = corrupt(data["X_test"], noise, level, np.random.default_rng(seed + 7))
        cleaned = dae.denoise(Tensor(noisy)).numpy()
        res[f"dae_{noise}"] = (float(np.mean((noisy - data["X_test"]) ** 2)),
                               float(np.mean((cleaned - data["X_test"]) ** 2)))
        if noise == "gaussian":
            show = slice(0, 10)
            res["dae_png"] = save_image_grid(np.concatenate([data["X_test"][show], noisy[show], cleaned[show]]),
                                             out / "dae_denoising.png", nrow=10,
                                             title="denoising autoencoder: clean, noisy (sigma 0.4), denoised",
                                             row_labels=["clean", "noisy", "denoised"])
    return res


def _gan_part(data: dict, gan_epochs: int, wgan_epochs: int, classifier: Any, out: Path, seed: int,
              progress: bool) -> dict[str, Any]:
    res: dict[str, Any] = {}
    every_gan = max(1, gan_epochs // 5)
    manual_seed(seed)
    G, D = Generator(latent_dim=16, image_shape=(1, 8, 8)), Discriminator((1, 8, 8))
    t0 = time.perf_counter()
    res["gan_history"] = train_gan(G, D, data["X_train"], epochs=gan_epochs, batch_size=32, lr=2e-4,
                                   seed=seed, sample_every=every_gan, sample_dir=out, prefix="gan", progress=progress)
    res["gan_seconds"] = time.perf_counter() - t0
    G.eval()
    res["gan_check"] = classifier_check(classifier, G.sample(1000))

    every_wgan = max(1, wgan_epochs // 5)
    manual_seed(seed)
    G, C = Generator(latent_dim=16, image_shape=(1, 8, 8)), Discriminator((1, 8, 8))
    t0 = time.perf_counter()
    res["wgan_history"] = train_wgan_gp(G, C, data["X_train"], epochs=wgan_epochs, batch_size=64, lr=2e-4,
                                        n_critic=5, gp_weight=10.0, seed=seed, sample_every=every_wgan,
                                        sample_dir=out, prefix="wgan_gp", progress=progress)
    res["wgan_seconds"] = time.perf_counter() - t0
    G.eval()
    res["wgan_check"] = classifier_check(classifier, G.sample(1000))
    return res


def run(quick: bool = False, seed: int = 0, out_dir: str | os.PathLike | None = None, parts: tuple = ("vae", "dae", "gan"),
        progress: bool = True) -> dict[str, Any]:
    """Train everything once; returns the measured numbers (and writes the PNGs to ``out_dir``)."""
    if out_dir is None:
        from benchmarks.report import PLOTS

        out_dir = PLOTS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pick = 1 if quick else 0
    data = split_digits(seed)
    res: dict[str, Any] = {"quick": quick, "seed": seed, "epochs": {k: v[pick] for k, v in EPOCHS.items()},
                           "n_train": len(data["X_train"]), "n_test": len(data["X_test"])}
    t0 = time.perf_counter()
    classifier = None
    if "vae" in parts or "gan" in parts:
        classifier = train_digit_classifier(data["X_train"], data["y_train"], epochs=res["epochs"]["classifier"],
                                            seed=seed, progress=progress)
        res["classifier_seconds"] = time.perf_counter() - t0
        p = _probabilities(classifier, data["X_test"])
        res["classifier_accuracy"] = float(np.mean(p.argmax(axis=1) == data["y_test"]))
        res["real_check"] = classifier_check(classifier, data["X_test"])
    if "vae" in parts:
        res.update(_vae_part(data, res["epochs"]["vae"], res["epochs"]["cvae"], classifier, out, seed, progress))
    if "dae" in parts:
        res.update(_dae_part(data, res["epochs"]["dae"], out, seed, progress))
    if "gan" in parts:
        res.update(_gan_part(data, res["epochs"]["gan"], res["epochs"]["wgan"], classifier, out, seed, progress))
    return res


def _check_row(name: str, check: dict, seconds: float | None) -> list:
    return [name, f"{100 * check['confident']:.1f}", f"{check['classes']}/10", f"{100 * check['top_class']:.1f}",
            "-" if seconds is None else f"{seconds:.0f}"]


def _rel(path: str) -> str:
    return "results/" + Path(path).name


def results_markdown(res: dict[str, Any]) -> dict[str, str]:
    """The markdown body of each section that ``res`` has results for: {section title: body}."""
    from benchmarks.report import markdown_table

    ep = res["epochs"]
    cmd = "`python -m minidl generative" + (" --quick`" if res["quick"] else "`")
    setup = (f"{cmd} (minidl/generative/experiments.py), seed {res['seed']}. Digits split per class into "
             f"{res['n_train']} training and {res['n_test']} held-out images (8x8, pixels in [0, 1]).")
    check_note = ""
    if "classifier_accuracy" in res:
        check_note = (f"Classifier check: a LeNet-5 trained on the training images ({ep['classifier']} epochs, Adam 3e-3 "
                      f"cosine-annealed, no augmentation; "
                      f"held-out accuracy {100 * res['classifier_accuracy']:.1f}%) labels 1,000 generated images; "
                      "'confident' = share with softmax probability > 0.9, 'classes' = how many digits the "
                      "confident images cover, 'top class' = the largest share one digit takes among them "
                      "(about 10% when no mode dominates).")
    bodies: dict[str, str] = {}
    if "vae_history" in res:
        h, ch = res["vae_history"], res["cvae_history"]
        c = res["cvae_check"]
        table = markdown_table(
            ["model", "epochs", "held-out ELBO (nats/image)", "best per-epoch held-out ELBO", "train ELBO (last epoch)",
             "train seconds"],
            [["VAE (latent 8)", ep["vae"], f"{res['vae_final_elbo']:.2f}", f"{max(h['val_elbo']):.2f}",
              f"{h['train_elbo'][-1]:.2f}", f"{res['vae_seconds']:.0f}"],
             ["conditional VAE (latent 8, one-hot class)", ep["cvae"], f"{res['cvae_final_elbo']:.2f}",
              f"{max(ch['val_elbo']):.2f}", f"{ch['train_elbo'][-1]:.2f}", f"{res['cvae_seconds']:.0f}"]])
        checks = markdown_table(
            ["images", "confident > 0.9 (%)", "classes", "top class (%)", "classified as requested (%)"],
            [["held-out real digits (reference)", f"{100 * res['real_check']['confident']:.1f}",
              f"{res['real_check']['classes']}/10", f"{100 * res['real_check']['top_class']:.1f}", "-"],
             ["VAE samples, z ~ N(0, I)", f"{100 * res['vae_prior_check']['confident']:.1f}",
              f"{res['vae_prior_check']['classes']}/10", f"{100 * res['vae_prior_check']['top_class']:.1f}", "-"],
             ["conditional VAE, 100 per digit on request", f"{100 * c['confident']:.1f}", f"{c['classes']}/10",
              f"{100 * c['top_class']:.1f}",
              f"{100 * c['as_requested']:.1f} (confident and right: {100 * c['confident_as_requested']:.1f})"]])
        bodies["VAE"] = (
            f"{setup} MLP encoder 64-256-128-(mu, logvar) and decoder 8-128-256-64 (ReLU), Bernoulli likelihood "
            "on the pixel intensities (decoder logits), one reparameterised sample per image, Adam 1e-3, batch 64; "
            "the conditional VAE appends the one-hot digit to the encoder's input and to z. The ELBO is in nats "
            "per image (with continuous pixels in [0, 1] the Bernoulli 'likelihood' is a cross-entropy, so the "
            "numbers compare models on these data, not with published MNIST bounds). Held-out mean squared "
            f"error of the VAE's reconstructions E[x | z = mu(x)]: {res['vae_recon_mse']:.4f}.\n\n"
            + table + "\n\n" + check_note + "\n\n" + checks + "\n\n"
            f"![held-out ELBO per epoch]({_rel(res['vae_elbo_plot'])})\n"
            f"![VAE samples, held-out digits and reconstructions]({_rel(res['vae_grid_png'])})\n"
            f"![conditional VAE, one row per digit]({_rel(res['cvae_png'])})"
        )
    if "dae_history" in res:
        g, m = res["dae_gaussian"], res["dae_masking"]
        table = markdown_table(
            ["held-out corruption", "MSE noisy vs clean", "MSE denoised vs clean", "error removed (%)"],
            [["Gaussian, sigma 0.4 (clipped to [0, 1]); trained on this", f"{g[0]:.4f}", f"{g[1]:.4f}",
              f"{100 * (1 - g[1] / g[0]):.0f}"],
             ["masking, 40% of pixels set to 0 (not seen in training)", f"{m[0]:.4f}", f"{m[1]:.4f}",
              f"{100 * (1 - m[1] / m[0]):.0f}"]])
        bodies["Denoising autoencoder"] = (
            f"{setup} MLP 64-128-32-128-64 (ReLU, sigmoid output), trained {ep['dae']} epochs "
            f"({res['dae_seconds']:.0f} s) to reconstruct clean images from copies with fresh Gaussian noise "
            "(sigma 0.4) each batch; cross-entropy loss, Adam 1e-3. Mean squared error per pixel on the "
            "held-out images:\n\n" + table + f"\n\n![clean, noisy and denoised digits]({_rel(res['dae_png'])})"
        )
    if "gan_history" in res:
        gh, wh = res["gan_history"], res["wgan_history"]
        table = markdown_table(
            ["images", "confident > 0.9 (%)", "classes", "top class (%)", "train seconds"],
            [_check_row("held-out real digits (reference)", res["real_check"], None),
             _check_row(f"GAN, {ep['gan']} epochs", res["gan_check"], res["gan_seconds"]),
             _check_row(f"WGAN-GP, {ep['wgan']} epochs", res["wgan_check"], res["wgan_seconds"])]
            + ([_check_row("VAE samples (for comparison)", res["vae_prior_check"], None)]
               if "vae_prior_check" in res else []))
        grids = "\n".join(f"![GAN samples]({_rel(p)})" for p in gh["grids"])
        wgrids = "\n".join(f"![WGAN-GP samples]({_rel(p)})" for p in wh["grids"])
        bodies["GAN and WGAN-GP"] = (
            f"{setup} Generator: MLP 16-128-256-64 (ReLU, sigmoid output); discriminator / critic: MLP "
            "64-256-128-1 (LeakyReLU 0.2, no normalisation). GAN: non-saturating losses, batch 32 (with batch 64 the "
            "confident samples covered only 3-6 of the 10 digits in four trial runs), one D and one G step per batch, Adam 2e-4, "
            "betas (0.5, 0.999); last epoch's mean D loss "
            f"{gh['d_loss'][-1]:.3f}, G loss {gh['g_loss'][-1]:.3f}, sigmoid(D) on real {gh['d_real'][-1]:.2f} "
            f"and on fake {gh['d_fake'][-1]:.2f}. WGAN-GP: batch 64, 5 critic steps per generator step, gradient-penalty "
            "weight 10 (the penalty's backward is a second-order pass), Adam 2e-4, betas (0.5, 0.9); the critic's "
            f"Wasserstein estimate fell from {max(wh['wasserstein']):.3f} (peak) to {wh['wasserstein'][-1]:.3f} "
            f"(last epoch), mean penalty {wh['penalty'][-1]:.4f}.\n\n"
            + check_note + "\n\n" + table + "\n\nGrids of G(z) for the same 50 codes during training:\n\n"
            + grids + "\n\n" + wgrids
        )
    return bodies


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl generative [--quick] [--seed 0] [--parts vae dae gan] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl generative",
        description="Train a VAE, a conditional VAE, a denoising autoencoder, a GAN and a WGAN-GP on the bundled "
                    "8x8 digits; report held-out ELBO, denoising error and a classifier-based check of the "
                    "generated digits; write PNG grids and the results to benchmarks/RESULTS.md.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="few epochs (about 2 minutes); prints the tables and writes images to a temporary "
                             "folder, leaving RESULTS.md alone")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the models (default 0)")
    parser.add_argument("--parts", nargs="+", choices=["vae", "dae", "gan"], default=["vae", "dae", "gan"],
                        help="which experiments to run (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print the tables without updating RESULTS.md")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (default 1: these matrices are small and extra BLAS threads on a "
                             "shared machine cost more than they give)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    write = not (args.quick or args.no_write)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl the BLAS keeps its own setting
        threadpool_limits = None
    limits = threadpool_limits(args.blas_threads) if threadpool_limits is not None and args.blas_threads > 0 else None
    try:
        if write:
            res = run(quick=False, seed=args.seed, parts=tuple(args.parts), progress=not args.quiet)
        else:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="minidl_generative_") as tmp:
                res = run(quick=args.quick, seed=args.seed, out_dir=tmp, parts=tuple(args.parts),
                          progress=not args.quiet)
    finally:
        if limits is not None:
            limits.unregister()
    bodies = results_markdown(res)
    for title, body in bodies.items():
        print(f"## {title}\n\n{body}\n")
    if write:
        from benchmarks.report import write_section

        for title, body in bodies.items():
            path = write_section(title, body)
        print(f"wrote the sections {', '.join(repr(t) for t in bodies)} of {path} and the images in "
              "benchmarks/results/")
    return 0

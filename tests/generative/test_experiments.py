"""minidl.generative.experiments: the split, the classifier check, the tables, the command line."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.generative.experiments import classifier_check, main, results_markdown, run, split_digits


def test_split_is_stratified_disjoint_and_seeded():
    s = split_digits(seed=1)
    assert len(s["X_train"]) + len(s["X_test"]) == 1797
    counts = np.bincount(s["y_test"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37          # 20% of ~180 per class
    again, other = split_digits(seed=1), split_digits(seed=2)
    np.testing.assert_array_equal(again["X_test"], s["X_test"])
    assert not np.array_equal(other["X_test"], s["X_test"])


def test_classifier_check_counts_confident_images_classes_and_requests():
    # four images: confident 0, confident 0, confident 3, unsure -> 3/4 confident, 2 classes, top 2/3
    logits = np.full((4, 10), -10.0)
    logits[0, 0] = logits[1, 0] = logits[2, 3] = 10.0
    logits[3, :2] = 1.0
    classifier = lambda x: minidl.tensor(logits)  # noqa: E731
    out = classifier_check(classifier, np.zeros((4, 1, 8, 8), np.float32), requested=[0, 1, 3, 0])
    assert out["confident"] == 0.75 and out["classes"] == 2
    assert out["top_class"] == pytest.approx(2 / 3)
    assert out["as_requested"] == 0.75                   # images 0, 2 and 3 (argmax of a tie: class 0)
    assert out["confident_as_requested"] == 0.5


def _fake_results():
    check = {"confident": 0.5, "classes": 7, "top_class": 0.25}
    return {
        "quick": True, "seed": 0, "n_train": 1438, "n_test": 359,
        "epochs": {"classifier": 1, "vae": 2, "cvae": 2, "dae": 1, "gan": 2, "wgan": 2},
        "classifier_accuracy": 0.97, "real_check": {"confident": 0.95, "classes": 10, "top_class": 0.11},
        "vae_history": {"train_elbo": [-40.0, -30.0], "val_elbo": [-35.0, -29.5]}, "vae_final_elbo": -29.25,
        "vae_seconds": 3.0, "vae_prior_check": check, "vae_recon_mse": 0.01, "vae_elbo_plot": "/x/vae_elbo.png",
        "vae_grid_png": "/x/vae_samples_reconstructions.png",
        "cvae_history": {"train_elbo": [-38.0, -28.0], "val_elbo": [-33.0, -27.0]}, "cvae_final_elbo": -27.5,
        "cvae_seconds": 4.0, "cvae_png": "/x/cvae_digits.png",
        "cvae_check": {**check, "as_requested": 0.9, "confident_as_requested": 0.6},
        "gan_history": {"d_loss": [1.0], "g_loss": [1.0], "d_real": [0.6], "d_fake": [0.4], "grids": ["/x/gan_epoch002.png"]},
        "wgan_history": {"wasserstein": [2.0, 1.0], "penalty": [0.1, 0.05], "grids": ["/x/wgan_gp_epoch002.png"]},
        "gan_seconds": 10.0, "wgan_seconds": 20.0, "gan_check": check, "wgan_check": check,
    }


def test_results_markdown_reports_each_section():
    bodies = results_markdown(_fake_results())
    assert set(bodies) == {"VAE", "GAN and WGAN-GP"}
    assert "| VAE (latent 8) | 2 | -29.25 | -29.50 | -30.00 | 3 |" in bodies["VAE"]
    assert "| conditional VAE, 100 per digit on request | 50.0 | 7/10 | 25.0 | 90.0 (confident and right: 60.0) |" \
        in bodies["VAE"]
    assert "![conditional VAE, one row per digit](results/cvae_digits.png)" in bodies["VAE"]
    assert "| GAN, 2 epochs | 50.0 | 7/10 | 25.0 | 10 |" in bodies["GAN and WGAN-GP"]
    assert "held-out accuracy 97.0%" in bodies["GAN and WGAN-GP"]
    assert "![WGAN-GP samples](results/wgan_gp_epoch002.png)" in bodies["GAN and WGAN-GP"]


@pytest.mark.slow
def test_quick_denoising_run_end_to_end(tmp_path):
    res = run(quick=True, out_dir=tmp_path, parts=("dae",), progress=False)
    noisy, denoised = res["dae_gaussian"]
    assert denoised < noisy
    assert (tmp_path / "dae_denoising.png").exists()
    assert "Denoising autoencoder" in results_markdown(res)


def test_command_line_help_and_bad_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "classifier-based check" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--parts", "flow"])

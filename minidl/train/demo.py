"""``python -m minidl demo``: a LeNet-style CNN on the handwritten digits, end to end.

The whole daily workflow in one command, on data that ships offline (scikit-learn's
1,797 8x8 digits):

1. a stratified train / validation / test split (70% / 15% / 15%);
2. augmentation of the training images only: small random rotations (up to 10 degrees),
   zooms (0.9-1.1) and sub-pixel shifts, in one bilinear resampling (no horizontal flips:
   a mirrored digit is a different glyph);
3. ``LeNet5(input_size=8)`` trained with Adam and a cosine learning-rate schedule by the
   ``Trainer`` (progress bar per epoch), with early stopping on the validation loss that
   restores the best epoch's weights;
4. the error report: training, validation and test error side by side, flagging over- and
   under-fitting; the test accuracy; learning curves and the test confusion matrix saved
   as PNG files in ``--out``.

Takes well under two minutes on two CPU cores.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from .. import backend, manual_seed, optim
from ..data import DataLoader, load_digits, transforms
from ..data.datasets import ImageDataset
from ..functional import cross_entropy
from ..models import LeNet5
from .callbacks import EarlyStopping
from .metrics import accuracy, confusion_matrix
from .plots import plot_confusion_matrix, plot_learning_curves
from .selection import error_report, train_val_test_split
from .trainer import Trainer

__all__ = ["main", "run_demo", "digits_splits", "digits_augmentation", "digits_loaders",
           "DEMO_RECIPE"]

DEMO_RECIPE = {
    "val_size": 0.15, "test_size": 0.15,
    "degrees": 10.0, "translate": 0.75, "scale": (0.9, 1.1),
    "lr": 3e-3, "weight_decay": 0.0, "patience": 20,
}


def digits_splits(seed: int) -> tuple[np.ndarray, ...]:
    """The digits split stratified 70/15/15: ``(X_train, X_val, X_test, y_train, y_val, y_test)``,
    images (n, 1, 8, 8) float32 in [0, 1], labels int64."""
    X, y = load_digits()
    return train_val_test_split(X, y, val_size=DEMO_RECIPE["val_size"],
                                test_size=DEMO_RECIPE["test_size"], stratify=True, seed=seed)


def digits_augmentation(seed: int) -> transforms.RandomAffine:
    """The demo's training-time augmentation: rotation, zoom and shift in one resampling."""
    return transforms.RandomAffine(degrees=DEMO_RECIPE["degrees"],
                                   translate=DEMO_RECIPE["translate"],
                                   scale=DEMO_RECIPE["scale"], seed=seed)


def digits_loaders(seed: int, batch_size: int = 32) -> tuple[DataLoader, dict[str, DataLoader]]:
    """The demo's data pipeline: ``(train_loader, {"train", "val", "test": plain loaders})``.

    Images are standardised with the training set's pixel mean and std; the training
    loader augments (before standardising; uncovered pixels get 0, the background) and
    shuffles, all seeded from ``seed``; the plain loaders neither augment nor shuffle.
    """
    X_tr, X_va, X_te, y_tr, y_va, y_te = digits_splits(seed)
    normalize = transforms.Normalize(float(X_tr.mean()), float(X_tr.std()))
    augment = transforms.Compose([digits_augmentation(seed + 1), normalize])
    train_loader = DataLoader(ImageDataset(X_tr, y_tr, transform=augment),
                              batch_size=batch_size, shuffle=True, seed=seed + 2)
    plain = {name: DataLoader(ImageDataset(X, y, transform=normalize), batch_size=256)
             for name, X, y in (("train", X_tr, y_tr), ("val", X_va, y_va), ("test", X_te, y_te))}
    return train_loader, plain


def run_demo(epochs: int = 60, seed: int = 0, device: str = "cpu", out: str = "minidl_out",
             batch_size: int = 32, progress: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Train LeNet5 on the digits and report; returns the numbers and the files written.

    Returns ``{"test_accuracy", "train_error", "val_error", "test_error", "epochs_run",
    "best_epoch", "seconds", "report", "history", "files"}``.
    """
    start = time.perf_counter()
    manual_seed(seed)
    train_loader, plain = digits_loaders(seed, batch_size)
    y_tr, y_va, y_te = (plain[name].dataset.targets for name in ("train", "val", "test"))
    if verbose:
        print(f"digits: {len(y_tr)} training, {len(y_va)} validation, {len(y_te)} test images "
              f"(8x8, 10 classes); device {device}")

    model = LeNet5(in_channels=1, num_classes=10, input_size=8)
    optimizer = optim.Adam(model.parameters(), lr=DEMO_RECIPE["lr"],
                           weight_decay=DEMO_RECIPE["weight_decay"])
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    stopper = EarlyStopping(monitor="val_loss", patience=DEMO_RECIPE["patience"],
                            restore_best_weights=True)
    trainer = Trainer(model, cross_entropy, optimizer, metrics=("accuracy",),
                      callbacks=[stopper], scheduler=scheduler, device=device, progress=progress)
    history = trainer.fit(train_loader, plain["val"], epochs=epochs)

    # Errors of the restored (best) model, each set evaluated without augmentation.
    errors = {name: 1.0 - trainer.evaluate(loader)["accuracy"] for name, loader in plain.items()}
    test_scores = trainer.predict(plain["test"])
    test_acc = accuracy(y_te, test_scores)
    if verbose:
        print()
        print(f"best epoch {stopper.best_epoch} of {len(history.epoch)} run "
              f"(early stopping on val_loss, patience {stopper.patience}; best weights restored)")
    report = error_report(errors["train"], errors["val"], errors["test"], verbose=verbose)

    os.makedirs(out, exist_ok=True)
    curves = plot_learning_curves(history.select("loss", "accuracy"),
                                  os.path.join(out, "learning_curves.png"),
                                  title="LeNet5 on the digits")
    cm = confusion_matrix(y_te, test_scores, num_classes=10)
    cm_path = plot_confusion_matrix(cm, os.path.join(out, "confusion_matrix.png"),
                                    title=f"Test confusion matrix (accuracy {test_acc:.2%})")
    seconds = time.perf_counter() - start
    if verbose:
        print(f"\ntest accuracy: {test_acc:.4f} ({int(round(test_acc * len(y_te)))}/{len(y_te)})")
        print(f"saved {curves} and {cm_path}")
        print(f"total time {seconds:.1f} s")
    return {"test_accuracy": float(test_acc), "train_error": errors["train"],
            "val_error": errors["val"], "test_error": errors["test"],
            "epochs_run": len(history.epoch), "best_epoch": stopper.best_epoch,
            "seconds": seconds, "report": report, "history": history,
            "files": [curves, cm_path]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m minidl demo",
        description="Train a LeNet-style CNN on scikit-learn's 8x8 handwritten digits (offline) "
                    "with augmentation and early stopping; print the train/validation/test "
                    "error report and save learning curves and a confusion matrix as PNG.")
    p.add_argument("--epochs", type=int, default=60,
                   help="maximum number of epochs; early stopping may end sooner (default 60)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, the initialisation, the shuffling and the "
                        "augmentation; the same seed gives the same run (default 0)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where to train: cpu, or cuda (needs CuPy and an NVIDIA GPU)")
    p.add_argument("--out", default="minidl_out",
                   help="directory for learning_curves.png and confusion_matrix.png "
                        "(default ./minidl_out)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: run as `mpirun -n P python -m minidl demo "
                        "--distributed` (needs mpi4py); --batch-size is then per process")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m minidl demo``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.epochs < 1:
        _parser().error(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        _parser().error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.device == "cuda" and not backend.cupy_available():
        _parser().error("--device cuda needs CuPy with a CUDA device; none is available here")
    if args.distributed:
        from ..distributed.train_demo import run_distributed_demo

        run_distributed_demo(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                             out=args.out, progress=not args.no_progress)
        return 0
    run_demo(epochs=args.epochs, seed=args.seed, device=args.device, out=args.out,
             batch_size=args.batch_size, progress=not args.no_progress)
    return 0

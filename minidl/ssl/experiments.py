"""``python -m minidl ssl``: self-supervised pretraining on the digits with 5% of the labels.

For each seed: the 1,797 digits are split (stratified) into 75% training and 25% test
images; 5% of the training images, the same share of each class, keep their labels
(about 7 per class). Every contender ends with a classifier evaluated on the test images:

- pixels + linear:   softmax regression on the raw pixels of the labelled images;
- random encoder:    the untrained encoder, frozen, + a linear probe;
- scratch:           the same encoder and a linear layer trained end to end on the labelled
                     images alone (with the same augmentations);
- SimCLR, MoCo v2, BYOL, SimSiam, SwAV: the encoder pretrained on all training images
  without their labels, then (a) frozen + a linear probe, (b) a k-NN vote, and (c)
  fine-tuned end to end exactly as scratch is trained, on the labelled images.

Mean and standard deviation over the seeds go to the ``## Self-supervised (digits, 5%
labels)`` section of ``benchmarks/RESULTS.md`` and a bar chart to
``benchmarks/results/ssl_digits.png``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..backend import manual_seed
from ..data.datasets import load_digits
from ..nn import Linear, Module, Sequential
from ..optim import Adam
from ..tensor import Tensor
from . import byol, moco, simclr, simsiam, swav
from .augment import digits_augmentation
from .encoders import DigitEncoder
from .evaluate import knn_accuracy, linear_probe

__all__ = ["labelled_split", "train_end_to_end", "run", "results_markdown", "main"]

SECTION = "Self-supervised (digits, 5% labels)"

METHODS: dict[str, tuple[str, Any, dict]] = {
    "simclr": ("SimCLR", simclr, {"temperature": 0.2}),
    "moco": ("MoCo v2", moco, {"temperature": 0.2, "momentum": 0.99, "queue_size": 256}),
    "byol": ("BYOL", byol, {"base_momentum": 0.99}),
    "simsiam": ("SimSiam", simsiam, {}),
    "swav": ("SwAV", swav, {"num_prototypes": 20, "temperature": 0.2, "freeze_prototypes_steps": 5}),
}


def labelled_split(X: np.ndarray, y: np.ndarray, label_fraction: float, test_fraction: float,
                   seed: int) -> dict[str, np.ndarray]:
    """Stratified split into test images and training images, of which a fraction keep labels.

    Within each class c (n_c images, shuffled): ``round(test_fraction n_c)`` test images,
    the rest training images, of which ``max(1, round(label_fraction n_train_c))`` labelled.
    Returns arrays ``X_train, X_labelled, y_labelled, X_test, y_test``.
    """
    rng = np.random.default_rng(seed)
    test, train, labelled = [], [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * members.size))
        rest = members[n_test:]
        test.append(members[:n_test])
        train.append(rest)
        labelled.append(rest[:max(1, int(round(label_fraction * rest.size)))])
    test, train, labelled = (np.sort(np.concatenate(a)) for a in (test, train, labelled))
    return {"X_train": X[train], "X_labelled": X[labelled], "y_labelled": y[labelled],
            "X_test": X[test], "y_test": y[test]}


def train_end_to_end(encoder: Module, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                     steps: int = 300, lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0) -> float:
    """``encoder`` + a new linear layer trained end to end on (X, y) only, full batch, with
    the pretraining augmentations; returns the test accuracy. From a fresh encoder this is
    the supervised baseline ("scratch"); from a pretrained one, fine-tuning."""
    classes = int(max(y.max(), y_test.max()) + 1)
    model = Sequential(encoder, Linear(encoder.feature_dim, classes))
    optimizer = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    augment = digits_augmentation(seed=seed)
    targets = Tensor(y.astype(np.int64))
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(Tensor(augment(X))), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with no_grad():
        predicted = model(Tensor(X_test)).numpy().argmax(axis=1)
    return float(np.mean(predicted == y_test))


def _pixels_probe(split: dict, seed: int) -> float:
    from ..nn import Flatten

    return linear_probe(Flatten(), split["X_labelled"], split["y_labelled"], split["X_test"], split["y_test"], seed=seed)


SCRATCH = "scratch (encoder trained on the 5% only)"


def run(seeds: list[int], methods: list[str], epochs: int, batch_size: int = 256, lr: float = 2e-3,
        label_fraction: float = 0.05, k: int = 5, progress: bool = True) -> dict[str, dict[str, list[float]]]:
    """Every contender for every seed; returns {row: {"probe"/"knn"/"end_to_end"/"seconds": [per seed]}}."""
    from tqdm.auto import tqdm

    X, y = load_digits()
    rows: dict[str, dict[str, list[float]]] = {}

    def record(name: str, **values: float) -> None:
        for key, v in values.items():
            rows.setdefault(name, {}).setdefault(key, []).append(float(v))

    jobs = [(s, m) for s in seeds for m in ["baselines"] + methods]
    bar = tqdm(jobs, desc="ssl experiments", unit="run", disable=not progress)
    for seed, job in bar:
        bar.set_postfix(seed=seed, run=job)
        split = labelled_split(X, y, label_fraction, 0.25, seed)
        lab = (split["X_labelled"], split["y_labelled"], split["X_test"], split["y_test"])
        if job == "baselines":
            record("pixels + linear", probe=_pixels_probe(split, seed))
            manual_seed(seed)
            encoder = DigitEncoder()
            record("random encoder", probe=linear_probe(encoder, *lab, seed=seed), knn=knn_accuracy(encoder, *lab, k=k))
            manual_seed(seed)
            t0 = time.perf_counter()
            record(SCRATCH, end_to_end=train_end_to_end(DigitEncoder(), *lab, seed=seed),
                   seconds=time.perf_counter() - t0)
            continue
        title, module, options = METHODS[job]
        manual_seed(seed)
        encoder = DigitEncoder()
        t0 = time.perf_counter()
        module.pretrain(encoder, split["X_train"], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                        progress=progress, **options)
        seconds = time.perf_counter() - t0
        probe, knn = linear_probe(encoder, *lab, seed=seed), knn_accuracy(encoder, *lab, k=k)
        record(title, probe=probe, knn=knn, end_to_end=train_end_to_end(encoder, *lab, seed=seed), seconds=seconds)
    return rows


def _mean_std(values: list[float] | None, scale: float = 100.0, digits: int = 1, sign: str = "") -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def _paired_gain(values: list[float] | None, scratch: list[float] | None) -> str:
    """Mean ± std over seeds of (this - scratch) on the same split, in points."""
    if not values or not scratch or len(values) != len(scratch):
        return "-"
    return _mean_std([a - b for a, b in zip(values, scratch)], sign="+")


def results_markdown(rows: dict, seeds: list[int], epochs: int, n_labelled: int, k: int) -> str:
    """The table of accuracies (mean ± std over seeds, in %) and how it was measured."""
    from benchmarks.report import markdown_table

    scratch = rows.get(SCRATCH, {}).get("end_to_end")
    table = []
    for name, r in rows.items():
        per_seed = " / ".join(f"{v * 100:.1f}" for v in r["probe"]) if "probe" in r else "-"
        table.append([name, _mean_std(r.get("probe")), per_seed,
                      _paired_gain(r.get("probe"), scratch), _mean_std(r.get("knn")),
                      _mean_std(r.get("end_to_end")),
                      _paired_gain(r.get("end_to_end"), scratch) if name != SCRATCH else "-",
                      _mean_std(r.get("seconds"), scale=1.0, digits=0)])
    header = ["encoder", "linear probe %", "probe, per seed", "probe vs scratch", f"{k}-NN %",
              "end to end %", "end to end vs scratch", "train s"]
    return (
        f"`python -m minidl ssl --seeds {len(seeds)} --epochs {epochs}` (minidl/ssl/experiments.py). Digits, "
        f"stratified 75/25 split per seed (seeds {', '.join(map(str, seeds))}); {n_labelled} labelled training "
        f"images (5%, 6-7 per class), 1,347 training images used without labels for pretraining; 450 test "
        "images. Encoder: `DigitEncoder` (2 conv + BN, a 64-feature linear layer, 38k parameters). "
        f"Pretraining: {epochs} epochs, batch 256, Adam 2e-3 with cosine decay, `digits_augmentation()` views. "
        "**Linear probe**: softmax regression on the frozen, standardised features of the labelled images "
        f"(300 full-batch Adam steps, weight decay 1e-2). **{k}-NN**: cosine similarity to the labelled images. "
        "**End to end**: encoder + linear layer trained on the labelled images only (300 full-batch Adam "
        "steps, same augmentations): from a random encoder it is the *scratch* baseline; from a pretrained "
        "one, fine-tuning. *vs scratch*: the difference to scratch on the same split, in points, mean ± std "
        "over seeds. SimCLR's and SwAV's temperatures (0.2), SwAV's 20 prototypes, MoCo's queue (256) and "
        "the probe's weight decay were chosen on seed 0's split. Test accuracy in %, mean ± standard "
        "deviation over the seeds.\n\n"
        + markdown_table(header, table)
    )


def _plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []  # (label, values, colour)
    for name, r in rows.items():
        if "probe" in r:
            bars.append((f"{name}: linear probe", r["probe"], "#36c" if "knn" in r and "end_to_end" in r else "#999"))
        if "end_to_end" in r:
            bars.append((f"{name}: end to end" if name != SCRATCH else name, r["end_to_end"],
                         "#999" if name == SCRATCH else "#9bd"))
    means = [statistics.fmean(v) * 100 for _, v, _ in bars]
    stds = [statistics.stdev(v) * 100 if len(v) > 1 else 0.0 for _, v, _ in bars]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(bars) + 1.2))
    ax.barh(range(len(bars)), means, xerr=stds, color=[c for _, _, c in bars])
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    if SCRATCH in rows:
        ax.axvline(statistics.fmean(rows[SCRATCH]["end_to_end"]) * 100, color="k", ls="--", lw=0.8)
    ax.set_xlim(min(means) - 10, 100)
    ax.set_xlabel("test accuracy % (mean ± std over seeds)")
    ax.set_title("Digits with 5% of the labels (dashed: scratch)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl ssl [--seeds 3] [--epochs 30] [--methods ...] [--quick] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl ssl",
        description="Pretrain a digit encoder with SimCLR, MoCo v2, BYOL, SimSiam and SwAV on unlabeled digits, "
                    "then compare linear probes on 5% of the labels with the encoder trained from scratch.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--epochs", type=int, default=30, help="pretraining epochs per method (default 30)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="methods to run (default: all five)")
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 6 epochs, SimCLR/MoCo/BYOL only; prints the table, writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print the table without updating RESULTS.md")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (default 1: these matrices are small, and spinning BLAS threads "
                             "on a shared machine cost more than they give)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.no_write = 1, 6, True
        if args.methods == list(METHODS):
            args.methods = ["simclr", "moco", "byol"]
    if args.seeds < 1 or args.epochs < 1:
        parser.error("--seeds and --epochs must be >= 1")
    seeds = list(range(args.seeds))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl the BLAS keeps its own setting
        threadpool_limits = None
    limits = threadpool_limits(args.blas_threads) if threadpool_limits is not None and args.blas_threads > 0 else None
    try:
        rows = run(seeds, args.methods, args.epochs, progress=not args.quiet)
    finally:
        if limits is not None:
            limits.unregister()
    X, y = load_digits()
    n_labelled = len(labelled_split(X, y, 0.05, 0.25, 0)["y_labelled"])
    body = results_markdown(rows, seeds, args.epochs, n_labelled, 5)
    print(body)
    if not args.no_write:
        from benchmarks.report import PLOTS, write_section

        plot = PLOTS / "ssl_digits.png"
        _plot(rows, plot)
        path = write_section(SECTION, body + f"\n\n![linear-probe accuracy](results/{plot.name})")
        print(f"\nwrote the '{SECTION}' section of {path} and {plot}")
    return 0

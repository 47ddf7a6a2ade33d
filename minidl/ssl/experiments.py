"""``python -m minidl ssl``: self-supervised pretraining on the digits with 5% of the labels.

For each seed: the 1,797 digits are split (stratified) into 75% training and 25% test
images; 5% of the training images, the same share of each class, keep their labels
(about 7 per class), and 300 other training images are set aside with their labels as
validation images, used only to choose hyperparameters (``--validation``). Every
contender ends with a classifier evaluated on the test images:

- pixels + linear:   softmax regression on the raw pixels of the labelled images;
- random encoder:    the untrained encoder, frozen, + a linear probe;
- scratch:           the same encoder and a linear layer trained end to end on the labelled
                     images alone (with the same augmentations); also with the narrower
                     default encoder, to check that widening it does not handicap scratch;
- SimCLR, MoCo v2, BYOL (by default; SimSiam and SwAV with ``--methods``): the encoder
  pretrained on all training images without their labels, then (a) frozen + a linear
  probe, (b) a k-NN vote, and (c) fine-tuned end to end exactly as scratch is trained, on
  the labelled images.

The defaults below (pretraining length, encoder width, temperatures, the probe's augmented
views and weight decay, the end-to-end steps and weight decay) were chosen on the
validation images of seeds 0 and 1, never on the test images. Mean and standard deviation
over the seeds go to the ``## Self-supervised (digits, 5% labels)`` section of
``benchmarks/RESULTS.md`` and a bar chart to ``benchmarks/results/ssl_digits.png``.
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

# Defaults chosen on the validation images of seed 0 (``python -m minidl ssl --validation``).
EPOCHS = 60              # pretraining epochs; with BATCH_SIZE, 660 steps (30 x 256 gave 180)
BATCH_SIZE = 128
WIDTH, FEATURE_DIM = 32, 128      # the encoder of every contender (DigitEncoder's default is 16, 64)
END_TO_END_STEPS = 600   # scratch and fine-tuning: full-batch Adam steps ...
END_TO_END_WEIGHT_DECAY = 1e-2   # ... and their weight decay
PROBE_VIEWS = 20         # augmented copies of the labelled images the linear probe also trains on
PROBE_WEIGHT_DECAY = 0.1
DEFAULT_METHODS = ["simclr", "moco", "byol"]

METHODS: dict[str, tuple[str, Any, dict]] = {
    "simclr": ("SimCLR", simclr, {"temperature": 0.5}),
    "moco": ("MoCo v2", moco, {"temperature": 0.5, "momentum": 0.99, "queue_size": 256}),
    "byol": ("BYOL", byol, {"base_momentum": 0.99}),
    "simsiam": ("SimSiam", simsiam, {}),
    "swav": ("SwAV", swav, {"num_prototypes": 20, "temperature": 0.2, "freeze_prototypes_steps": 5}),
}


def labelled_split(X: np.ndarray, y: np.ndarray, label_fraction: float, test_fraction: float,
                   seed: int, validation_size: int = 300) -> dict[str, np.ndarray]:
    """Stratified split into test images and training images, of which a fraction keep labels.

    Within each class c (n_c images, shuffled): ``round(test_fraction n_c)`` test images,
    the rest training images, of which ``max(1, round(label_fraction n_train_c))`` labelled.
    A validation set of ``validation_size`` training images (stratified, disjoint from the
    labelled ones) is also set aside *with* its labels, for choosing hyperparameters without
    touching the test images; those images stay in ``X_train`` (unlabeled data for
    pretraining, as all training images are). Returns arrays ``X_train, X_labelled,
    y_labelled, X_val, y_val, X_test, y_test``.
    """
    rng = np.random.default_rng(seed)
    test, train, labelled, unlabelled = [], [], [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * members.size))
        rest = members[n_test:]
        n_labelled = max(1, int(round(label_fraction * rest.size)))
        test.append(members[:n_test])
        train.append(rest)
        labelled.append(rest[:n_labelled])
        unlabelled.append(rest[n_labelled:])
    # Validation: the same share of each class's unlabelled training images, from a separate stream.
    val_rng = np.random.default_rng([seed, 1])
    pool = sum(u.size for u in unlabelled)
    if not 0 <= validation_size <= pool:
        raise ValueError(f"labelled_split: validation_size must be in [0, {pool}] (the unlabelled training "
                         f"images), got {validation_size}")
    val = [val_rng.permutation(u)[:int(round(validation_size * u.size / pool))] for u in unlabelled]
    test, train, labelled, val = (np.sort(np.concatenate(a)) for a in (test, train, labelled, val))
    return {"X_train": X[train], "X_labelled": X[labelled], "y_labelled": y[labelled],
            "X_val": X[val], "y_val": y[val], "X_test": X[test], "y_test": y[test]}


def train_end_to_end(encoder: Module, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                     steps: int = END_TO_END_STEPS, lr: float = 2e-3, weight_decay: float = END_TO_END_WEIGHT_DECAY,
                     seed: int = 0) -> float:
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


SCRATCH = "scratch (encoder trained on the 5% only)"
NARROW_SCRATCH = "scratch, narrow encoder (width 16, 64 features)"


def _encoder() -> DigitEncoder:
    return DigitEncoder(width=WIDTH, feature_dim=FEATURE_DIM)


def _parameter_count(module: Module) -> int:
    return sum(int(p.size) for p in module.parameters())


def run(seeds: list[int], methods: list[str], epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, lr: float = 2e-3,
        label_fraction: float = 0.05, k: int = 5, end_to_end_steps: int = END_TO_END_STEPS,
        probe_views: int = PROBE_VIEWS, evaluate_on: str = "test",
        progress: bool = True) -> dict[str, dict[str, list[float]]]:
    """Every contender for every seed; returns {row: {"probe"/"knn"/"end_to_end"/"seconds": [per seed]}}.

    Every linear probe trains on the labelled images and ``probe_views`` augmented copies
    of them (``digits_augmentation``, as scratch training sees). ``evaluate_on="validation"``
    scores every classifier on the validation images carved from the training images (see
    ``labelled_split``) instead of the test images: the mode in which the hyperparameters
    were chosen.
    """
    from tqdm.auto import tqdm

    from ..nn import Flatten

    if evaluate_on not in ("test", "validation"):
        raise ValueError(f"ssl.experiments.run: evaluate_on must be 'test' or 'validation', got {evaluate_on!r}")
    held_out = ("X_test", "y_test") if evaluate_on == "test" else ("X_val", "y_val")
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
        lab = (split["X_labelled"], split["y_labelled"], split[held_out[0]], split[held_out[1]])

        def probe(encoder: Module) -> float:
            return linear_probe(encoder, *lab, seed=seed, weight_decay=PROBE_WEIGHT_DECAY,
                                augment=digits_augmentation(seed=seed), views=probe_views)

        def end_to_end(encoder: Module) -> float:
            return train_end_to_end(encoder, *lab, steps=end_to_end_steps, seed=seed)

        if job == "baselines":
            record("pixels + linear", probe=probe(Flatten()))
            manual_seed(seed)
            encoder = _encoder()
            record("random encoder", probe=probe(encoder), knn=knn_accuracy(encoder, *lab, k=k))
            for name, make in ((SCRATCH, _encoder), (NARROW_SCRATCH, DigitEncoder)):
                manual_seed(seed)
                t0 = time.perf_counter()
                record(name, end_to_end=end_to_end(make()), seconds=time.perf_counter() - t0)
            continue
        title, module, options = METHODS[job]
        manual_seed(seed)
        encoder = _encoder()
        t0 = time.perf_counter()
        module.pretrain(encoder, split["X_train"], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                        progress=progress, **options)
        seconds = time.perf_counter() - t0
        record(title, probe=probe(encoder), knn=knn_accuracy(encoder, *lab, k=k), seconds=seconds,
               end_to_end=end_to_end(encoder))
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


def results_markdown(rows: dict, seeds: list[int], epochs: int, n_labelled: int, k: int,
                     batch_size: int = BATCH_SIZE, end_to_end_steps: int = END_TO_END_STEPS,
                     probe_views: int = PROBE_VIEWS) -> str:
    """The table of accuracies (mean ± std over seeds, in %) and how it was measured."""
    from benchmarks.report import markdown_table

    scratch = rows.get(SCRATCH, {}).get("end_to_end")
    narrow = rows.get(NARROW_SCRATCH, {}).get("end_to_end")
    table = []
    for name, r in rows.items():
        per_seed = " / ".join(f"{v * 100:.1f}" for v in r["probe"]) if "probe" in r else "-"
        table.append([name, _mean_std(r.get("probe")), per_seed,
                      _paired_gain(r.get("probe"), scratch), _paired_gain(r.get("probe"), narrow),
                      _mean_std(r.get("knn")), _mean_std(r.get("end_to_end")),
                      _paired_gain(r.get("end_to_end"), scratch) if name != SCRATCH else "-",
                      _mean_std(r.get("seconds"), scale=1.0, digits=0)])
    header = ["encoder", "linear probe %", "probe, per seed", "probe vs scratch", "probe vs narrow scratch",
              f"{k}-NN %", "end to end %", "end to end vs scratch", "train s"]
    return (
        f"`python -m minidl ssl --seeds {len(seeds)}` (minidl/ssl/experiments.py). Digits, stratified 75/25 "
        f"split per seed (seeds {', '.join(map(str, seeds))}); {n_labelled} labelled training images (5%, 6-7 per "
        "class); all 1,347 training images (the labelled ones included) used without labels for pretraining; "
        f"450 test images. Encoder of every contender: `DigitEncoder(width={WIDTH}, feature_dim={FEATURE_DIM})` "
        f"(2 conv + BN, a {FEATURE_DIM}-feature linear layer, {_parameter_count(_encoder()) / 1000:.0f}k parameters); "
        "the probe reads its output, before the projection head. "
        f"Pretraining: {epochs} epochs, batch {batch_size}, Adam 2e-3 with cosine decay, `digits_augmentation()` "
        "views; SimCLR and MoCo at temperature 0.5, MoCo's queue 256. **Linear probe**: softmax regression on "
        f"the frozen, standardised features of the labelled images and of {probe_views} augmented copies of them (as "
        "SimCLR's linear evaluation trains on random crops; scratch sees the same augmentations), 300 full-batch "
        f"Adam steps, weight decay {PROBE_WEIGHT_DECAY:g}. **{k}-NN**: cosine similarity to the (unaugmented) "
        "labelled images. "
        f"**End to end**: encoder + linear layer trained on the labelled images only ({end_to_end_steps} full-batch "
        f"Adam steps, weight decay {END_TO_END_WEIGHT_DECAY:g}, the same augmentations): from a random encoder it "
        "is the *scratch* baseline; from a pretrained one, fine-tuning. The narrow-encoder scratch row is the "
        "default `DigitEncoder()` (16 channels, 64 features) trained the same way: a check that widening the "
        "encoder for pretraining does not handicap scratch. *vs scratch* (*vs narrow scratch*): the difference "
        "to the same-encoder (narrow-encoder) scratch on the same split, in points, mean ± std over seeds. "
        "Every choice (pretraining epochs and batch, encoder width, temperature, probe views and weight decay, "
        "scratch steps and weight decay) was made on 300 validation images carved, with their labels, from the "
        "training images of seeds 0 and 1, never on the test images (`python -m minidl ssl --validation`). "
        "Test accuracy in %, mean ± standard deviation over the seeds.\n\n"
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
            baseline = name in (SCRATCH, NARROW_SCRATCH)
            bars.append((name if baseline else f"{name}: fine-tuned end to end", r["end_to_end"],
                         "#999" if baseline else "#9bd"))
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
    """``python -m minidl ssl [--seeds 3] [--epochs 60] [--methods ...] [--validation] [--quick] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl ssl",
        description="Pretrain a digit encoder with SimCLR, MoCo v2, BYOL, SimSiam and SwAV on unlabeled digits, "
                    "then compare linear probes on 5% of the labels with the encoder trained from scratch.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"pretraining epochs per method (default {EPOCHS})")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"pretraining batch size (default {BATCH_SIZE})")
    parser.add_argument("--end-to-end-steps", type=int, default=END_TO_END_STEPS,
                        help="full-batch steps of the scratch baseline and of fine-tuning "
                             f"(default {END_TO_END_STEPS})")
    parser.add_argument("--probe-views", type=int, default=PROBE_VIEWS,
                        help=f"augmented copies of the labelled images in the linear probe's training set "
                             f"(default {PROBE_VIEWS}; 0 for the plain images only)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=DEFAULT_METHODS,
                        help=f"methods to run (default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--validation", action="store_true",
                        help="score on the validation images carved from the training images (never the test "
                             "images): the mode for choosing hyperparameters; prints the table, writes nothing")
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
        if args.methods == DEFAULT_METHODS:
            args.methods = ["simclr", "moco", "byol"]
    if args.validation:
        args.no_write = True
    if args.seeds < 1 or args.epochs < 1 or args.batch_size < 2 or args.end_to_end_steps < 1:
        parser.error("--seeds, --epochs and --end-to-end-steps must be >= 1, --batch-size >= 2")
    if args.probe_views < 0:
        parser.error("--probe-views must be >= 0")
    seeds = list(range(args.seeds))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl the BLAS keeps its own setting
        threadpool_limits = None
    limits = threadpool_limits(args.blas_threads) if threadpool_limits is not None and args.blas_threads > 0 else None
    try:
        rows = run(seeds, args.methods, args.epochs, args.batch_size, end_to_end_steps=args.end_to_end_steps,
                   probe_views=args.probe_views,
                   evaluate_on="validation" if args.validation else "test", progress=not args.quiet)
    finally:
        if limits is not None:
            limits.unregister()
    X, y = load_digits()
    n_labelled = len(labelled_split(X, y, 0.05, 0.25, 0)["y_labelled"])
    body = results_markdown(rows, seeds, args.epochs, n_labelled, 5, batch_size=args.batch_size,
                            end_to_end_steps=args.end_to_end_steps, probe_views=args.probe_views)
    if args.validation:
        body = "VALIDATION images (300 training images held out with their labels), not the test images:\n\n" + body
    print(body)
    if not args.no_write:
        from benchmarks.report import PLOTS, write_section

        plot = PLOTS / "ssl_digits.png"
        _plot(rows, plot)
        path = write_section(SECTION, body + f"\n\n![linear-probe accuracy](results/{plot.name})")
        print(f"\nwrote the '{SECTION}' section of {path} and {plot}")
    return 0

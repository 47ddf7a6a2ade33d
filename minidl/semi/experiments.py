"""``python -m minidl semi``: semi-supervised, K-means and class-incremental experiments on digits.

1. Digits with 5% of the labels. Per seed the 1,797 digits are split, stratified, into 75%
   training and 25% test images, and 5% of each class's training images keep their labels
   (the same rule as ``python -m minidl ssl``, so the two tables share their splits). One
   classifier, an MLP 64-256-10, is trained by each method for the same number of steps:
   supervised only (the labeled 5%, weakly augmented), FixMatch-style pseudo-labelling,
   MixMatch and Mean Teacher (the teacher is evaluated); cluster-then-label (K-means on
   the pixels, no network) and the same MLP trained on all labels are shown for reference.
2. K-means on the digit pixels (1797 x 64), k = 10, n_init = 10: minidl's inertia against
   scikit-learn's KMeans with the same k, n_init and seed.
3. Class-incremental digits: 5 tasks of 2 classes, one MLP; naive fine-tuning against
   replay from a 200-exemplar memory (random and herding selection), with joint training
   on all classes at once as the upper reference. Final average accuracy and forgetting.

Each part writes its section of ``benchmarks/RESULTS.md`` (mean ± std over the seeds) and a
plot under ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .. import creation
from ..autograd import no_grad
from ..backend import manual_seed
from ..data.dataset import _generator
from ..data.datasets import load_digits
from ..functional import cross_entropy
from ..models import MLP
from ..nn import Module
from ..optim import Adam
from .incremental import ExemplarMemory, split_tasks, train_incremental
from .kmeans import KMeans, cluster_then_label
from .mean_teacher import train_mean_teacher
from .mixmatch import train_mixmatch
from .pseudo_label import train_pseudo_label, weak_augment

__all__ = ["digits_split", "train_supervised", "accuracy", "run_semi", "run_kmeans", "run_incremental", "main"]

SEMI_SECTION = "Semi-supervised (digits, 5% labels)"
KMEANS_SECTION = "K-means vs scikit-learn"
INCREMENTAL_SECTION = "Class-incremental digits"


def digits_split(seed: int, label_fraction: float = 0.05, test_fraction: float = 0.25) -> dict[str, np.ndarray]:
    """The digits split for one seed: within each class c (images shuffled by
    ``default_rng(seed)``), round(test_fraction n_c) test images, the rest training images,
    of which max(1, round(label_fraction n_train_c)) keep their labels.

    Returns ``X_train, y_train, X_labeled, y_labeled, X_unlabeled, X_test, y_test``
    ((N, 1, 8, 8) float32 images, int64 labels); ``X_unlabeled`` is the training images
    without labels (those not in ``X_labeled``).
    """
    X, y = load_digits()
    rng = np.random.default_rng(seed)
    test, train, labeled = [], [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * members.size))
        rest = members[n_test:]
        test.append(members[:n_test])
        train.append(rest)
        labeled.append(rest[:max(1, int(round(label_fraction * rest.size)))])
    test, train, labeled = (np.sort(np.concatenate(a)) for a in (test, train, labeled))
    unlabeled = np.setdiff1d(train, labeled)
    return {"X_train": X[train], "y_train": y[train], "X_labeled": X[labeled], "y_labeled": y[labeled],
            "X_unlabeled": X[unlabeled], "X_test": X[test], "y_test": y[test]}


def _mlp(seed: int) -> Module:
    manual_seed(seed)
    return MLP(64, hidden=(256,), num_classes=10)


def accuracy(model: Module, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of X (N, ...) that ``model`` (in eval mode) classifies as y (N,)."""
    model.eval()
    with no_grad():
        pred = model(creation.tensor(X)).numpy().argmax(axis=1)
    model.train()
    return float((pred == y).mean())


def train_supervised(model: Module, X: np.ndarray, y: np.ndarray, *, steps: int = 1000, batch_size: int = 32,
                     lr: float = 3e-3, augment: Callable | None = weak_augment, seed: int | None = None,
                     progress: bool = True) -> Module:
    """The supervised-only baseline: Adam on cross-entropy over minibatches of (X, y) drawn
    at random each step, augmented like the labeled batches of the semi-supervised methods."""
    rng = _generator(seed)
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(steps), desc="supervised", disable=not progress, leave=False):
        idx = rng.choice(len(X), size=batch_size, replace=batch_size > len(X))
        xb = X[idx] if augment is None else augment(X[idx], rng)
        loss = cross_entropy(model(creation.tensor(xb)), creation.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


SEMI_METHODS = ["supervised only (5% labels)", "pseudo-labelling (FixMatch-style)", "MixMatch",
                "Mean Teacher (teacher)", "cluster-then-label (K-means, k=50)", "supervised, all labels (reference)"]


def run_semi(seeds: list[int], steps: int, progress: bool = True) -> dict[str, dict[str, list[float]]]:
    """Test accuracy and seconds of each method in ``SEMI_METHODS`` for each seed."""
    rows: dict[str, dict[str, list[float]]] = {m: {"accuracy": [], "seconds": []} for m in SEMI_METHODS}
    for seed in tqdm(seeds, desc="semi-supervised seeds", disable=not progress):
        d = digits_split(seed)
        Xl, yl, Xu, Xte, yte = d["X_labeled"], d["y_labeled"], d["X_unlabeled"], d["X_test"], d["y_test"]
        runs: dict[str, Callable[[], Any]] = {
            SEMI_METHODS[0]: lambda: train_supervised(_mlp(seed), Xl, yl, steps=steps, seed=seed, progress=progress),
            SEMI_METHODS[1]: lambda: train_pseudo_label(_mlp(seed), Xl, yl, Xu, steps=steps, threshold=0.9,
                                                        seed=seed, progress=progress)[0],
            SEMI_METHODS[2]: lambda: train_mixmatch(_mlp(seed), Xl, yl, Xu, steps=steps, lambda_u=75.0,
                                                    seed=seed, progress=progress)[0],
            SEMI_METHODS[3]: lambda: train_mean_teacher(_mlp(seed), Xl, yl, Xu, steps=steps, consistency=50.0,
                                                        seed=seed, progress=progress)[0],
            SEMI_METHODS[5]: lambda: train_supervised(_mlp(seed), d["X_train"], d["y_train"], steps=steps,
                                                      seed=seed, progress=progress),
        }
        for name, fn in runs.items():
            t0 = time.perf_counter()
            model = fn()
            rows[name]["seconds"].append(time.perf_counter() - t0)
            rows[name]["accuracy"].append(accuracy(model, Xte, yte))
        # cluster-then-label names test images too: they are clustered along with the
        # unlabeled training images (transductively), then scored.
        t0 = time.perf_counter()
        flat = lambda a: a.reshape(len(a), -1).astype(np.float64)  # noqa: E731
        pred = cluster_then_label(np.concatenate([flat(Xu), flat(Xte)]), flat(Xl), yl, n_clusters=50,
                                  n_init=3, random_state=seed)
        rows[SEMI_METHODS[4]]["seconds"].append(time.perf_counter() - t0)
        rows[SEMI_METHODS[4]]["accuracy"].append(float((pred[len(Xu):] == yte).mean()))
    return rows


def run_kmeans(seeds: list[int], n_clusters: int = 10, n_init: int = 10) -> list[dict[str, float]]:
    """minidl's and scikit-learn's KMeans on the digit pixels, per seed: inertia and seconds."""
    from sklearn.cluster import KMeans as SkKMeans

    X, _ = load_digits()
    X = X.reshape(len(X), -1).astype(np.float64)
    out = []
    for seed in seeds:
        t0 = time.perf_counter()
        ours = KMeans(n_clusters, n_init=n_init, random_state=seed).fit(X)
        t1 = time.perf_counter()
        ref = SkKMeans(n_clusters, n_init=n_init, random_state=seed).fit(X)
        t2 = time.perf_counter()
        out.append({"seed": seed, "minidl": ours.inertia_, "sklearn": float(ref.inertia_),
                    "minidl_s": t1 - t0, "sklearn_s": t2 - t1})
    return out


INCREMENTAL_METHODS = ["naive fine-tuning", "replay, random exemplars (200)", "replay, herding exemplars (200)",
                       "joint training, all classes at once (reference)"]


def run_incremental(seeds: list[int], epochs: int, budget: int = 200,
                    progress: bool = True) -> dict[str, dict[str, list]]:
    """Final average accuracy, forgetting and the accuracy curve of each method, per seed."""
    rows: dict[str, dict[str, list]] = {m: {"accuracy": [], "forgetting": [], "curve": []}
                                        for m in INCREMENTAL_METHODS}
    tasks = split_tasks(10, 2)
    for seed in tqdm(seeds, desc="class-incremental seeds", disable=not progress):
        d = digits_split(seed)
        args = (d["X_train"], d["y_train"], d["X_test"], d["y_test"])
        memories = [None, ExemplarMemory(budget, "random", seed=seed), ExemplarMemory(budget, "herding", seed=seed)]
        for name, memory in zip(INCREMENTAL_METHODS, memories):
            model = _mlp(seed)

            def hidden(X: np.ndarray, m: Module = model) -> np.ndarray:    # the 256 ReLU features
                with no_grad():
                    return m[2](m[1](m[0](creation.tensor(X)))).numpy()

            r = train_incremental(model, *args, tasks, memory=memory, epochs=epochs, seed=seed,
                                  feature_fn=hidden, progress=False)
            rows[name]["accuracy"].append(r["average_accuracy"])
            rows[name]["forgetting"].append(r["forgetting"])
            rows[name]["curve"].append(r["average_accuracy_curve"])
        joint = train_incremental(_mlp(seed), *args, [list(range(10))], epochs=epochs, seed=seed, progress=False)
        rows[INCREMENTAL_METHODS[3]]["accuracy"].append(joint["average_accuracy"])
    return rows


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def semi_markdown(rows: dict, seeds: list[int], steps: int, n_labeled: int, command: str) -> str:
    from benchmarks.report import markdown_table

    base = statistics.fmean(rows[SEMI_METHODS[0]]["accuracy"])
    table = []
    for name, r in rows.items():
        gain = "-" if name == SEMI_METHODS[0] else f"{(statistics.fmean(r['accuracy']) - base) * 100:+.1f}"
        per_seed = ", ".join(f"{a * 100:.1f}" for a in r["accuracy"])
        table.append([name, _mean_std(r["accuracy"]), gain, per_seed, _mean_std(r["seconds"], 1.0, 1)])
    header = ["method", "test accuracy %", "vs supervised only (points)", "per seed", "seconds"]
    return (
        f"`{command}` (minidl/semi/experiments.py). Digits, stratified 75/25 split per seed (seeds "
        f"{', '.join(map(str, seeds))}; the same splits as the self-supervised table); {n_labeled} labeled training "
        f"images (5%, ~{n_labeled // 10} per class), the other training images unlabeled; 450 test images. "
        f"Model: MLP 64-256-10; every network is trained for {steps} Adam steps (lr 3e-3), labeled batch 32, "
        "weak augmentation = random shift of up to 1 pixel. Pseudo-labelling: 4x32 unlabeled images per step, "
        "threshold 0.9, strong augmentation = shift 2 + contrast/brightness + noise + 2x2 cutout. MixMatch: K=2, "
        "T=0.5, Beta(0.75, 0.75), lambda_u=75 with a linear ramp-up over 40% of the steps. Mean Teacher: EMA 0.99, "
        "consistency weight 50 (MSE of probabilities) with a sigmoid ramp-up; the teacher is evaluated. "
        "Cluster-then-label: K-means (k=50, n_init=3) on the pixels of the unlabeled and test images with the "
        "labeled ones, each cluster named by its labeled majority. Mean ± standard deviation over the seeds.\n\n"
        + markdown_table(header, table)
    )


def kmeans_markdown(results: list[dict], command: str, n_clusters: int, n_init: int) -> str:
    from benchmarks.report import markdown_table

    table = [[r["seed"], f"{r['minidl']:.2f}", f"{r['sklearn']:.2f}", f"{(r['minidl'] / r['sklearn'] - 1) * 100:+.3f}",
              f"{r['minidl_s']:.2f}", f"{r['sklearn_s']:.2f}"] for r in results]
    ratios = [r["minidl"] / r["sklearn"] - 1 for r in results]
    within = all(abs(x) < 0.01 for x in ratios)
    table.append(["mean", f"{statistics.fmean(r['minidl'] for r in results):.2f}",
                  f"{statistics.fmean(r['sklearn'] for r in results):.2f}",
                  f"{statistics.fmean(ratios) * 100:+.3f} ± {(statistics.stdev(ratios) if len(ratios) > 1 else 0) * 100:.3f}",
                  f"{statistics.fmean(r['minidl_s'] for r in results):.2f}",
                  f"{statistics.fmean(r['sklearn_s'] for r in results):.2f}"])
    header = ["seed", "minidl inertia", "scikit-learn inertia", "difference %", "minidl s", "scikit-learn s"]
    return (
        f"`{command}`: K-means on the 1,797 digit images as 64 pixel values in [0, 1] (float64), "
        f"k = {n_clusters}, n_init = {n_init}, k-means++ seeding, tol 1e-4, the seed as random_state for both. "
        f"Inertia = sum of squared distances to the nearest centre (lower is better). Seconds are wall time "
        "with one BLAS/OpenMP thread each on a shared machine, a rough indication rather than a speed benchmark. "
        f"{'Every seed is within 1% of scikit-learn.' if within else 'NOT within 1% of scikit-learn for every seed.'}"
        "\n\n" + markdown_table(header, table)
    )


def incremental_markdown(rows: dict, seeds: list[int], epochs: int, command: str) -> str:
    from benchmarks.report import markdown_table

    table = []
    for name, r in rows.items():
        curve = "-"
        if r["curve"]:
            mean_curve = np.mean(np.asarray(r["curve"]), axis=0) * 100
            curve = " → ".join(f"{a:.0f}" for a in mean_curve)
        table.append([name, _mean_std(r["accuracy"]), _mean_std(r["forgetting"]) if r["forgetting"] else "-", curve])
    header = ["method", "final average accuracy %", "forgetting (points)", "average accuracy after each task %"]
    return (
        f"`{command}`: the training images of the 75/25 digits split per seed (seeds "
        f"{', '.join(map(str, seeds))}) arrive as 5 tasks of 2 classes ({{0,1}}, {{2,3}}, ..., {{8,9}}); one MLP "
        f"64-256-10 with a single 10-way head, {epochs} epochs per task (batch 32, Adam 1e-3, fresh optimizer per "
        "task), no augmentation. After each task it is tested on every class seen so far (predicting among them). "
        "Replay mixes a memory of 200 stored training images (200 / classes seen per class, herding on the "
        "network's hidden features or random) into every task's data. Final average accuracy = mean over the 5 "
        "tasks of the test accuracy after the last task; forgetting = mean over tasks 1-4 of (best accuracy "
        "on that task before the last task - accuracy after it). Mean ± standard deviation over the seeds.\n\n"
        + markdown_table(header, table)
    )


def _plot_semi(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    means = [statistics.fmean(rows[n]["accuracy"]) * 100 for n in names]
    stds = [statistics.stdev(rows[n]["accuracy"]) * 100 if len(rows[n]["accuracy"]) > 1 else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    colors = ["#999"] + ["#36c"] * 3 + ["#c93", "#999"]
    ax.barh(range(len(names)), means, xerr=stds, color=colors[:len(names)])
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(max(min(means) - 10, 0), 100)
    ax.set_xlabel("test accuracy %")
    ax.set_title("Digits with 5% of the labels (MLP 64-256-10)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_incremental(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in rows.items():
        if r["curve"]:
            curves = np.asarray(r["curve"]) * 100
            ax.errorbar(np.arange(1, curves.shape[1] + 1), curves.mean(axis=0),
                        yerr=curves.std(axis=0, ddof=1) if len(curves) > 1 else None, marker="o", label=name,
                        capsize=3)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("average accuracy over seen tasks %")
    ax.set_xticks(range(1, 6))
    ax.set_title("Class-incremental digits, 5 tasks of 2 classes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl semi [--seeds 3] [--quick] [--parts semi kmeans incremental] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl semi",
        description="Semi-supervised learning on digits with 5% of the labels (pseudo-labelling, MixMatch, "
                    "Mean Teacher vs supervised only), K-means vs scikit-learn, and class-incremental digits "
                    "with and without replay. Writes three sections of benchmarks/RESULTS.md.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (~2 minutes): 400 steps, 5 epochs per task, n_init 3; prints the "
                             "tables, writes nothing")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per method for part 1 (default 2000; --quick 400)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per task for part 3 (default 15; --quick 5)")
    parser.add_argument("--parts", nargs="+", choices=["semi", "kmeans", "incremental"],
                        default=["semi", "kmeans", "incremental"], help="which experiments to run (default all)")
    parser.add_argument("--no-write", action="store_true", help="print the tables without updating RESULTS.md")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (default 1: the matrices are small and extra threads on a shared "
                             "machine cost more than they give; 0 leaves the BLAS setting alone)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else (400 if args.quick else 2000)
    epochs = args.epochs if args.epochs is not None else (5 if args.quick else 15)
    n_init = 3 if args.quick else 10
    if args.quick:
        args.no_write = True
    if args.seeds < 1 or steps < 1 or epochs < 1:
        parser.error("--seeds, --steps and --epochs must be >= 1")
    seeds = list(range(args.seeds))
    command = "python -m minidl semi" + (" --quick" if args.quick else "") + f" --seeds {args.seeds}"
    if args.steps is not None:
        command += f" --steps {steps}"
    if args.epochs is not None:
        command += f" --epochs {epochs}"
    progress = not args.quiet
    if "kmeans" in args.parts:
        # Load scikit-learn's OpenMP runtime now: a thread limit set below covers only the
        # libraries already loaded, and an unlimited OpenMP pool on a busy machine made
        # scikit-learn's KMeans 30x slower than it is.
        import sklearn.cluster  # noqa: F401
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl the BLAS keeps its own setting
        threadpool_limits = None
    limits = threadpool_limits(args.blas_threads) if threadpool_limits is not None and args.blas_threads > 0 else None
    sections: list[tuple[str, str, str | None, Callable | None]] = []
    try:
        if "semi" in args.parts:
            rows = run_semi(seeds, steps, progress)
            n_labeled = len(digits_split(0)["y_labeled"])
            sections.append((SEMI_SECTION, semi_markdown(rows, seeds, steps, n_labeled, command), "semi_digits.png",
                             lambda p, r=rows: _plot_semi(r, p)))
        if "kmeans" in args.parts:
            km = run_kmeans(seeds, n_init=n_init)
            sections.append((KMEANS_SECTION, kmeans_markdown(km, command, 10, n_init), None, None))
        if "incremental" in args.parts:
            inc = run_incremental(seeds, epochs, progress=progress)
            sections.append((INCREMENTAL_SECTION, incremental_markdown(inc, seeds, epochs, command),
                             "incremental_digits.png", lambda p, r=inc: _plot_incremental(r, p)))
    finally:
        if limits is not None:
            limits.unregister()
    for title, body, plot_name, plot in sections:
        print(f"## {title}\n\n{body}\n")
    if not args.no_write:
        from benchmarks.report import PLOTS, write_section

        for title, body, plot_name, plot in sections:
            if plot is not None:
                plot(PLOTS / plot_name)
                body += f"\n\n![{title}](results/{plot_name})"
            path = write_section(title, body)
            print(f"wrote the '{title}' section of {path}" + (f" and {PLOTS / plot_name}" if plot else ""))
    return 0

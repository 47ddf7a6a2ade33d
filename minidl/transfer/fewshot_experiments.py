"""Few-shot digits with prototypical networks, and Deep CORAL on shifted digits.

1. Prototypical networks. The digits are split by class: an encoder is trained episodically
   (5-way 5-shot, 15 queries per class) on digits 0-4 only, then tested on 5-way 5-shot and
   5-way 1-shot episodes of digits 5-9, which it never saw (and the reverse split). The
   encoder is a small CNN (two 3x3 conv-BN-ReLU-maxpool blocks, 32 channels, 128-d output).
   References with the same episodes: nearest prototype on the raw pixels, the same CNN with
   random weights, and the same CNN trained as an ordinary classifier of the training
   classes (its features then used for prototypes).
2. Deep CORAL. Source: half of the digits, labelled. Target: the other half, shifted (rotated
   by 90 degrees, or inverted, x -> 1 - x), whose labels are never used for training; half of
   the target images are the unlabelled training batches, the other half the test set. An
   MLP 64-128-64 with a linear head is trained with and without the CORAL term.

Each part writes its section of ``benchmarks/RESULTS.md`` (mean ± std over seeds).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from tqdm.auto import tqdm

from .. import creation, nn
from ..backend import manual_seed
from ..data.datasets import load_digits
from ..functional.loss import cross_entropy
from ..optim import Adam
from .coral import predict, train_deep_coral
from .protonet import evaluate_protonet, train_protonet

__all__ = ["digit_encoder", "shift_domain", "run_protonet", "run_coral", "main"]

PROTONET_SECTION = "Prototypical networks"
CORAL_SECTION = "Deep CORAL"
SPLITS = {"train 0-4, test 5-9": (list(range(5)), list(range(5, 10))),
          "train 5-9, test 0-4": (list(range(5, 10)), list(range(5)))}
PROTO_METHODS = ["raw pixels (no training)", "CNN, random weights", "CNN, classifier of the training classes",
                 "CNN, prototypical network (episodic)"]


def digit_encoder() -> nn.Module:
    """The CNN embedding for 8x8 digits: [conv3x3(32)-BN-ReLU-maxpool2] x 2, flattened:
    (N, 1, 8, 8) -> (N, 128)."""
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten())


def _train_classifier_encoder(encoder: nn.Module, X: np.ndarray, y: np.ndarray, steps: int, seed: int) -> None:
    """Pretrain ``encoder`` with a linear head as a classifier of the classes in y."""
    classes = np.unique(y)
    target = np.searchsorted(classes, y)
    head = nn.Linear(128, len(classes))
    opt = Adam(list(encoder.parameters()) + list(head.parameters()), lr=1e-3)
    rng = np.random.default_rng(seed)
    encoder.train()
    for _ in range(steps):
        idx = rng.choice(len(X), size=100, replace=False)
        loss = cross_entropy(head(encoder(creation.tensor(X[idx]))), creation.tensor(target[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def run_protonet(seeds: list[int], episodes: int = 150, eval_episodes: int = 300,
                 progress: bool = True) -> dict:
    """Accuracy (5-way 5-shot and 1-shot) per split, method and seed, and training seconds."""
    X, y = load_digits()
    out: dict = {split: {m: {"5-shot": [], "1-shot": []} for m in PROTO_METHODS} for split in SPLITS}
    out["seconds"] = []
    out["half_widths"] = []
    jobs = [(split, seed) for split in SPLITS for seed in seeds]
    for split, seed in tqdm(jobs, desc="prototypical networks", disable=not progress):
        train_classes, test_classes = SPLITS[split]
        tr, te = np.isin(y, train_classes), np.isin(y, test_classes)
        manual_seed(seed)
        random_cnn = digit_encoder()
        manual_seed(seed)
        classifier_cnn = digit_encoder()
        _train_classifier_encoder(classifier_cnn, X[tr], y[tr], episodes, seed)
        manual_seed(seed)
        proto_cnn = digit_encoder()
        t0 = time.perf_counter()
        train_protonet(proto_cnn, X[tr], y[tr], episodes=episodes, n_way=5, k_shot=5, q_query=15, seed=seed,
                       progress=False)
        out["seconds"].append(time.perf_counter() - t0)
        for method, encoder in zip(PROTO_METHODS, (None, random_cnn, classifier_cnn, proto_cnn)):
            for shots in (5, 1):
                acc, half_width = evaluate_protonet(encoder, X[te], y[te], episodes=eval_episodes, n_way=5,
                                                    k_shot=shots, q_query=15, seed=1000 + seed)
                out[split][method][f"{shots}-shot"].append(acc)
                out["half_widths"].append(half_width)
    return out


def _ms(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def protonet_markdown(r: dict, seeds: list[int], episodes: int, eval_episodes: int, command: str) -> str:
    from benchmarks.report import markdown_table

    rows = [[split, m, _ms(r[split][m]["5-shot"]), _ms(r[split][m]["1-shot"])] for split in SPLITS
            for m in PROTO_METHODS]
    gains = []
    for split in SPLITS:
        for shots in ("5-shot", "1-shot"):
            gain = (statistics.fmean(r[split][PROTO_METHODS[3]][shots]) - statistics.fmean(r[split][PROTO_METHODS[0]][shots]))
            gains.append(f"{split}, {shots}: {gain * 100:+.1f}")
    return (
        f"`{command}` (minidl/transfer/fewshot_experiments.py). Digits (8x8) split by class; the encoder never "
        f"sees the test classes. Encoder: CNN [conv3x3(32)-BN-ReLU-maxpool] x 2 → 128-d. Prototypical network: "
        f"{episodes} episodes of 5-way 5-shot with 15 queries per class (Adam 1e-3, halved every quarter, "
        f"{statistics.fmean(r['seconds']):.1f} s per run). Classifier reference: the same CNN with a linear head "
        f"trained by cross-entropy on the training classes for {episodes} steps of 100 images, its 128-d "
        f"features then used for prototypes. Test: {eval_episodes} random 5-way episodes of the held-out "
        "classes with 15 queries per class; query accuracy %, mean ± std over seeds "
        f"{', '.join(map(str, seeds))} (the 95% interval of one seed's mean over {eval_episodes} episodes is "
        f"± {statistics.fmean(r['half_widths']) * 100:.1f} points on average). Prototypical network minus raw pixels, in points: " + "; ".join(gains) + ". "
        "Nearest-prototype on the raw 8x8 pixels is already a strong few-shot classifier here, and with only "
        "five training classes the learned embedding has little to generalise from: read the rows against "
        "each other, not against published results on larger benchmarks.\n\n"
        + markdown_table(["split", "embedding", "5-way 5-shot %", "5-way 1-shot %"], rows)
    )


def shift_domain(X: np.ndarray, kind: str) -> np.ndarray:
    """The target domain of (N, 1, 8, 8) images in [0, 1]: ``"rotate"`` (90 degrees
    counter-clockwise) or ``"invert"`` (1 - x)."""
    if kind == "rotate":
        return np.ascontiguousarray(np.rot90(X, 1, axes=(2, 3)))
    if kind == "invert":
        return (1.0 - X).astype(X.dtype)
    raise ValueError(f"shift_domain: kind must be 'rotate' or 'invert', got {kind!r}")


def _coral_model() -> tuple[nn.Module, nn.Module]:
    features = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
    return features, nn.Linear(64, 10)


CORAL_RUNS = [  # (target domain, label, coral weight, aligned layer, trained on labelled target?)
    ("rotate", "source only (lambda = 0)", 0.0, "logits", False),
    ("rotate", "Deep CORAL on the class scores (lambda = 10)", 10.0, "logits", False),
    ("rotate", "Deep CORAL on the 64-d features (lambda = 10)", 10.0, "features", False),
    ("rotate", "trained on labelled target images (reference)", 0.0, "logits", True),
    ("invert", "source only (lambda = 0)", 0.0, "logits", False),
    ("invert", "Deep CORAL on the 64-d features (lambda = 10)", 10.0, "features", False),
]


def run_coral(seeds: list[int], steps: int = 600, progress: bool = True) -> dict:
    """Target and source test accuracy of each run in ``CORAL_RUNS`` per seed."""
    X, y = load_digits()
    out = {(domain, label): {"target": [], "source": []} for domain, label, *_ in CORAL_RUNS}
    jobs = [(run, seed) for seed in seeds for run in CORAL_RUNS]
    for (domain, label, weight, align, oracle), seed in tqdm(jobs, desc="Deep CORAL", disable=not progress):
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(X))
        src, tgt = perm[:len(X) // 2], perm[len(X) // 2:]
        tgt_train, tgt_test = tgt[:len(tgt) // 2], tgt[len(tgt) // 2:]
        X_t = shift_domain(X, domain)
        manual_seed(seed)
        features, classifier = _coral_model()
        if oracle:
            train_deep_coral(features, classifier, X_t[tgt_train], y[tgt_train], X_t[tgt_train], coral_weight=0.0,
                             steps=steps, seed=seed, progress=False)
        else:
            train_deep_coral(features, classifier, X[src], y[src], X_t[tgt_train], coral_weight=weight, align=align,
                             steps=steps, seed=seed, progress=False)
        out[(domain, label)]["target"].append(float((predict(features, classifier, X_t[tgt_test]) == y[tgt_test]).mean()))
        out[(domain, label)]["source"].append(float((predict(features, classifier, X[tgt_test]) == y[tgt_test]).mean()))
    return out


def coral_markdown(r: dict, seeds: list[int], steps: int, command: str) -> str:
    from benchmarks.report import markdown_table

    names = {"rotate": "rotated 90°", "invert": "inverted (1 − x)"}
    rows = [[names[domain], label, _ms(v["target"]), _ms(v["source"])] for (domain, label), v in r.items()]
    return (
        f"`{command}` (minidl/transfer/fewshot_experiments.py). Per seed ({', '.join(map(str, seeds))}) the "
        "digits are halved at random: source = one half with labels; target = the other half shifted, of which "
        "half are the unlabelled target training images and half the test images. Model: MLP 64 → 128 → 64 "
        f"(ReLU) features + linear head; {steps} Adam steps (lr 1e-3) on batches of 64 source and 64 target "
        "images; loss = cross-entropy on the source batch + lambda · CORAL (||C_s − C_t||²_F / 4d²) between the "
        "two batches' class scores (the layer the paper aligns) or features. Accuracy % on the target test "
        "images, and on the same images unshifted (source domain). Mean ± std over the seeds. Inversion "
        "leaves the input covariance unchanged (Cov(1 − x) = Cov(x)) and, for a network that is nearly linear "
        "in its input, reverses the order of the class scores, so source-only accuracy on inverted digits falls "
        "far below chance; second-order alignment cannot undo that.\n\n"
        + markdown_table(["target domain", "training", "target accuracy %", "source-domain accuracy %"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl fewshot [--seeds 3] [--parts protonet coral] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl fewshot",
        description="Prototypical networks (5-way 5-shot and 1-shot digits on classes held out from training) "
                    "and Deep CORAL (digits to rotated or inverted digits, with and without the CORAL term). "
                    "Writes the 'Prototypical networks' and 'Deep CORAL' sections of benchmarks/RESULTS.md.")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--episodes", type=int, default=150, help="training episodes/steps for part 1 (default 150)")
    parser.add_argument("--eval-episodes", type=int, default=300, help="test episodes per setting (default 300)")
    parser.add_argument("--steps", type=int, default=600, help="training steps per Deep CORAL run (default 600)")
    parser.add_argument("--parts", nargs="+", choices=["protonet", "coral"], default=["protonet", "coral"],
                        help="which experiments to run (default both)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if min(args.seeds, args.episodes, args.eval_episodes, args.steps) < 1:
        parser.error("--seeds, --episodes, --eval-episodes and --steps must be >= 1")
    seeds = list(range(args.seeds))
    sections = []
    if "protonet" in args.parts:
        r = run_protonet(seeds, args.episodes, args.eval_episodes, progress=not args.quiet)
        command = (f"python -m minidl fewshot --parts protonet --seeds {args.seeds} --episodes {args.episodes} "
                   f"--eval-episodes {args.eval_episodes}")
        sections.append((PROTONET_SECTION, protonet_markdown(r, seeds, args.episodes, args.eval_episodes, command)))
    if "coral" in args.parts:
        r = run_coral(seeds, args.steps, progress=not args.quiet)
        command = f"python -m minidl fewshot --parts coral --seeds {args.seeds} --steps {args.steps}"
        sections.append((CORAL_SECTION, coral_markdown(r, seeds, args.steps, command)))
    for title, body in sections:
        print(f"## {title}\n\n{body}\n")
    if not args.no_write:
        from benchmarks.report import write_section

        for title, body in sections:
            print(f"wrote the '{title}' section of {write_section(title, body)}")
    return 0

"""``python -m minidl transfer``: what pretraining buys on a new task with few labels.

1. Digits CNN. A ResNet-8 (widths 8-16-32) is pretrained on the digit classes 0-4 (80% of
   their images; the other 20% measure the source accuracy). The new task is the classes
   5-9 with a few labeled images per class (3 and 10 by default); every remaining image of
   5-9 is a test image. Four ways to learn it, each for the same number of steps (Adam,
   full batch of the labeled images):

   - from scratch: a fresh ResNet-8 with a 5-way head;
   - feature extraction: the pretrained backbone frozen (batch norm in eval mode), its
     pooled features read by ``FeatureExtractor``, a new Linear head trained on them;
   - full fine-tuning: the pretrained network with a new head, every layer trained at one
     learning rate;
   - fine-tuning with discriminative learning rates (x0.5 per stage towards the input,
     ``param_groups_by_depth``) and gradual unfreezing (``GradualUnfreezing``, one more
     stage every ``steps / 10`` steps).

2. Transformer on text. Docstrings of Python's standard library (read with ``ast``, the
   real offline corpus on every machine) plus the language reference topics of
   ``pydoc_data``. The task: tell which of six packages (asyncio, email, logging,
   tkinter, unittest, xml) a docstring comes from, from its first 32 words, with 40
   labeled docstrings per package; 100 others per package (the same for every seed) are
   the test set. A 2-layer Transformer encoder is pretrained on masked-token prediction
   over every other docstring and topic (never the test docstrings), then fine-tuned;
   against the same network trained from scratch, a frozen pretrained encoder with a new
   head, and a bag-of-words logistic regression (scikit-learn) for reference.

Both write their sections of ``benchmarks/RESULTS.md`` (mean ± std over the seeds).
"""
from __future__ import annotations

import argparse
import ast
import os
import statistics
import sysconfig
import time
from collections import Counter
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .. import creation
from ..autograd import no_grad
from ..backend import manual_seed
from ..data.datasets import load_digits
from ..embedding.word2vec import tokenize
from ..functional import cross_entropy
from ..models import MaskedTokenModel, TransformerClassifier, mask_tokens, resnet
from ..nn import Linear, Module
from ..optim import Adam
from .finetune import FeatureExtractor, GradualUnfreezing, freeze, param_groups_by_depth, replace_head

__all__ = ["digits_transfer_split", "train_steps", "accuracy", "run_cnn", "docstring_corpus", "Vocab",
           "run_transformer", "main"]

CNN_SECTION = "Transfer learning (digits CNN)"
TEXT_SECTION = "Transformer pretraining"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
CNN_METHODS = ["from scratch", "feature extraction (frozen backbone + new head)", "full fine-tuning",
               "fine-tuning, discriminative lrs + gradual unfreezing"]
STAGES = ["conv1", "bn1", "layer1", "layer2", "layer3", "fc"]


# ---------------------------------------------------------------------------------- shared
def _as_input(x: np.ndarray) -> Any:
    """Images and features go in as float Tensors; token ids stay integer arrays."""
    return creation.tensor(x) if x.dtype.kind == "f" else x


def train_steps(model: Module, X: Any, y: np.ndarray, steps: int, params: Any, lr: float, batch_size: int | None = None,
                seed: int = 0, every_step: Callable[[int], None] | None = None, progress: bool = False,
                desc: str = "train") -> Module:
    """``steps`` Adam steps on cross-entropy over minibatches of (X, y) (the full set when
    ``batch_size`` is None). ``params`` are Tensors or parameter groups; ``every_step(i)``
    runs after step i (e.g. a gradual-unfreezing schedule)."""
    rng = np.random.default_rng(seed)
    opt = Adam(params, lr=lr)
    for i in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        if batch_size is None or batch_size >= len(y):
            xb, yb = X, y
        else:
            idx = rng.choice(len(y), size=batch_size, replace=False)
            xb, yb = X[idx], y[idx]
        loss = cross_entropy(model(_as_input(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if every_step is not None:
            every_step(i)
    return model


def accuracy(model: Module, X: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of X that ``model`` (in eval mode, no graph) classifies as y."""
    was_training = model.training
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(y), batch_size):
            out = model(_as_input(X[start:start + batch_size]))
            correct += int((out.numpy().argmax(axis=1) == y[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def _mean_std(values: list[float], scale: float = 100.0) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


# ---------------------------------------------------------------------------------- digits CNN
def digits_transfer_split(seed: int, labels_per_class: int = 10,
                          source_test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """The two digit tasks for one seed (shuffled per class by ``default_rng(seed)``).

    Source (classes 0-4): ``Xs, ys`` training and ``Xs_test, ys_test`` (``source_test_fraction``).
    Target (classes 5-9, relabelled 0-4): ``labels_per_class`` labeled images per class in
    ``Xt, yt``, all others in ``Xt_test, yt_test``. Images (N, 1, 8, 8) float32.
    """
    X, y = load_digits()
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {k: [] for k in ("s", "s_test", "t", "t_test")}
    for c in SOURCE_CLASSES:
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(source_test_fraction * members.size))
        parts["s_test"].append(members[:n_test])
        parts["s"].append(members[n_test:])
    for c in TARGET_CLASSES:
        members = rng.permutation(np.flatnonzero(y == c))
        if labels_per_class >= members.size:
            raise ValueError(f"digits_transfer_split: {labels_per_class} labels per class leave no test image "
                             f"of class {c} ({members.size} images)")
        parts["t"].append(members[:labels_per_class])
        parts["t_test"].append(members[labels_per_class:])
    out = {}
    for key, name in (("s", "s"), ("s_test", "s_test"), ("t", "t"), ("t_test", "t_test")):
        idx = np.sort(np.concatenate(parts[key]))
        labels = y[idx] - (5 if key.startswith("t") else 0)
        out["X" + name] = X[idx]
        out["y" + name] = labels
    return out


def _cnn(seed: int, num_classes: int = 5) -> Module:
    manual_seed(seed)
    return resnet(8, width=8, in_channels=1, num_classes=num_classes)


def run_cnn(seeds: list[int], budgets: tuple[int, ...] = (3, 10), pretrain_epochs: int = 15, steps: int = 200,
            lr: float = 3e-3, progress: bool = True) -> dict[str, Any]:
    """Target test accuracy of each method in ``CNN_METHODS`` per label budget (labeled
    images per target class) and seed, and the pretrained network's accuracy on its own
    held-out source images. One pretraining per seed serves every budget."""
    rows = {b: {m: [] for m in CNN_METHODS} for b in budgets}
    seconds: dict[str, list[float]] = {m: [] for m in CNN_METHODS}
    source_acc, pretrain_seconds, n_test = [], [], {}
    for seed in tqdm(seeds, desc="digits transfer seeds", disable=not progress):
        d = digits_transfer_split(seed, budgets[0])          # the source split depends on the seed only
        t0 = time.perf_counter()
        pretrained = _cnn(seed)
        n_source = len(d["ys"])
        train_steps(pretrained, d["Xs"], d["ys"], pretrain_epochs * (n_source // 64), pretrained.parameters(), lr,
                    batch_size=64, seed=seed, progress=progress, desc="pretrain 0-4")
        pretrain_seconds.append(time.perf_counter() - t0)
        source_acc.append(accuracy(pretrained, d["Xs_test"], d["ys_test"]))
        state = pretrained.state_dict()
        for budget in budgets:
            d = digits_transfer_split(seed, budget)
            Xt, yt, Xte, yte = d["Xt"], d["yt"], d["Xt_test"], d["yt_test"]
            n_test[budget] = len(yte)

            def from_pretrained() -> Module:
                model = _cnn(seed + 1000)
                model.load_state_dict(state)
                manual_seed(seed + 2000)
                replace_head(model, "fc", Linear(model.feature_dim, len(TARGET_CLASSES)))
                return model

            def scratch() -> Module:
                model = _cnn(seed + 3000)
                return train_steps(model, Xt, yt, steps, model.parameters(), lr, seed=seed)

            def feature_extraction() -> Module:
                model = from_pretrained()
                freeze(model, STAGES[:-1])
                model.eval()                                   # frozen batch-norm statistics too
                with FeatureExtractor(model, ["avgpool"], detach=True) as fe, no_grad():
                    feats = fe(creation.tensor(Xt))["avgpool"].numpy().reshape(len(yt), -1)
                train_steps(model.fc, feats, yt, steps, model.fc.parameters(), 1e-2, seed=seed)
                return model

            def full_finetune() -> Module:
                model = from_pretrained()
                return train_steps(model, Xt, yt, steps, model.parameters(), lr, seed=seed)

            def discriminative() -> Module:
                model = from_pretrained()
                groups = param_groups_by_depth(model, base_lr=lr, decay=0.5, blocks=STAGES)
                schedule = GradualUnfreezing(model, blocks=STAGES, every=max(1, steps // 10))
                return train_steps(model, Xt, yt, steps, groups, lr, seed=seed, every_step=lambda i: schedule.step())

            for name, fn in zip(CNN_METHODS, (scratch, feature_extraction, full_finetune, discriminative)):
                t0 = time.perf_counter()
                model = fn()
                if budget == budgets[-1]:
                    seconds[name].append(time.perf_counter() - t0)
                rows[budget][name].append(accuracy(model, Xte, yte))
    return {"accuracy": rows, "seconds": seconds, "source_accuracy": source_acc, "pretrain_seconds": pretrain_seconds,
            "n_test": n_test}


def cnn_markdown(r: dict[str, Any], seeds: list[int], budgets: tuple[int, ...], pretrain_epochs: int, steps: int,
                 command: str) -> str:
    """The digits transfer section: one row per method, a column per label budget, mean ± std over the seeds."""
    from benchmarks.report import markdown_table

    table = [[name] + [_mean_std(r["accuracy"][b][name]) for b in budgets]
             + [f"{statistics.fmean(r['seconds'][name]):.1f}"] for name in CNN_METHODS]
    header = ["method (classes 5-9)"] + [f"{b} labels/class: test acc. %" for b in budgets] + \
             [f"seconds ({budgets[-1]} labels)"]
    n = len(seeds)
    tests = ", ".join(f"{r['n_test'][b]}" for b in budgets)
    return (
        f"`{command}`. ResNet-8 (basic blocks, widths 8-16-32, BatchNorm; `minidl.models.resnet(8, width=8)`) "
        f"pretrained on the digit classes 0-4 ({pretrain_epochs} epochs, Adam 3e-3, batch 64), then taught the "
        f"classes 5-9 from **{' or '.join(str(b) for b in budgets)} labeled images per class**; test accuracy on "
        f"all the other images of 5-9 ({tests}), mean ± std over {n} seed{'s' * (n > 1)} (each seed: its own "
        f"split, pretraining and initialisation). Every method: {steps} Adam steps on the full labeled batch, "
        "no augmentation; lr 3e-3 (the feature-extraction head 1e-2).\n\n"
        + markdown_table(header, table)
        + f"\n\nThe pretrained network scores {_mean_std(r['source_accuracy'])}% on held-out images of its own "
        f"classes 0-4 (pretraining took {statistics.fmean(r['pretrain_seconds']):.0f} s per seed). Feature "
        "extraction trains only the new Linear head on the frozen backbone's pooled features "
        "(`FeatureExtractor(model, ['avgpool'])`, batch norm in eval mode); the last row uses "
        "`param_groups_by_depth` (x0.5 per stage towards the input) and `GradualUnfreezing` (head first, one "
        f"more stage every {max(1, steps // 10)} steps). Full fine-tuning minus scratch, in points: "
        + ", ".join(f"{_gain(r['accuracy'][b], CNN_METHODS[2], CNN_METHODS[0])} with {b} labels/class" for b in budgets)
        + "."
    )


def _gain(rows: dict[str, list[float]], method: str, baseline: str) -> str:
    """Mean paired difference (method - baseline) over the seeds, in percentage points."""
    diffs = [100 * (a - b) for a, b in zip(rows[method], rows[baseline])]
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return f"{statistics.fmean(diffs):+.1f} ± {std:.1f}"


# ---------------------------------------------------------------------------------- text
TOPICS = ("asyncio", "email", "logging", "tkinter", "unittest", "xml")
_SKIP = {"test", "tests", "site-packages", "dist-packages", "__pycache__", "pydoc_data", "turtledemo", "ensurepip"}


def docstring_corpus(packages: tuple[str, ...] | None = None,
                     language_topics: bool = True) -> list[tuple[str, list[str]]]:
    """(top-level package or module, tokens) for every docstring of every module, class and
    function in the standard library's sources (read with ``ast``; nothing imported), in
    sorted file order, then ("pydoc_data", tokens) for each language-reference topic.
    ``packages`` keeps only those top-level names (all when None)."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("config-"))
        files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    out = []
    for path in sorted(files):
        package = os.path.relpath(path, root).split(os.sep)[0].removesuffix(".py")
        if packages is not None and package not in packages:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                tokens = tokenize(doc) if doc else []
                if tokens:
                    out.append((package, tokens))
    topics = {}
    if language_topics:
        try:
            from pydoc_data.topics import topics
        except ImportError:   # some minimal builds leave pydoc_data out
            pass
    out += [("pydoc_data", tokenize(topics[name])) for name in sorted(topics)]
    return [(p, t) for p, t in out if t]


class Vocab:
    """Word ids: 0 padding, 1 unknown, 2 mask, then the ``size - 3`` most frequent words
    seen at least ``min_count`` times (ties alphabetical)."""

    PAD, UNK, MASK = 0, 1, 2

    def __init__(self, texts: list[list[str]], size: int = 3000, min_count: int = 3) -> None:
        counts = Counter(w for t in texts for w in t)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        self.words = ["<pad>", "<unk>", "<mask>"] + words[:size - 3]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[list[str]], length: int) -> np.ndarray:
        """(len(texts), length) ids: each text's first ``length`` words, padded with 0."""
        out = np.zeros((len(texts), length), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [self.index.get(w, self.UNK) for w in t[:length]]
            out[i, :len(ids)] = ids
        return out


def _windows(texts: list[list[str]], length: int) -> list[list[str]]:
    """Each text cut into consecutive pieces of ``length`` words (the last may be shorter;
    pieces under 4 words dropped)."""
    return [t[i:i + length] for t in texts for i in range(0, len(t), length) if len(t[i:i + length]) >= 4]


def text_task(seed: int, corpus: list[tuple[str, list[str]]], labels_per_class: int = 40, test_per_class: int = 100,
              min_words: int = 4, test_seed: int = 12345) -> dict[str, Any]:
    """The docstring-topic task: per topic in ``TOPICS``, its docstrings of at least
    ``min_words`` words; ``test_per_class`` of them (drawn by ``test_seed``, the same for
    every seed) are the test set, and ``labels_per_class`` of the rest (drawn by ``seed``)
    are labeled. ``pretrain`` holds every corpus text except the test docstrings."""
    test_rng, rng = np.random.default_rng(test_seed), np.random.default_rng(seed)
    train, test, test_ids = [], [], set()
    for c, topic in enumerate(TOPICS):
        members = np.array([i for i, (p, t) in enumerate(corpus) if p == topic and len(t) >= min_words])
        if members.size < test_per_class + labels_per_class:
            raise ValueError(f"text_task: {topic} has {members.size} docstrings, fewer than "
                             f"{test_per_class} test + {labels_per_class} labeled")
        members = members[test_rng.permutation(members.size)]
        picked, rest = members[:test_per_class], members[test_per_class:]
        test += [(int(i), c) for i in picked]
        test_ids.update(int(i) for i in picked)
        train += [(int(i), c) for i in rest[rng.permutation(rest.size)[:labels_per_class]]]
    pretrain = [t for i, (_, t) in enumerate(corpus) if i not in test_ids]
    return {"train": [(corpus[i][1], c) for i, c in train], "test": [(corpus[i][1], c) for i, c in test],
            "pretrain": pretrain}


def _text_model(vocab_size: int, seed: int, max_len: int) -> TransformerClassifier:
    manual_seed(seed)
    return TransformerClassifier(vocab_size, len(TOPICS), d_model=64, nhead=4, num_layers=2, dim_feedforward=128,
                                 max_len=max_len, dropout=0.1, pooling="mean")


def _masked_accuracy(mlm: MaskedTokenModel, ids: np.ndarray, vocab_size: int, seed: int) -> float:
    """Accuracy of the masked-token predictions on ``ids`` (fixed masking by ``seed``)."""
    inputs, targets = mask_tokens(ids, Vocab.MASK, vocab_size, np.random.default_rng(seed), special_ids=(Vocab.UNK,))
    mlm.eval()
    with no_grad():
        pred = mlm(inputs).numpy().argmax(axis=-1)
    mlm.train()
    hidden = targets != -100
    return float((pred[hidden] == targets[hidden]).mean())


TEXT_METHODS = ["from scratch", "frozen pretrained encoder + new head", "fine-tuned pretrained encoder",
                "bag of words + logistic regression (scikit-learn)"]


def run_transformer(seeds: list[int], pretrain_steps: int = 1200, steps: int = 300, max_len: int = 32,
                    labels_per_class: int = 40, test_per_class: int = 100,
                    corpus: list[tuple[str, list[str]]] | None = None, progress: bool = True) -> dict[str, Any]:
    """Pretrain once (every text but the fixed test docstrings), then per seed (its own
    labeled docstrings and initialisation) compare ``TEXT_METHODS`` on the test set."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    corpus = docstring_corpus() if corpus is None else corpus
    task0 = text_task(seeds[0], corpus, labels_per_class, test_per_class)
    vocab = Vocab(task0["pretrain"])
    V = len(vocab)
    windows = vocab.encode(_windows(task0["pretrain"], max_len), max_len)
    rng = np.random.default_rng(seeds[0])
    order = rng.permutation(len(windows))
    n_held = min(512, len(windows) // 5)
    held_out, windows = windows[order[:n_held]], windows[order[n_held:]]

    t0 = time.perf_counter()
    backbone = _text_model(V, seeds[0], max_len)
    mlm = MaskedTokenModel(backbone)
    mlm_before = _masked_accuracy(mlm, held_out, V, 1)
    opt = Adam(mlm.parameters(), lr=1e-3)
    losses = []
    for _ in tqdm(range(pretrain_steps), desc="masked-token pretraining", disable=not progress, leave=False):
        batch = windows[rng.choice(len(windows), size=min(64, len(windows)), replace=False)]
        inputs, targets = mask_tokens(batch, Vocab.MASK, V, rng, special_ids=(Vocab.UNK,))
        loss = mlm.loss(inputs, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    pretrain_seconds = time.perf_counter() - t0
    mlm_after = _masked_accuracy(mlm, held_out, V, 1)
    state = backbone.state_dict()

    rows: dict[str, list[float]] = {m: [] for m in TEXT_METHODS}
    seconds: dict[str, list[float]] = {m: [] for m in TEXT_METHODS}
    for seed in tqdm(seeds, desc="text transfer seeds", disable=not progress):
        task = task0 if seed == seeds[0] else text_task(seed, corpus, labels_per_class, test_per_class)
        Xtr = vocab.encode([t for t, _ in task["train"]], max_len)
        ytr = np.array([c for _, c in task["train"]], dtype=np.int64)
        Xte = vocab.encode([t for t, _ in task["test"]], max_len)
        yte = np.array([c for _, c in task["test"]], dtype=np.int64)

        def pretrained() -> TransformerClassifier:
            m = _text_model(V, seed + 1000, max_len)
            m.load_state_dict(state)
            manual_seed(seed + 2000)
            replace_head(m, "head", Linear(m.d_model, len(TOPICS)))
            return m

        def scratch() -> Module:
            m = _text_model(V, seed + 3000, max_len)
            return train_steps(m, Xtr, ytr, steps, m.parameters(), 1e-3, batch_size=32, seed=seed)

        def frozen() -> Module:
            m = pretrained()
            freeze(m, ["token_embedding", "position_embedding", "encoder", "norm"])
            m.eval()
            with no_grad():
                feats = m.pool(Xtr).numpy()
            train_steps(m.head, feats, ytr, steps, m.head.parameters(), 3e-3, batch_size=32, seed=seed)
            return m

        def finetuned() -> Module:
            m = pretrained()
            return train_steps(m, Xtr, ytr, steps, m.parameters(), 1e-3, batch_size=32, seed=seed)

        for name, fn in zip(TEXT_METHODS[:3], (scratch, frozen, finetuned)):
            t0 = time.perf_counter()
            model = fn()
            seconds[name].append(time.perf_counter() - t0)
            rows[name].append(accuracy(model, Xte, yte))
        t0 = time.perf_counter()
        bow = CountVectorizer(analyzer=lambda t: t[:max_len])
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(bow.fit_transform([t for t, _ in task["train"]]), ytr)
        pred = clf.predict(bow.transform([t for t, _ in task["test"]]))
        seconds[TEXT_METHODS[3]].append(time.perf_counter() - t0)
        rows[TEXT_METHODS[3]].append(float((pred == yte).mean()))
    return {"accuracy": rows, "seconds": seconds, "pretrain_seconds": pretrain_seconds, "vocab": V,
            "windows": len(windows), "held_out": n_held, "docstrings": len(corpus), "mlm_before": mlm_before, "mlm_after": mlm_after,
            "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
            "n_train": len(task0["train"]), "n_test": len(task0["test"])}


def text_markdown(r: dict[str, Any], seeds: list[int], pretrain_steps: int, steps: int, command: str) -> str:
    """The Transformer pretraining section."""
    from benchmarks.report import markdown_table

    table = [[name, _mean_std(r["accuracy"][name]), f"{statistics.fmean(r['seconds'][name]):.1f}"]
             for name in TEXT_METHODS]
    n = len(seeds)
    return (
        f"`{command}`. Corpus: {r['docstrings']} docstrings of Python's standard library (modules, classes, "
        "functions; read with `ast`) and the language-reference topics of `pydoc_data`. Task: which of "
        f"{', '.join(TOPICS)} a docstring comes from, from its first 32 words; {r['n_train']} labeled docstrings "
        f"({r['n_train'] // len(TOPICS)} per package), {r['n_test']} test docstrings. Model: "
        "`TransformerClassifier` (token + learned positions, 2 pre-norm layers, d_model 64, 4 heads, "
        f"feed-forward 128, mean pooling), vocabulary {r['vocab']} words.\n\n"
        f"Pretraining: masked-token prediction (BERT's 15% / 80-10-10 masking, `MaskedTokenModel`) on "
        f"{r['windows']} windows of 32 words from every docstring and topic except the test docstrings, "
        f"{pretrain_steps} Adam steps (lr 1e-3, batch 64), {r['pretrain_seconds']:.0f} s; loss "
        f"{r['loss_first']:.2f} -> {r['loss_last']:.2f}; masked-token accuracy on {r['held_out']} held-out windows "
        f"{100 * r['mlm_before']:.1f}% before, {100 * r['mlm_after']:.1f}% after.\n\n"
        f"Classification: {steps} Adam steps, batch 32, lr 1e-3 (the frozen encoder's head: 3e-3); test accuracy "
        f"mean ± std over {n} seed{'s' * (n > 1)} (each seed: its own labeled docstrings and initialisation; "
        "one pretraining; the test docstrings are the same for every seed and were never seen in "
        "pretraining).\n\n"
        + markdown_table(["method", "test accuracy %", "seconds"], table)
        + "\n\nFine-tuned minus scratch, paired by seed: "
        + _gain(r["accuracy"], TEXT_METHODS[2], TEXT_METHODS[0]) + " points."
    )


# ---------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """``python -m minidl transfer [--seeds 3] [--quick] [--parts cnn text] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl transfer",
        description="Transfer learning: a ResNet-8 pretrained on digits 0-4 and taught 5-9 from a few labels "
                    "(scratch vs feature extraction vs fine-tuning), and a Transformer encoder pretrained on "
                    "masked tokens over the standard library's docstrings, fine-tuned to tell packages apart. "
                    "Writes two sections of benchmarks/RESULTS.md.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (~2 minutes): fewer pretraining steps; prints the tables, writes nothing")
    parser.add_argument("--labels", type=int, nargs="+", default=[3, 10],
                        help="labeled digits per target class, one table column each (default 3 10)")
    parser.add_argument("--parts", nargs="+", choices=["cnn", "text"], default=["cnn", "text"],
                        help="which experiments to run (default both)")
    parser.add_argument("--no-write", action="store_true", help="print the tables without updating RESULTS.md")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (default 1: small matrices on a shared machine; 0 leaves it alone)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.seeds < 1 or min(args.labels) < 1:
        parser.error("--seeds and --labels must be >= 1")
    if args.quick:
        args.no_write = True
    pretrain_epochs, cnn_steps = (5, 60) if args.quick else (15, 200)
    pretrain_steps, text_steps = (60, 60) if args.quick else (1200, 300)
    seeds = list(range(args.seeds))
    command = "python -m minidl transfer" + (" --quick" if args.quick else "") + f" --seeds {args.seeds}"
    if args.labels != [3, 10]:
        command += " --labels " + " ".join(map(str, args.labels))
    progress = not args.quiet
    import sklearn.linear_model  # noqa: F401  (load its OpenMP runtime before the thread limit below)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    limits = threadpool_limits(args.blas_threads) if threadpool_limits is not None and args.blas_threads > 0 else None
    sections = []
    try:
        if "cnn" in args.parts:
            budgets = tuple(args.labels)
            r = run_cnn(seeds, budgets, pretrain_epochs, cnn_steps, progress=progress)
            sections.append((CNN_SECTION, cnn_markdown(r, seeds, budgets, pretrain_epochs, cnn_steps, command)))
        if "text" in args.parts:
            r = run_transformer(seeds, pretrain_steps, text_steps, progress=progress)
            sections.append((TEXT_SECTION, text_markdown(r, seeds, pretrain_steps, text_steps, command)))
    finally:
        if limits is not None:
            limits.unregister()
    for title, body in sections:
        print(f"## {title}\n\n{body}\n")
    if not args.no_write:
        from benchmarks.report import write_section

        for title, body in sections:
            print(f"wrote the '{title}' section of {write_section(title, body)}")
    return 0

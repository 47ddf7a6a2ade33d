"""``python -m minidl compress [--quick]``: deployment measurements on the digits CNN.

On scikit-learn's 8x8 digits (stratified 70/15/15 split) a ``LeNet5(input_size=8)`` is
trained once, then:

* compression: file size (plain ``minidl.save`` and deflated), inference time (median of
  ``predict`` over the test set) and test accuracy for float32, int8 (post-training, and
  after quantization-aware fine-tuning), 50% / 80% / 90% global magnitude pruning (each
  fine-tuned with its masks), 50% structured pruning (fine-tuned), and a small student
  distilled from the CNN (next to the same student trained on labels alone); plus the
  throughput of ``predict`` (inference mode) against a training-mode forward;
* calibration: test ECE and NLL before/after temperature scaling fitted on the validation
  split, a reliability diagram, and test-time augmentation;
* adversarial robustness: accuracy under FGSM and PGD at several epsilons for the CNN and
  for the same CNN adversarially trained (FGSM examples, eps 0.1).

Sections ``Compression (digits CNN)``, ``Calibration`` and ``Adversarial robustness`` of
``benchmarks/RESULTS.md`` are replaced; plots go to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import manual_seed
from ..functional.loss import cross_entropy
from ..models import LeNet5
from ..optim import Adam
from ..serialization import save
from .adversarial import accuracy_under_attack, adversarial_training
from .calibration import (TemperatureScaler, expected_calibration_error, reliability_diagram, softmax_np,
                          tta_predict)
from .distillation import distill
from .inference import batch_to, predict
from .pruning import count_parameters, global_magnitude_prune, remove_masks, sparsity, structured_prune
from .quantization import convert_qat, prepare_qat, quantize_model

__all__ = ["main", "run", "fit"]


def fit(model, X: np.ndarray, y: np.ndarray, epochs: int, lr: float = 2e-3, batch_size: int = 32, seed: int = 0,
        progress: bool = True, desc: str = "train") -> list[float]:
    """Adam on cross-entropy over shuffled mini-batches; returns the mean loss per epoch."""
    from tqdm.auto import tqdm

    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = cross_entropy(model(batch_to(X[idx], model)), batch_to(y[idx], model))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(X))
    model.eval()
    return history


def _sizes(state: dict) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.getsize(save(state, os.path.join(tmp, "m.npz")))
        packed = os.path.getsize(save(state, os.path.join(tmp, "c.npz"), compress=True))
    return plain, packed


def _accuracy(model, X, y) -> float:
    return float(np.mean(predict(model, X).argmax(1) == y))


def _times_ms(models: list, X: np.ndarray, repeats: int) -> list[float]:
    """Median ms of ``predict`` over X for each model, timed in turn (A, B, C, A, B, C, ...)
    so that a busy spell of a shared machine hits every model alike."""
    from benchmarks.report import interleaved_medians

    contenders = {i: (lambda m=m: predict(m, X, batch_size=512)) for i, m in enumerate(models)}
    t = interleaved_medians(contenders, repeats=repeats, warmup=2)
    return [1e3 * t[i] for i in range(len(models))]


def _inference_vs_training_ms(model, X, repeats: int) -> tuple[float, float]:
    """Median ms of ``predict`` (eval, inference mode) and of a training-mode forward that
    records the graph (what a training step pays before its backward), timed in turn."""
    from benchmarks.report import interleaved_medians

    def train_forward():
        model.train()
        for start in range(0, len(X), 512):
            model(batch_to(X[start:start + 512], model))
        model.eval()

    t = interleaved_medians({"inference": lambda: predict(model, X, batch_size=512), "training": train_forward},
                            repeats=repeats)
    return 1e3 * t["inference"], 1e3 * t["training"]


def _array_bytes(state: dict) -> int:
    return int(sum(np.asarray(v).nbytes for v in state.values()))


def _compression(splits, teacher, cfg, progress) -> tuple[str, dict]:
    X_tr, X_val, X_te, y_tr, y_val, y_te = splits
    rows, timed = [], []
    base_plain, _ = _sizes(teacher.state_dict())
    base_bytes = _array_bytes(teacher.state_dict())

    def row(name, model, state=None, note=""):
        state = state if state is not None else model.state_dict()
        timed.append(model)
        plain, packed = _sizes(state)
        rows.append([name, f"{_array_bytes(state) / base_bytes:.3f}", f"{plain / 1024:.1f}", f"{packed / 1024:.1f}",
                     f"{plain / base_plain:.2f}",
                     None, f"{100 * _accuracy(model, X_te, y_te):.2f}",
                     note])

    row("float32", teacher, note=f"{count_parameters(teacher)} parameters")
    int8 = quantize_model(teacher, X_tr[:256])
    row("int8 (post-training, 256 calibration images)", int8, note="int32 accumulation in NumPy")
    qat = prepare_qat(teacher, X_tr[:256])
    fit(qat, X_tr, y_tr, cfg["qat_epochs"], lr=2e-4, progress=progress, desc="QAT")
    row(f"int8 (QAT, {cfg['qat_epochs']} epochs)", convert_qat(qat))
    for amount in (0.5, 0.8, 0.9):
        pruned = LeNet5(input_size=8)
        pruned.load_state_dict(teacher.state_dict())
        global_magnitude_prune(pruned, amount)
        before = _accuracy(pruned, X_te, y_te)
        fit(pruned, X_tr, y_tr, cfg["finetune_epochs"], lr=5e-4, progress=progress, desc=f"prune {amount:.0%}")
        remove_masks(pruned)
        row(f"{amount:.0%} pruned (global magnitude) + fine-tuning", pruned,
            note=f"sparsity {sparsity(pruned):.3f}; {100 * before:.2f}% before fine-tuning")
    small = structured_prune(teacher, 0.5)
    before = _accuracy(small, X_te, y_te)
    fit(small, X_tr, y_tr, cfg["finetune_epochs"], lr=5e-4, progress=progress, desc="structured")
    row("50% channels/neurons removed (structured) + fine-tuning", small,
        note=f"{count_parameters(small)} parameters; {100 * before:.2f}% before fine-tuning")
    student_kwargs = dict(input_size=8, channels=(3, 6), hidden=(32, 16))
    manual_seed(1)
    student = LeNet5(**student_kwargs)
    distill(teacher, student, X_tr, y_tr, epochs=cfg["epochs"], lr=2e-3, batch_size=32, temperature=4.0,
            alpha=0.9, progress=progress)
    row("distilled student (channels 3/6, hidden 32/16, T=4, alpha=0.9)", student,
        note=f"{count_parameters(student)} parameters")
    manual_seed(1)
    scratch = LeNet5(**student_kwargs)
    fit(scratch, X_tr, y_tr, cfg["epochs"], progress=progress, desc="student alone")
    row("same student trained on labels only", scratch, note="reference for distillation")

    for r, ms in zip(rows, _times_ms(timed, X_te, cfg["repeats"])):
        r[5] = f"{ms:.1f}"
    t_pred, t_train = _inference_vs_training_ms(teacher, X_te, max(cfg["repeats"], 3))
    acc_f, acc_q = float(rows[0][6]), float(rows[1][6])
    size_ratio, bytes_ratio = float(rows[1][4]), float(rows[1][1])
    body = "\n".join([
        f"LeNet5(input_size=8) on the digits test split ({len(X_te)} images), trained {cfg['epochs']} epochs with "
        "Adam. Sizes are `minidl.save` files (plain .npz, and deflated with `compress=True`, which is where "
        "unstructured sparsity pays); time is the median of `predict` over the test split (batch 512, "
        "inference mode), all models timed in turn on a shared 2-core machine.",
        "",
        _table(["model", "array bytes vs float32", "file KiB", "deflated KiB", "file vs float32", "inference ms",
                "test accuracy %", "notes"],
               rows),
        "",
        f"int8 vs float32: accuracy {acc_q - acc_f:+.2f} points; the arrays take {bytes_ratio:.3f}x the float32 "
        f"bytes and the file {size_ratio:.2f}x (goal: within 1 point at 0.25x). The int8 weights are exactly "
        "a quarter of the float32 bytes; per-channel scales, float32 biases and per-layer input ranges add "
        "the rest of the arrays, and each array costs a zip entry and an .npy header (~0.3 KiB), which "
        "weighs on a 21k-parameter model. Speed: int8 "
        f"{float(rows[1][5]):.1f} ms vs float32 {float(rows[0][5]):.1f} ms; NumPy has no int8 GEMM (the integer "
        "matmul runs without BLAS, and each layer quantizes its input), so in NumPy int8 buys size and "
        "faithful integer arithmetic rather than speed.",
        "",
        f"Inference mode vs a training-mode forward (graph recorded) over the test split: "
        f"{t_pred:.1f} ms vs {t_train:.1f} ms, i.e. {len(X_te) / t_pred * 1e3:.0f} vs "
        f"{len(X_te) / t_train * 1e3:.0f} images/s ({t_train / t_pred:.2f}x).",
    ])
    return body, {"int8_delta": acc_q - acc_f, "int8_file_ratio": size_ratio, "int8_bytes_ratio": bytes_ratio}


def _table(header, rows):
    from benchmarks.report import markdown_table

    return markdown_table(header, rows)


def _calibration(splits, model, plots: Path) -> str:
    X_tr, X_val, X_te, y_tr, y_val, y_te = splits
    val_logits, test_logits = predict(model, X_val), predict(model, X_te)
    scaler = TemperatureScaler().fit(val_logits, y_val)
    p_before, p_after = softmax_np(test_logits), scaler(test_logits)
    rows = [["before (T = 1)", f"{expected_calibration_error(p_before, y_te):.4f}",
             f"{TemperatureScaler(1.0).nll(test_logits, y_te):.4f}", f"{100 * np.mean(p_before.argmax(1) == y_te):.2f}"],
            [f"after (T = {scaler.temperature:.3f})", f"{expected_calibration_error(p_after, y_te):.4f}",
             f"{scaler.nll(test_logits, y_te):.4f}", f"{100 * np.mean(p_after.argmax(1) == y_te):.2f}"]]
    tta = tta_predict(model, X_te)
    rows.append(["test-time augmentation (identity + 4 one-pixel shifts)", f"{expected_calibration_error(tta, y_te):.4f}",
                 f"{-np.mean(np.log(tta[np.arange(len(y_te)), y_te] + 1e-12)):.4f}",
                 f"{100 * np.mean(tta.argmax(1) == y_te):.2f}"])
    plot = reliability_diagram([p_before, p_after], y_te, plots / "calibration_reliability.png",
                               ["before temperature scaling", f"after (T = {scaler.temperature:.2f})"], n_bins=15)
    return "\n".join([
        "Temperature scaling of the digits CNN, T fitted on the validation split (NLL, golden-section search), "
        "measured on the test split (ECE with 15 equal-width bins).",
        "",
        _table(["probabilities", "ECE", "NLL", "accuracy %"], rows),
        "",
        f"![reliability diagram](results/{Path(plot).name})",
    ])


def _adversarial(splits, model, cfg, progress) -> str:
    X_tr, X_val, X_te, y_tr, y_val, y_te = splits
    eps = cfg["epsilons"]
    manual_seed(2)
    robust = LeNet5(input_size=8)
    adversarial_training(robust, X_tr, y_tr, eps=0.1, epochs=cfg["adv_epochs"], lr=2e-3, batch_size=32,
                         attack="fgsm", progress=progress)
    rows = []
    for name, m in (("normal training", model), ("adversarial training (FGSM, eps 0.1)", robust)):
        for attack, kwargs in (("FGSM", {}), ("PGD", {"steps": cfg["pgd_steps"]})):
            acc = accuracy_under_attack(m, X_te, y_te, eps, attack=attack.lower(), **kwargs)
            rows.append([name, attack] + [f"{100 * acc[float(e)]:.1f}" for e in eps])
    return "\n".join([
        f"Test accuracy (%) of the digits CNN under L-inf attacks on pixel values in [0, 1]; PGD with "
        f"{cfg['pgd_steps']} steps of eps/4 from a random start. The adversarially trained CNN minimises "
        f"0.5 CE(x) + 0.5 CE(FGSM(x)) for {cfg['adv_epochs']} epochs.",
        "",
        _table(["model", "attack"] + [f"eps = {e}" for e in eps], rows),
    ])


def run(quick: bool = False, progress: bool = True, write: bool = True) -> dict[str, Any]:
    """Run all three studies; returns the markdown bodies (and writes RESULTS.md when ``write``)."""
    root = Path(__file__).resolve().parent.parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.report import PLOTS, write_section
    from ..train.demo import digits_splits

    cfg = dict(epochs=30, finetune_epochs=5, qat_epochs=3, adv_epochs=30, pgd_steps=10, repeats=9,
               epsilons=[0.0, 0.05, 0.1, 0.2])
    if quick:
        cfg.update(epochs=4, finetune_epochs=1, qat_epochs=1, adv_epochs=2, pgd_steps=3, repeats=3,
                   epsilons=[0.0, 0.1])
    splits = digits_splits(0)
    manual_seed(0)
    t0 = time.time()
    model = LeNet5(input_size=8)
    fit(model, splits[0], splits[3], cfg["epochs"], progress=progress, desc="float32 CNN")
    PLOTS.mkdir(parents=True, exist_ok=True)
    compression, summary = _compression(splits, model, cfg, progress)
    calibration = _calibration(splits, model, PLOTS)
    adversarial = _adversarial(splits, model, cfg, progress)
    out = {"Compression (digits CNN)": compression, "Calibration": calibration, "Adversarial robustness": adversarial}
    if write:
        for title, body in out.items():
            write_section(title, body + f"\n\nRun: `python -m minidl compress{' --quick' if quick else ''}` "
                          f"({time.time() - t0:.0f} s).")
    out["summary"] = summary
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidl compress", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few epochs only (a smoke run, about a minute)")
    p.add_argument("--no-write", action="store_true", help="print the tables instead of updating RESULTS.md")
    args = p.parse_args(argv)
    out = run(quick=args.quick, write=not args.no_write)
    for title in ("Compression (digits CNN)", "Calibration", "Adversarial robustness"):
        print(f"## {title}\n\n{out[title]}\n")
    return 0

"""``python -m minidl compress [--quick]``: deployment measurements on the digits CNN.

On scikit-learn's 8x8 digits (stratified 70/15/15 split) a ``LeNet5(input_size=8)`` is
trained once, then:

* compression: file size (a ``minidl.save`` .npz, and a packed file, plain and deflated,
  see ``minidl.deploy.packed``; the int8 file against the float32 .npz is the size goal),
  inference time (median of ``predict`` over the test set)
  and test accuracy for float32, int8 (post-training with float32 or float16 scales, and
  after quantization-aware fine-tuning), 50% / 80% / 90% global magnitude pruning (each
  fine-tuned with its masks), 50% structured pruning (fine-tuned), and a small student
  distilled from the CNN (next to the same student trained on labels alone); the int8
  file is read back (deflated and plain) and must give identical outputs; a plot of file
  size against accuracy;
* inference mode: time, throughput and memory held by the output of a forward pass in
  training mode, in eval mode with and without a recorded graph, under ``no_grad``, under
  ``inference_mode`` and through ``predict``;
* calibration: test ECE and NLL before/after temperature scaling fitted on the validation
  split, a reliability diagram, and test-time augmentation;
* adversarial robustness: accuracy under FGSM and PGD at several epsilons for the CNN and
  for the same CNN adversarially trained (FGSM examples, eps 0.1).

Sections ``Compression (digits CNN)``, ``Calibration`` and ``Adversarial robustness`` of
``benchmarks/RESULTS.md`` are replaced; plots go to ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import manual_seed, no_grad
from ..functional.loss import cross_entropy
from ..models import LeNet5
from ..nn import Module
from ..optim import Adam
from ..serialization import save
from .adversarial import accuracy_under_attack, adversarial_training
from .calibration import (TemperatureScaler, expected_calibration_error, reliability_diagram, softmax_np,
                          tta_predict)
from .checkpoint import infer_arch, load_quantized, save_quantized
from .distillation import distill
from .inference import batch_to, inference_mode, predict
from .packed import save_packed
from .pruning import count_parameters, global_magnitude_prune, remove_masks, sparsity, structured_prune
from .quantization import convert_qat, prepare_qat, quantize_model

__all__ = ["main", "run", "fit", "held_bytes", "inference_modes"]


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


def _sizes(state: dict, meta: dict) -> dict[str, int]:
    """Bytes of ``state`` saved six ways: .npz (``minidl.save``, the framework's normal
    file), deflated .npz, packed (with ``meta``, e.g. the architecture; integers narrowed),
    packed and deflated (what ``save_quantized(..., compress=True)`` writes for an int8
    model), and packed without narrowing, plain and deflated."""
    with tempfile.TemporaryDirectory() as tmp:
        def size(write, name, **kw):
            return os.path.getsize(write(os.path.join(tmp, name), **kw))

        def packed(p, **kw):
            return save_packed(state, p, meta, **kw)

        return {"npz": size(lambda p, **kw: save(state, p, **kw), "a.npz"),
                "npz deflated": size(lambda p, **kw: save(state, p, **kw), "b.npz", compress=True),
                "packed": size(packed, "c.bin", compress=False),
                "packed deflated": size(packed, "d.bin", compress=True),
                "packed wide": size(packed, "e.bin", compress=False, narrow=False),
                "packed wide deflated": size(packed, "f.bin", compress=True, narrow=False)}


def _accuracy(model, X, y) -> float:
    return float(np.mean(predict(model, X).argmax(1) == y))


def _times_ms(models: list, X: np.ndarray, repeats: int) -> list[float]:
    """Median ms of ``predict`` over X for each model, timed in turn (A, B, C, A, B, C, ...)
    so that a busy spell of a shared machine hits every model alike."""
    from benchmarks.report import interleaved_medians

    contenders = {i: (lambda m=m: predict(m, X, batch_size=512)) for i, m in enumerate(models)}
    t = interleaved_medians(contenders, repeats=repeats, warmup=2)
    return [1e3 * t[i] for i in range(len(models))]


def held_bytes(fn: Callable[[], Any]) -> int:
    """Bytes still allocated (NumPy arrays included, via tracemalloc) while the output of
    ``fn()`` is alive: the output plus everything its recorded graph keeps.  A full
    collection before each reading empties the interpreter's free lists (spare tuples,
    frames, floats), which tracemalloc would otherwise count as held."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del out
    return held


def inference_modes(model: Module, X: np.ndarray, repeats: int, batch_size: int = 512) -> list[list]:
    """Rows [mode, ms, images/s, speed vs the training-mode forward, KiB held by the
    outputs] for a forward pass over ``X`` in batches, the modes timed in turn."""
    from benchmarks.report import interleaved_medians

    batches = [batch_to(X[i:i + batch_size], model) for i in range(0, len(X), batch_size)]

    def forward(training: bool, context):
        def run():
            model.train(training)
            with context():
                outs = [model(xb) for xb in batches]
            model.eval()
            return outs
        return run

    modes = {"training mode, graph recorded": forward(True, lambda: inference_mode(False)),
             "eval mode, graph recorded": forward(False, lambda: inference_mode(False)),
             "eval mode, no_grad()": forward(False, no_grad),
             "eval mode, inference_mode()": forward(False, inference_mode),
             "predict (inference mode, NumPy out)": lambda: predict(model, X, batch_size=batch_size)}
    t = interleaved_medians(modes, repeats=repeats, warmup=1)
    held = {name: held_bytes(fn) for name, fn in modes.items()}
    base = t["training mode, graph recorded"]
    rows = [[name, f"{1e3 * t[name]:.1f}", f"{len(X) / t[name]:.0f}", f"{base / t[name]:.2f}x",
             f"{held[name] / 1024:.0f}"] for name in modes]
    return rows


def _array_bytes(state: dict) -> int:
    return int(sum(np.asarray(v).nbytes for v in state.values()))


def _int8_reload_is_identical(qmodel, arch: dict, X: np.ndarray) -> bool:
    """Save ``qmodel`` packed (deflated and plain), load each back, and compare the
    outputs bit for bit with the in-memory int8 model's."""
    ref = predict(qmodel, X)
    with tempfile.TemporaryDirectory() as tmp:
        backs = [load_quantized(save_quantized(qmodel, arch, os.path.join(tmp, f"q{c}.bin"), compress=c))
                 for c in (True, False)]
    return all(np.array_equal(ref, predict(back, X)) for back in backs)


def _entropy_bytes(codes: np.ndarray) -> float:
    """n H / 8: the bytes an ideal order-0 entropy coder needs for the symbols ``codes``."""
    p = np.unique(codes, return_counts=True)[1] / codes.size
    return float(codes.size * -(p * np.log2(p)).sum() / 8)


def _size_plot(rows: list, sizes: list, base_npz: int, path: Path) -> str:
    """Horizontal bars: each model's file size (KiB) as a minidl.save .npz and as a packed,
    deflated file, its test accuracy written at the end, the quarter of the float32 .npz
    marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0].replace(" + fine-tuning", " + ft").replace(" (global magnitude)", "") for r in rows]
    npz = np.array([sz["npz"] for sz in sizes]) / 1024
    packed = np.array([sz["packed deflated"] for sz in sizes]) / 1024
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.6))
    ax.barh(y + 0.2, npz, height=0.38, color="lightgray", label="minidl.save .npz")
    ax.barh(y - 0.2, packed, height=0.38, color="tab:blue", label="packed + deflate")
    for yi, p, r in zip(y, packed, rows):
        ax.text(p + 0.8, yi - 0.2, f"{p:.1f} KiB, {r[9]}%", va="center", fontsize=7)
    ax.axvline(base_npz / 4 / 1024, color="tab:red", ls="--", lw=1, label="a quarter of the float32 .npz")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("file size (KiB); the text gives the packed + deflate size and the test accuracy")
    ax.set_title("Digits CNN: file size and accuracy of each compressed model")
    ax.set_xlim(0, npz.max() * 1.15)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def _compression(splits, teacher, cfg, progress, plots: Path) -> tuple[str, dict]:
    X_tr, X_val, X_te, y_tr, y_val, y_te = splits
    rows, timed, sizes = [], [], []
    arch = infer_arch(teacher.state_dict(), teacher.input_size)
    base = _sizes(teacher.state_dict(), {"arch": arch})
    base_bytes = _array_bytes(teacher.state_dict())

    def row(name, model, note="", meta=None):
        state = model.state_dict()
        timed.append(model)
        size = _sizes(state, meta if meta is not None else {"arch": infer_arch(state, teacher.input_size)})
        sizes.append(size)
        rows.append([name, f"{_array_bytes(state) / base_bytes:.3f}", f"{size['npz'] / 1024:.1f}",
                     f"{size['packed'] / 1024:.1f}", f"{size['packed deflated'] / 1024:.1f}",
                     f"{size['packed deflated'] / base['npz']:.3f}", f"{size['packed'] / base['packed']:.3f}",
                     f"{size['packed deflated'] / base['packed deflated']:.3f}",
                     None, f"{100 * _accuracy(model, X_te, y_te):.2f}", note])

    int8_meta = {"format": "minidl.int8", "arch": arch}  # what save_quantized writes
    row("float32", teacher, note=f"{count_parameters(teacher)} parameters")
    int8_32 = quantize_model(teacher, X_tr[:256])
    row("int8 (post-training, float32 scales)", int8_32, note="256 calibration images; int32 accumulation and "
        "int32 biases in NumPy", meta=int8_meta)
    int8 = quantize_model(teacher, X_tr[:256], scale_dtype="float16")
    same = _int8_reload_is_identical(int8, arch, X_te)
    row("int8 (post-training, float16 scales)", int8, meta=int8_meta,
        note=f"as above; outputs after save_quantized/load_quantized identical: {'yes' if same else 'NO'} "
             "(deflated and plain files)")
    qat = prepare_qat(teacher, X_tr[:256])
    fit(qat, X_tr, y_tr, cfg["qat_epochs"], lr=2e-4, progress=progress, desc="QAT")
    row(f"int8 (QAT, {cfg['qat_epochs']} epochs, float16 scales)", convert_qat(qat, scale_dtype="float16"),
        meta=int8_meta)
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
        r[8] = f"{ms:.1f}"
    plot = _size_plot(rows, sizes, base["npz"], plots / "compression_digits.png")
    acc_f, acc_q32, acc_q = float(rows[0][9]), float(rows[1][9]), float(rows[2][9])
    q, npz = sizes[2], base["npz"]
    sd = int8.state_dict()
    codes = np.concatenate([v.ravel() for k, v in sd.items() if k.endswith("weight_int8")])
    f32_weights = sum(v.nbytes for k, v in teacher.state_dict().items() if k.endswith("weight"))
    channels = sum(v.shape[0] for k, v in sd.items() if k.endswith("weight_scale"))
    biases = [v for k, v in sd.items() if k.endswith("bias_int32")]
    int16 = sum(v.size for v in biases if np.abs(v.astype(np.int64)).max() < 2**15)
    ratio = q["packed deflated"] / npz
    goal_size, goal_acc = ratio <= 0.25, abs(acc_q - acc_f) <= 1.0
    steps = [("int32 biases and zero points, plain (the format-1 layout)", q["packed wide"]),
             ("integers narrowed, plain", q["packed"]),
             ("not narrowed, deflated", q["packed wide deflated"]),
             ("integers narrowed and deflated (the int8 file)", q["packed deflated"])]
    body = "\n".join([
        f"LeNet5(input_size=8) on the digits test split ({len(X_te)} images), trained {cfg['epochs']} epochs with "
        "Adam. Sizes are of real files. `.npz` is `minidl.save`, the framework's normal file (one .npy entry "
        "per array); the float32 `.npz` is the reference of the size goal. Packed is "
        "`minidl.deploy.save_packed` (one blob per stored dtype, each integer array in the smallest integer "
        "dtype that holds it exactly, a deflated JSON manifest with the architecture; int8 models via "
        "`save_quantized`), plain and deflated (zlib level 9: Huffman coding of the bytes, which shrinks int8 "
        "weights whose codes are not uniform, and sparse weights much more). Each \"vs float32\" column divides "
        "by the float32 model's file of the kind named. Time is the median of `predict` over the test split "
        "(batch 512, inference mode), all models timed in turn on a shared 2-core machine.",
        "",
        _table(["model", "array bytes vs float32", ".npz KiB", "packed KiB", "packed + deflate KiB",
                "packed + deflate vs float32 .npz", "packed vs float32 packed",
                "packed + deflate vs float32 packed + deflate", "inference ms", "test accuracy %", "notes"], rows),
        "",
        f"![file size vs accuracy](results/{Path(plot).name})",
        "",
        "**Goal: int8 within 1 point of float32 accuracy at a quarter of the size.** Accuracy: int8 with float16 "
        f"scales {acc_q - acc_f:+.2f} points vs float32 (with float32 scales {acc_q32 - acc_f:+.2f}). Size: the "
        f"int8 file (float16 scales, `save_quantized(..., compress=True)`) is {q['packed deflated']} B and the float32 "
        f"`minidl.save` file is {npz} B, **{ratio:.3f}x**. Goal {'met' if goal_size and goal_acc else 'NOT met'} "
        f"(accuracy {'met' if goal_acc else 'not met'}, size {'met' if goal_size else 'not met'}).",
        "",
        "How the int8 file gets there. Each step is a real file of the same int8 model, as a fraction of the "
        "float32 `minidl.save` file: "
        + "; ".join(f"{name}, {b} B = {b / npz:.3f}x" for name, b in steps) + ". "
        f"The int8 weights alone are {codes.nbytes} B = {codes.nbytes / f32_weights:.3f}x the float32 weights. "
        f"The rest is per channel ({channels} output channels, each with a float16 scale and an int32 bias in "
        f"accumulator units; {int16} of the biases have |b_q| < 2^15 and are stored as int16), per layer (the "
        "input scale and zero point), and the header and manifest. The weight codes carry "
        f"{8 * _entropy_bytes(codes) / codes.size:.2f} bits each (order-0 entropy; uniform codes would carry 8). "
        f"So no coder of single codes can store them in fewer than {_entropy_bytes(codes):.0f} B; deflated on "
        f"their own they take {len(zlib.compress(codes.tobytes(), 9))} B.",
        "",
        ("Caveat: the quarter holds against the framework's normal float32 file. It does not hold against a "
         "float32 file compressed as hard. " if goal_size else "")
        + "Against the float32 model packed the same way, the int8 file is "
        f"{q['packed'] / base['packed']:.3f}x when both are plain and "
        f"{q['packed deflated'] / base['packed deflated']:.3f}x when both are deflated. Deflate takes "
        f"{100 * (1 - base['packed deflated'] / base['packed']):.0f}% off the float32 file (the sign-and-exponent "
        "byte of weights of similar magnitude takes few values). That quarter is out of reach without going "
        "below 8 bits: 8-bit "
        "weights are at best a quarter of float32 weights of the same count, and every other byte adds to that. "
        f"Speed: int8 {float(rows[2][8]):.1f} ms vs float32 {float(rows[0][8]):.1f} ms. NumPy has no int8 GEMM "
        "(the integer matmul runs without BLAS, and each layer quantizes its input), so in NumPy int8 buys size "
        "and faithful integer arithmetic rather than speed.",
    ])
    summary = {"int8_delta": acc_q - acc_f, "int8_reload_identical": same, "int8_file_vs_float32_npz": ratio,
               "packed vs float32 packed": q["packed"] / base["packed"],
               "deflated vs float32 deflated": q["packed deflated"] / base["packed deflated"]}
    return body, summary


def _inference(splits, model, cfg) -> str:
    X = splits[0]
    rows = inference_modes(model, X, max(cfg["repeats"], 3))
    return "\n".join([
        f"The digits CNN (LeNet5, input 8x8) over the {len(X)} training images in batches of 512, each mode "
        "timed in turn (median). Held KiB: memory (tracemalloc, NumPy arrays included) still allocated while "
        "the outputs of all batches are alive, i.e. the outputs plus whatever graph they keep. Inference mode "
        "is `no_grad` (no Function recorded, no inputs or masks kept, no parameter `.grad`) plus a flag that "
        "code can read (`is_inference_mode()`), e.g. FakeQuantize skips its backward mask.",
        "",
        _table(["forward pass", "ms", "images/s", "speed vs training mode", "held KiB"], rows),
    ])


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


SECTIONS = ("Compression (digits CNN)", "Inference mode", "Calibration", "Adversarial robustness")


def run(quick: bool = False, progress: bool = True, write: bool = True, tiny: bool = False,
        plots: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run all the studies; returns the markdown bodies (and writes RESULTS.md when ``write``).

    ``quick``: a few epochs (a smoke run); ``tiny``: one epoch on 300 training images and
    single timings (a test of the pipeline, its figures mean nothing). Plots go to ``plots``
    (default: ``benchmarks/results`` when writing, else a temporary folder)."""
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
    if tiny:
        cfg.update(epochs=1, finetune_epochs=1, qat_epochs=1, adv_epochs=1, pgd_steps=1, repeats=1,
                   epsilons=[0.0, 0.1])
    splits = digits_splits(0)
    if tiny:
        splits = (splits[0][:300],) + tuple(splits[1:3]) + (splits[3][:300],) + tuple(splits[4:])
    manual_seed(0)
    t0 = time.time()
    model = LeNet5(input_size=8)
    fit(model, splits[0], splits[3], cfg["epochs"], progress=progress, desc="float32 CNN")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(plots) if plots is not None else PLOTS if write else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        compression, summary = _compression(splits, model, cfg, progress, folder)
        inference = _inference(splits, model, cfg)
        calibration = _calibration(splits, model, folder)
        adversarial = _adversarial(splits, model, cfg, progress)
    out = dict(zip(SECTIONS, (compression, inference, calibration, adversarial)))
    if write:
        flag = " --tiny" if tiny else " --quick" if quick else ""
        for title, body in out.items():
            write_section(title, body + f"\n\nRun: `python -m minidl compress{flag}` ({time.time() - t0:.0f} s).")
    out["summary"] = summary
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidl compress", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few epochs only (a smoke run, about a minute)")
    p.add_argument("--tiny", action="store_true",
                   help="one epoch on 300 images, single timings: checks the pipeline in seconds (figures meaningless)")
    p.add_argument("--no-write", action="store_true", help="print the tables instead of updating RESULTS.md")
    p.add_argument("--plots", default=None,
                   help="folder for the plots (default: benchmarks/results when writing, else a temporary folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    out = run(quick=args.quick, write=not args.no_write, tiny=args.tiny, plots=args.plots,
              progress=not args.no_progress)
    for title in SECTIONS:
        print(f"## {title}\n\n{out[title]}\n")
    return 0

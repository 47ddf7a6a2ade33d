"""``python -m minidl quantize CHECKPOINT --out OUT``: a saved model as an int8 model.

Weights are quantized per output channel (symmetric int8); the input range of every
Linear/Conv2d is measured on a calibration set: the digits training split (default) or
an ``.npz`` file with an array ``X``. The int8 model is written as a packed file (all
int8 weights in one blob, integers in their smallest exact dtype, deflated unless
``--no-compress``; see ``minidl.deploy.packed``) that ``load_quantized`` reads. Prints its
size against the float model saved by ``minidl.save`` (the framework's normal file) and
against the float model packed the same way, and, with ``--evaluate`` (digits models
only), the test accuracy of the float and int8 models.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from .checkpoint import infer_arch, load_model, save_quantized
from .inference import predict
from .packed import save_packed
from .quantization import quantize_model

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minidl quantize", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a minidl.save file with the float model's state dict")
    p.add_argument("--out", required=True, help="where to write the int8 model (a packed file)")
    p.add_argument("--model", choices=["lenet", "mlp"], default=None, help="architecture (default: inferred)")
    p.add_argument("--input-size", type=int, default=None, help="LeNet5 image size when the checkpoint does not say")
    p.add_argument("--calibration", default="digits",
                   help="'digits' (the digits training split) or an .npz file holding an array X")
    p.add_argument("--num-calibration", type=int, default=256, help="calibration samples (default 256)")
    p.add_argument("--scale-dtype", choices=["float32", "float16"], default="float16",
                   help="storage of the per-channel weight scales (default float16: the scale is rounded up "
                        "to a float16 value before the weights are quantized with it)")
    p.add_argument("--compress", action=argparse.BooleanOptionalAction, default=True,
                   help="deflate the arrays in the file (default: on; --no-compress writes them plain)")
    p.add_argument("--evaluate", action="store_true", help="report digits test accuracy, float vs int8")
    return p


def _digits():
    from ..train.demo import digits_splits

    return digits_splits(0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..serialization import save

    model = load_model(args.checkpoint, args.model, args.input_size)
    if args.calibration == "digits":
        X_cal = _digits()[0]
    else:
        with np.load(args.calibration, allow_pickle=False) as z:
            if "X" not in z.files:
                raise SystemExit(f"quantize: {args.calibration} has no array named X (it has {z.files})")
            X_cal = z["X"]
    X_cal = X_cal[:args.num_calibration].astype(np.float32)
    qmodel = quantize_model(model, X_cal, scale_dtype=args.scale_dtype)
    arch = infer_arch(model.state_dict(), getattr(model, "input_size", None))
    save_quantized(qmodel, arch, args.out, compress=args.compress)
    with tempfile.TemporaryDirectory() as tmp:
        f_npz = os.path.getsize(save(model.state_dict(), os.path.join(tmp, "f.npz")))
        f_packed = os.path.getsize(save_packed(model.state_dict(), os.path.join(tmp, "f.bin"), {"arch": arch},
                                               compress=args.compress))
    q_size = os.path.getsize(args.out)
    how = "deflated" if args.compress else "plain"
    print(f"wrote {args.out}: int8 {q_size} bytes ({how}); vs the float32 minidl.save file ({f_npz} bytes) "
          f"{q_size / f_npz:.3f}x, vs the float32 model packed the same way ({f_packed} bytes) "
          f"{q_size / f_packed:.3f}x; calibrated on {len(X_cal)} samples")
    if args.evaluate:
        _, _, X_test, _, _, y_test = _digits()
        acc_f = float(np.mean(predict(model, X_test).argmax(1) == y_test))
        acc_q = float(np.mean(predict(qmodel, X_test).argmax(1) == y_test))
        print(f"digits test accuracy: float32 {acc_f:.4f}, int8 {acc_q:.4f}")
    return 0

"""``python -m minidl export CHECKPOINT --onnx OUT.onnx``: a saved model as an ONNX file.

The checkpoint is a ``minidl.save`` file of a LeNet5 or MLP (a state dict, or
``{"arch", "model"}`` as written by ``minidl.deploy.checkpoint.save_model``). The file is
checked with ``onnx.checker`` and, when onnxruntime is installed, run on random inputs of
two batch sizes and compared with minidl's outputs.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from .checkpoint import load_model

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minidl export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a minidl.save file with the model's state dict")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--model", choices=["lenet", "mlp"], default=None,
                   help="architecture (default: from the checkpoint or its weight shapes)")
    p.add_argument("--input-size", type=int, default=None, help="LeNet5 image size when the checkpoint does not say")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension to --batch")
    p.add_argument("--batch", type=int, default=1, help="batch size of the example input (default 1)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    return p


def _example_shape(model, batch: int) -> tuple:
    if hasattr(model, "input_size"):
        return (batch, model.in_channels, model.input_size, model.input_size)
    return (batch, model.in_features)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..onnx import export

    model = load_model(args.checkpoint, args.model, args.input_size)
    rng = np.random.default_rng(0)
    example = rng.random(_example_shape(model, args.batch)).astype(np.float32)
    path = export(model, example, args.onnx, dynamic_batch=not args.static_batch, opset=args.opset)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {type(model).__name__}, "
          f"{'static' if args.static_batch else 'dynamic'} batch, opset {args.opset})")
    if args.no_check:
        return 0
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: the file was checked with onnx.checker only")
        return 0
    import minidl

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for n in ([args.batch] if args.static_batch else [args.batch, args.batch + 4]):
        x = rng.random(_example_shape(model, n)).astype(np.float32)
        diff = float(np.abs(sess.run(None, {"input": x})[0] - model(minidl.tensor(x)).numpy()).max())
        print(f"onnxruntime vs minidl, batch {n}: max |difference| = {diff:.2e}")
        if diff > 1e-4:
            print("error: the exported model does not reproduce minidl's outputs")
            return 1
    return 0

"""The command line: ``python -m minidl COMMAND [options]``.

Each command lives in the module that does the work and exposes ``main(argv) -> int``;
this file only maps names to those modules, importing a command's module when it runs.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = {
    "demo": ("minidl.train.demo", "train a LeNet-style CNN on the bundled digits and report its errors"),
    "optimizers": ("minidl.optim.study", "race every optimizer on Rosenbrock, Beale and a quadratic; save plots"),
    "bench": ("minidl.bench", "run the benchmark suite and write benchmarks/RESULTS.md"),
    "ssl": ("minidl.ssl.experiments", "self-supervised pretraining + linear probe on digits with 5% labels"),
    "semi": ("minidl.semi.experiments", "semi-supervised, k-means and class-incremental experiments on digits"),
    "generative": ("minidl.generative.experiments", "VAE, conditional VAE, denoising autoencoder, GAN and WGAN-GP on digits"),
    "word2vec": ("minidl.embedding.experiments", "skip-gram word2vec on the standard library's docstrings: neighbours, analogies"),
    "graph": ("minidl.graph.experiments", "graph autoencoder on the karate club: link-prediction AUC, faction accuracy"),
    "fewshot": ("minidl.transfer.fewshot_experiments", "prototypical networks on held-out digit classes; Deep CORAL"),
    "transfer": ("minidl.transfer.experiments", "transfer-learning and fine-tuning experiments"),
    "ensembles": ("minidl.ensemble.experiments", "ensemble experiments against scikit-learn"),
    "export": ("minidl.deploy.export_cli", "export a checkpoint to ONNX"),
    "quantize": ("minidl.deploy.quantize_cli", "quantize a checkpoint to int8"),
    "compress": ("minidl.deploy.experiments", "measure quantization, pruning and distillation"),
}


def _parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="python -m minidl",
        description="minidl command line",
        epilog="commands:\n" + lines + "\n\n`python -m minidl COMMAND --help` explains a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", help="one of: " + ", ".join(COMMANDS))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    return p


def _add_source_checkout_to_path() -> None:
    """The experiment commands record their results with ``benchmarks/report.py``, which sits
    beside the package in a source checkout (not inside it): make it importable from any
    working directory."""
    root = Path(__file__).resolve().parent.parent
    if (root / "benchmarks" / "report.py").exists() and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    ns = parser.parse_args(argv[:1])
    if ns.command not in COMMANDS:
        parser.error(f"unknown command {ns.command!r}; choose one of: {', '.join(COMMANDS)}")
    module_name = COMMANDS[ns.command][0]
    _add_source_checkout_to_path()
    try:
        module = importlib.import_module(module_name)
        return int(module.main(argv[1:]) or 0)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            parser.error(f"the command {ns.command!r} is not available in this build ({module_name} is missing)")
        if e.name == "benchmarks":
            parser.error(f"the command {ns.command!r} records its results in benchmarks/, which only a source "
                         "checkout has: install minidl with `pip install -e .` from the repository")
        raise

"""word2vec on the standard library's docstrings: nearest neighbours and analogies.

Gathers the corpus (``stdlib_corpus``: every docstring of the standard library's source
files plus pydoc's language documentation), trains skip-gram with negative sampling and
prints, for a handful of common words, their nearest neighbours by cosine, and the answers
to a few analogy queries. With writing on, the results become the ``## word2vec`` section of
``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import time

from .word2vec import Word2Vec, stdlib_corpus

__all__ = ["QUERY_WORDS", "ANALOGIES", "run_word2vec", "word2vec_markdown", "main"]

SECTION = "word2vec"
QUERY_WORDS = ["file", "string", "list", "thread", "error", "true", "number", "directory", "socket", "read"]
ANALOGIES = [("true", "false", "yes"), ("read", "reader", "write"), ("encode", "encoding", "decode"),
             ("file", "files", "directory"), ("get", "set", "getattr")]


def run_word2vec(embedding_dim: int = 64, window: int = 5, epochs: int = 3, seed: int = 0, k: int = 8,
                 progress: bool = True) -> dict:
    """Train on ``stdlib_corpus()`` and answer the queries. Returns a dict with the model,
    corpus sizes, timings, per-epoch losses, ``neighbours`` (word -> [(word, cos)]) and
    ``analogies`` ((a, b, c) -> [(word, cos)] or None when a word is missing)."""
    t0 = time.perf_counter()
    sentences = stdlib_corpus()
    corpus_s = time.perf_counter() - t0
    model = Word2Vec(embedding_dim=embedding_dim, window=window, epochs=epochs, seed=seed)
    t0 = time.perf_counter()
    model.fit(sentences, progress=progress)
    train_s = time.perf_counter() - t0
    neighbours = {w: model.most_similar(w, k) for w in QUERY_WORDS if w in model.vocab}
    analogies = {q: (model.analogy(*q, k=3) if all(w in model.vocab for w in q) else None) for q in ANALOGIES}
    return {"model": model, "sentences": len(sentences), "tokens": sum(len(s) for s in sentences),
            "vocab": len(model.vocab), "corpus_s": corpus_s, "train_s": train_s, "losses": model.loss_history,
            "neighbours": neighbours, "analogies": analogies}


def word2vec_markdown(r: dict, command: str) -> str:
    from benchmarks.report import markdown_table

    m = r["model"]
    rows = [[w, ", ".join(f"{n} ({c:.2f})" for n, c in nn_)] for w, nn_ in r["neighbours"].items()]
    arows = [[f"{a} : {b} :: {c} : ?", "(a word is not in the vocabulary)" if ans is None
              else ", ".join(f"{n} ({s:.2f})" for n, s in ans)] for (a, b, c), ans in r["analogies"].items()]
    losses = " → ".join(f"{x:.3f}" for x in r["losses"])
    return (
        f"`{command}` (minidl/embedding/experiments.py). Corpus: every docstring of the Python standard "
        f"library's source files (read with `ast`, nothing imported) plus pydoc's language documentation: "
        f"{r['sentences']:,} docstrings/topics, {r['tokens']:,} tokens, {r['vocab']:,} words kept "
        f"(min_count {m.min_count}). Skip-gram with negative sampling: D = {m.embedding_dim}, window "
        f"{m.window} (random width per centre), {m.negative} negatives from unigram^0.75, subsampling t = "
        f"{m.subsample:g}, {m.epochs} epochs, batch {m.batch_size}, Adam lr {m.lr:g} decayed linearly. "
        f"Mean loss per epoch {losses}; training {r['train_s']:.0f} s (corpus gathering {r['corpus_s']:.0f} s).\n\n"
        "Nearest neighbours by cosine of the centre vectors:\n\n"
        + markdown_table(["word", "nearest neighbours (cosine)"], rows)
        + "\n\nAnalogies (3CosAdd: nearest to b − a + c on unit vectors, a, b, c excluded), top 3:\n\n"
        + markdown_table(["query", "answers (cosine)"], arows)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl word2vec [--dim 64] [--window 5] [--epochs 3] [--seed 0] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl word2vec",
        description="Train skip-gram word2vec (negative sampling) on the standard library's docstrings; print "
                    "the nearest neighbours of common words and a few analogies; write the 'word2vec' section "
                    "of benchmarks/RESULTS.md.")
    parser.add_argument("--dim", type=int, default=64, help="embedding size D (default 64)")
    parser.add_argument("--window", type=int, default=5, help="maximal context distance (default 5)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the corpus (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.dim < 1 or args.window < 1 or args.epochs < 1:
        parser.error("--dim, --window and --epochs must be >= 1")
    r = run_word2vec(args.dim, args.window, args.epochs, args.seed, progress=not args.quiet)
    command = f"python -m minidl word2vec --dim {args.dim} --window {args.window} --epochs {args.epochs} --seed {args.seed}"
    body = word2vec_markdown(r, command)
    print(f"## {SECTION}\n\n{body}\n")
    if not args.no_write:
        from benchmarks.report import write_section

        print(f"wrote the '{SECTION}' section of {write_section(SECTION, body)}")
    return 0

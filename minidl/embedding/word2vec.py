"""word2vec: skip-gram with negative sampling (SGNS).

Every word w has two vectors, an input (centre) vector v_w and an output (context) vector
u_w, both D-dimensional. For each centre word c and each word o seen within the window
around it, K "noise" words n_1..n_K are drawn from the unigram distribution raised to the
power 3/4, and the loss of the pair is::

    l(c, o) = -log sigma(u_o . v_c) - sum_k log sigma(-u_{n_k} . v_c)

so that true context words score high and random words score low. The vectors v_w are the
word embeddings; similar words (those that share contexts) end up with a high cosine.

The pieces, in the order training uses them: ``tokenize`` (lower-case words), ``Vocabulary``
(``min_count`` filter, frequent-word subsampling, the noise distribution), ``skipgram_pairs``
(centre/context pairs with a random window per centre, as in the original tool),
``sgns_loss`` (the formula above, differentiable), ``SkipGramNS`` (the two embedding
tables) and ``Word2Vec`` (training with a progress bar; ``most_similar`` and ``analogy``
queries by cosine). ``stdlib_corpus`` gathers a real corpus that is on every machine without
a download: the docstrings of Python's standard library plus the language documentation that
ships with ``pydoc``.
"""
from __future__ import annotations

import ast
import os
import re
import sysconfig
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import nn
from ..autograd import Function
from ..functional.embedding import embedding
from ..backend import manual_seed
from ..functional.elementwise import softplus
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["tokenize", "Vocabulary", "skipgram_pairs", "sgns_loss", "SkipGramNS", "Word2Vec", "stdlib_corpus"]

_WORD = re.compile(r"[a-z]+")


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and return its runs of letters a-z, in order ("Don't x2" ->
    ["don", "t", "x"]). Digits, punctuation and other symbols separate words."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize: expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class Vocabulary:
    """The words seen at least ``min_count`` times, most frequent first.

    Attributes:
        words: list of the V kept words (index -> word); ties in count broken alphabetically.
        index: dict word -> index.
        counts: (V,) int64 occurrence counts.

    Frequencies f(w) = count(w) / sum of counts. ``keep_probability(t)`` gives the chance
    that an occurrence of w survives subsampling, min(1, sqrt(t / f(w))) (Mikolov et al.,
    2013: discard with probability 1 - sqrt(t / f)); ``noise_distribution(0.75)`` gives
    P_n(w) = count(w)^0.75 / sum_v count(v)^0.75, the distribution negatives are drawn from.
    """

    def __init__(self, sentences: Iterable[Sequence[str]], min_count: int = 5):
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"Vocabulary: min_count must be a positive integer, got {min_count!r}")
        counter: Counter = Counter()
        for sentence in sentences:
            if isinstance(sentence, str):
                raise TypeError("Vocabulary: expected sentences as lists of tokens, got a str; "
                                "split it first, e.g. with minidl.embedding.tokenize")
            counter.update(sentence)
        kept = sorted(((w, n) for w, n in counter.items() if n >= min_count), key=lambda wn: (-wn[1], wn[0]))
        if not kept:
            raise ValueError(f"Vocabulary: no word occurs at least min_count={min_count} times "
                             f"(the corpus has {sum(counter.values())} tokens, {len(counter)} distinct)")
        self.min_count = int(min_count)
        self.words = [w for w, _ in kept]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.counts = np.array([n for _, n in kept], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Indices of the tokens that are in the vocabulary (others dropped), int64 (n,)."""
        return np.array([self.index[t] for t in tokens if t in self.index], dtype=np.int64)

    def frequencies(self) -> np.ndarray:
        """f(w) = count(w) / total count, float64 (V,)."""
        return self.counts / self.counts.sum()

    def keep_probability(self, threshold: float) -> np.ndarray:
        """min(1, sqrt(t / f(w))) per word, float64 (V,); t <= 0 keeps every word."""
        if threshold <= 0:
            return np.ones(len(self), dtype=np.float64)
        return np.minimum(1.0, np.sqrt(threshold / self.frequencies()))

    def noise_distribution(self, power: float = 0.75) -> np.ndarray:
        """P_n(w) = count(w)^power / sum_v count(v)^power, float64 (V,)."""
        weights = self.counts.astype(np.float64) ** power
        return weights / weights.sum()


def skipgram_pairs(ids: np.ndarray, window: int, rng: np.random.Generator,
                   sentence_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All (centre, context) pairs of a token sequence, with a random window per centre.

    For centre position i a width b_i is drawn uniformly from 1..window (so near words are
    paired more often than far ones, as in the original tool) and every position j with
    0 < |i - j| <= b_i in the same sentence gives the pair (ids[i], ids[j]).

    Args:
        ids: (n,) int word indices. window: maximal distance (>= 1).
        sentence_ids: optional (n,) sentence number of each token; pairs never cross sentences.

    Returns:
        centre, context: int64 arrays of the same length P.
    """
    ids = np.asarray(ids)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"skipgram_pairs: window must be a positive integer, got {window!r}")
    n = ids.shape[0]
    if n <= window:
        raise ValueError(f"skipgram_pairs: the corpus has {n} tokens, fewer than window + 1 = {window + 1}; "
                         "use a smaller window or a larger corpus")
    if sentence_ids is not None and np.shape(sentence_ids) != ids.shape:
        raise ValueError(f"skipgram_pairs: sentence_ids has shape {np.shape(sentence_ids)}, expected {ids.shape}")
    width = rng.integers(1, window + 1, size=n)
    centres, contexts = [], []
    for offset in range(1, window + 1):
        i = np.arange(n - offset)               # pairs (i, i + offset) and (i + offset, i)
        j = i + offset
        valid_right = width[i] >= offset        # j is inside i's window
        valid_left = width[j] >= offset         # i is inside j's window
        if sentence_ids is not None:
            same = sentence_ids[i] == sentence_ids[j]
            valid_right &= same
            valid_left &= same
        centres += [ids[i[valid_right]], ids[j[valid_left]]]
        contexts += [ids[j[valid_right]], ids[i[valid_left]]]
    return np.concatenate(centres).astype(np.int64), np.concatenate(contexts).astype(np.int64)


def sgns_loss(center: Tensor, context: Tensor, negatives: Tensor, reduction: str = "mean") -> Tensor:
    """The skip-gram negative-sampling loss of a batch of B pairs with K negatives each::

        l_b = -log sigma(u_b . v_b) - sum_k log sigma(-n_bk . v_b)
            = softplus(-u_b . v_b) + sum_k softplus(n_bk . v_b)

    Args:
        center: (B, D) centre vectors v_b. context: (B, D) context vectors u_b.
        negatives: (B, K, D) noise vectors n_bk.
        reduction: "mean" (over b, default), "sum" or "none" ((B,) losses).
    """
    for name, t in (("center", center), ("context", context), ("negatives", negatives)):
        if not isinstance(t, Tensor):
            raise TypeError(f"sgns_loss: {name} must be a Tensor, got {type(t).__name__}")
    if center.ndim != 2 or tuple(context.shape) != tuple(center.shape):
        raise ValueError(f"sgns_loss: expected center and context of the same shape (B, D), got "
                         f"{tuple(center.shape)} and {tuple(context.shape)}")
    B, D = center.shape
    if negatives.ndim != 3 or negatives.shape[0] != B or negatives.shape[2] != D:
        raise ValueError(f"sgns_loss: negatives must have shape (B, K, D) = ({B}, K, {D}), got {tuple(negatives.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"sgns_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    positive_score = (center * context).sum(axis=1)                                   # (B,)
    negative_score = (negatives * center.reshape(B, 1, D)).sum(axis=2)               # (B, K)
    losses = softplus(-positive_score) + softplus(negative_score).sum(axis=1)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


class _RowLookup(Function):
    """y = table[indices] (n, D);  dtable = S^T dy with S the (n, V) one-hot matrix of indices.

    Used for the skip-gram tables on NumPy: the backward's scatter-add is a SciPy sparse
    product, several times faster than ``np.add.at`` for batches of thousands of rows.
    """

    def __init__(self, indices: np.ndarray):
        self.indices = indices

    def forward(self, table):
        return table[self.indices]

    def backward(self, gy):
        return _RowScatter(self.indices, self.inputs[0].shape[0])(gy)


class _RowScatter(Function):
    """g (n, D) -> G (V, D) with G[v] = sum of g[i] over i where indices[i] == v;
    its backward is the lookup gg[indices]."""

    def __init__(self, indices: np.ndarray, num_rows: int):
        self.indices, self.num_rows = indices, num_rows

    def forward(self, g):
        import scipy.sparse

        n = self.indices.size
        one_hot_t = scipy.sparse.csr_matrix((np.ones(n, dtype=g.dtype), (self.indices, np.arange(n))),
                                            shape=(self.num_rows, n))
        return np.asarray(one_hot_t @ g.reshape(n, -1))

    def backward(self, gg):
        return _RowLookup(self.indices)(gg)


def _lookup(table: Tensor, indices) -> Tensor:
    """Rows of ``table`` (V, D) at integer ``indices`` (*) -> (*, D)."""
    idx = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if not isinstance(table.data, np.ndarray):       # CuPy: the framework's embedding op
        return embedding(idx, table)
    if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= table.shape[0])):
        raise IndexError(f"SkipGramNS: indices must be integers in [0, {table.shape[0]}), got dtype {idx.dtype}"
                         + (f" and range [{idx.min()}, {idx.max()}]" if idx.size and idx.dtype.kind in "iu" else ""))
    flat = _RowLookup(idx.reshape(-1).astype(np.int64))(table)
    return flat.reshape(*idx.shape, table.shape[1])


class SkipGramNS(nn.Module):
    """The two embedding tables of skip-gram: ``in_embed`` (V, D), the centre vectors v
    (the word vectors one keeps), and ``out_embed`` (V, D), the context vectors u.

    As in the original tool, v starts uniform in [-0.5/D, 0.5/D] and u at zero.
    ``forward(center, context, negatives)`` takes int index arrays (B,), (B,) and (B, K)
    and returns ``sgns_loss`` of their vectors.
    """

    def __init__(self, vocab_size: int, embedding_dim: int):
        super().__init__()
        self.in_embed = nn.Embedding(vocab_size, embedding_dim)
        self.out_embed = nn.Embedding(vocab_size, embedding_dim)
        nn.init.uniform_(self.in_embed.weight, -0.5 / embedding_dim, 0.5 / embedding_dim)
        nn.init.zeros_(self.out_embed.weight)

    def forward(self, center, context, negatives) -> Tensor:
        return sgns_loss(_lookup(self.in_embed.weight, center), _lookup(self.out_embed.weight, context),
                         _lookup(self.out_embed.weight, negatives))


class Word2Vec:
    """Skip-gram word vectors trained with negative sampling.

    Args:
        embedding_dim: D. window: maximal centre-context distance (a random width 1..window
        is drawn per centre). min_count: drop rarer words. negative: K noise words per pair.
        subsample: threshold t of frequent-word subsampling (0 disables it), redrawn each epoch.
        epochs, batch_size: passes over the pairs and pairs per step.
        lr: initial Adam step size on the batch-mean loss, decayed linearly to ``lr * 1e-3``.
            (The original tool uses plain SGD, one pair at a time; on minibatches, Adam
            reaches far better neighbours in a few epochs on a corpus of this size.)
        seed: makes the vectors reproducible.

    After ``fit(sentences)``: ``vocab`` (a ``Vocabulary``), ``model`` (a ``SkipGramNS``),
    ``vectors`` ((V, D) NumPy array of the centre vectors), ``loss_history`` (mean loss per
    epoch); queries ``most_similar(word, k)``, ``analogy(a, b, c)``, ``similarity(w1, w2)``.
    """

    def __init__(self, embedding_dim: int = 100, window: int = 5, min_count: int = 5, negative: int = 5,
                 subsample: float = 1e-4, epochs: int = 3, batch_size: int = 1024, lr: float = 0.01,
                 seed: int = 0):
        for name, value in (("embedding_dim", embedding_dim), ("window", window), ("min_count", min_count),
                            ("negative", negative), ("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Word2Vec: {name} must be a positive integer, got {value!r}")
        if lr <= 0:
            raise ValueError(f"Word2Vec: lr must be positive, got {lr}")
        self.embedding_dim, self.window, self.min_count = embedding_dim, window, min_count
        self.negative, self.subsample, self.epochs = negative, subsample, epochs
        self.batch_size, self.lr, self.seed = batch_size, lr, seed
        self.vocab: Vocabulary | None = None
        self.model: SkipGramNS | None = None
        self.loss_history: list[float] = []

    def fit(self, sentences: Iterable[Sequence[str]], progress: bool = True) -> "Word2Vec":
        """Train on ``sentences`` (lists of tokens; pairs never cross a sentence boundary)."""
        sentences = [list(s) for s in sentences]
        self.vocab = Vocabulary(sentences, self.min_count)
        encoded = [self.vocab.encode(s) for s in sentences]
        ids = np.concatenate(encoded) if encoded else np.zeros(0, dtype=np.int64)
        if ids.size <= self.window:
            raise ValueError(f"Word2Vec.fit: the corpus has {ids.size} in-vocabulary tokens, fewer than "
                             f"window + 1 = {self.window + 1}; use a smaller window or a larger corpus")
        sentence_ids = np.repeat(np.arange(len(encoded)), [len(e) for e in encoded])
        rng = np.random.default_rng(self.seed)
        manual_seed(self.seed)
        self.model = SkipGramNS(len(self.vocab), self.embedding_dim)
        keep = self.vocab.keep_probability(self.subsample)
        noise_cdf = np.cumsum(self.vocab.noise_distribution(0.75))
        noise_cdf[-1] = 1.0
        # the number of steps is fixed up front from the expected pair count, for the lr schedule
        expected = max(1, int(np.ceil(keep[ids].sum() * (self.window + 1) / self.batch_size)))
        total_steps, step = expected * self.epochs, 0
        opt = Adam(self.model.parameters(), lr=self.lr)
        self.loss_history = []
        bar = tqdm(total=total_steps, desc="word2vec", disable=not progress)
        for _ in range(self.epochs):
            mask = rng.random(ids.size) < keep[ids]
            center = context = np.zeros(0, dtype=np.int64)
            if mask.sum() > self.window:
                center, context = skipgram_pairs(ids[mask], self.window, rng, sentence_ids[mask])
            if center.size == 0:        # subsampling left no pair: use every token this epoch
                center, context = skipgram_pairs(ids, self.window, rng, sentence_ids)
            if center.size == 0:
                raise ValueError("Word2Vec.fit: no (centre, context) pair: every sentence has a single "
                                 "in-vocabulary token")
            order = rng.permutation(center.size)
            losses = []
            for start in range(0, order.size, self.batch_size):
                batch = order[start:start + self.batch_size]
                negatives = np.searchsorted(noise_cdf, rng.random((batch.size, self.negative)), side="right")
                frac = min(step / total_steps, 1.0)
                opt.param_groups[0]["lr"] = self.lr * max(1.0 - frac, 1e-3)
                loss = self.model(center[batch], context[batch], negatives)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if step <= total_steps:
                    bar.update(1)
            self.loss_history.append(float(np.mean(losses)))
            bar.set_postfix(loss=f"{self.loss_history[-1]:.3f}")
        bar.close()
        return self

    # ------------------------------------------------------------------------ queries
    def _check_fitted(self, op: str) -> None:
        if self.model is None:
            raise RuntimeError(f"Word2Vec.{op}: call fit() first")

    @property
    def vectors(self) -> np.ndarray:
        """The (V, D) centre vectors, row i for ``vocab.words[i]``."""
        self._check_fitted("vectors")
        return self.model.in_embed.weight.numpy()

    def _index(self, op: str, word: str) -> int:
        self._check_fitted(op)
        if word not in self.vocab.index:
            raise KeyError(f"Word2Vec.{op}: {word!r} is not in the vocabulary ({len(self.vocab)} words seen at "
                           f"least min_count={self.min_count} times)")
        return self.vocab.index[word]

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index("__getitem__", word)]

    def _unit_vectors(self) -> np.ndarray:
        v = self.vectors.astype(np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def similarity(self, word1: str, word2: str) -> float:
        """cos(v_word1, v_word2)."""
        i, j = self._index("similarity", word1), self._index("similarity", word2)
        unit = self._unit_vectors()
        return float(unit[i] @ unit[j])

    def _nearest(self, query: np.ndarray, exclude: set[int], k: int) -> list[tuple[str, float]]:
        unit = self._unit_vectors()
        q = query / max(np.linalg.norm(query), 1e-12)
        cos = unit @ q
        cos[list(exclude)] = -np.inf
        top = np.argsort(-cos, kind="stable")[:k]
        return [(self.vocab.words[i], float(cos[i])) for i in top]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The k words whose vectors have the highest cosine with ``word``'s (itself excluded),
        as (word, cosine) pairs, best first."""
        i = self._index("most_similar", word)
        return self._nearest(self._unit_vectors()[i], {i}, k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """"a is to b as c is to ?": the k words nearest (by cosine) to
        unit(v_b) - unit(v_a) + unit(v_c), excluding a, b and c (3CosAdd)."""
        ia, ib, ic = (self._index("analogy", w) for w in (a, b, c))
        unit = self._unit_vectors()
        return self._nearest(unit[ib] - unit[ia] + unit[ic], {ia, ib, ic}, k)


# ------------------------------------------------------------------------------ corpus
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip", "site-packages",
              "dist-packages", "__pycache__", "pydoc_data"}


def stdlib_corpus(include_language_docs: bool = True) -> list[list[str]]:
    """A real English corpus that is on every machine: one tokenized sentence per docstring
    of every module, class and function in the standard library's source files (read with
    ``ast``, so no module is imported or run), plus, with ``include_language_docs``, each
    topic of the language documentation that ``pydoc`` ships (``pydoc_data.topics``).

    Files are read in sorted order, so the corpus is the same on every run of one Python
    version (about 300,000 tokens on CPython 3.11). Returns a list of token lists.
    """
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("config-"))
        files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    sentences = []
    for path in sorted(files):
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue    # a file this interpreter cannot parse (e.g. a Python 2 example) adds nothing
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    sentences.append(tokenize(doc))
    if include_language_docs:
        try:
            from pydoc_data.topics import topics
        except ImportError:   # some minimal builds leave pydoc_data out
            topics = {}
        sentences += [tokenize(topics[name]) for name in sorted(topics)]
    return [s for s in sentences if s]

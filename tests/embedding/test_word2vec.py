"""word2vec: tokenizer, vocabulary, pair generation, the SGNS loss (vs NumPy and torch,
gradchecked), the fast row lookup, planted-structure training, queries and bad input."""
import numpy as np
import pytest

import minidl
from minidl.embedding import Vocabulary, Word2Vec, sgns_loss, skipgram_pairs, stdlib_corpus, tokenize
from minidl.embedding.word2vec import SkipGramNS, _lookup


def t64(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def numpy_sgns(v, u, n):
    log_sigmoid = lambda x: -np.log1p(np.exp(-x))  # noqa: E731
    pos = np.einsum("bd,bd->b", v, u)
    neg = np.einsum("bkd,bd->bk", n, v)
    return -log_sigmoid(pos) - log_sigmoid(-neg).sum(axis=1)


def test_tokenize_lowercases_and_splits_on_non_letters():
    assert tokenize("Return the FILE's path, 2x!") == ["return", "the", "file", "s", "path", "x"]
    with pytest.raises(TypeError, match="tokenize"):
        tokenize(["a", "b"])


def test_vocabulary_counts_min_count_and_distributions():
    sents = [["b", "a", "a", "c"], ["a", "b", "d"]]
    vocab = Vocabulary(sents, min_count=2)
    assert vocab.words == ["a", "b"] and list(vocab.counts) == [3, 2]
    assert "c" not in vocab and list(vocab.encode(["d", "b", "a"])) == [1, 0]
    noise = vocab.noise_distribution(0.75)
    np.testing.assert_allclose(noise, np.array([3, 2]) ** 0.75 / (3 ** 0.75 + 2 ** 0.75))
    np.testing.assert_allclose(vocab.keep_probability(0.5), np.minimum(1, np.sqrt(0.5 / np.array([0.6, 0.4]))))
    assert np.all(vocab.keep_probability(0) == 1)
    with pytest.raises(ValueError, match="min_count=5"):
        Vocabulary(sents, min_count=5)
    with pytest.raises(TypeError, match="lists of tokens"):
        Vocabulary(["a b c"])


def test_skipgram_pairs_match_a_direct_loop():
    ids = np.array([5, 6, 7, 8, 9, 10, 11])
    sentence = np.array([0, 0, 0, 0, 1, 1, 1])
    window = 2
    centre, context = skipgram_pairs(ids, window, np.random.default_rng(3), sentence)
    width = np.random.default_rng(3).integers(1, window + 1, size=ids.size)
    expected = sorted((ids[i], ids[j]) for i in range(ids.size) for j in range(ids.size)
                      if 0 < abs(i - j) <= width[i] and sentence[i] == sentence[j])
    assert sorted(zip(centre.tolist(), context.tolist())) == expected


def test_skipgram_pairs_reject_a_corpus_smaller_than_the_window():
    with pytest.raises(ValueError, match="fewer than window"):
        skipgram_pairs(np.arange(3), 5, np.random.default_rng(0))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sgns_loss_matches_numpy_formula(reduction):
    rng = np.random.default_rng(0)
    v, u, n = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 3, 4)) * 3
    got = sgns_loss(t64(v), t64(u), t64(n), reduction=reduction).numpy()
    ref = numpy_sgns(v, u, n)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_sgns_loss_matches_torch_and_its_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 4, 3))]
    ours = [t64(a) for a in arrays]
    sgns_loss(*ours).backward()
    v, u, n = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref = (-torch.nn.functional.logsigmoid((v * u).sum(1))
           - torch.nn.functional.logsigmoid(-(n @ v.unsqueeze(2)).squeeze(2)).sum(1)).mean()
    ref.backward()
    for a, b in zip(ours, (v, u, n)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_sgns_loss_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(2)
    inputs = [t64(rng.normal(size=(4, 3))), t64(rng.normal(size=(4, 3))), t64(rng.normal(size=(4, 2, 3)))]
    assert minidl.gradcheck(lambda a, b, c: sgns_loss(a, b, c, reduction="none"), inputs)
    assert minidl.gradgradcheck(lambda a, b, c: sgns_loss(a, b, c), inputs)


def test_sgns_loss_rejects_mismatched_shapes():
    a = t64(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"center and context"):
        sgns_loss(a, t64(np.zeros((4, 2))), t64(np.zeros((4, 2, 3))))
    with pytest.raises(ValueError, match=r"\(B, K, D\) = \(4, K, 3\)"):
        sgns_loss(a, a, t64(np.zeros((4, 3))))
    with pytest.raises(ValueError, match="reduction"):
        sgns_loss(a, a, t64(np.zeros((4, 2, 3))), reduction="avg")


def test_row_lookup_gathers_and_scatter_adds_repeated_rows():
    table = t64(np.random.default_rng(3).normal(size=(5, 3)))
    idx = np.array([[0, 4], [4, 4]])
    out = _lookup(table, idx)
    np.testing.assert_array_equal(out.numpy(), table.numpy()[idx])
    out.sum().backward()
    np.testing.assert_array_equal(table.grad.numpy()[:, 0], [1, 0, 0, 0, 3])
    assert minidl.gradcheck(lambda t: _lookup(t, idx) ** 2, [table])
    assert minidl.gradgradcheck(lambda t: _lookup(t, idx) ** 2, [table])
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        _lookup(table, np.array([5]))


def test_skipgram_module_loss_equals_sgns_of_its_tables():
    minidl.manual_seed(0)
    m = SkipGramNS(7, 4)
    minidl.nn.init.normal_(m.out_embed.weight)
    c, o, n = np.array([1, 2]), np.array([3, 4]), np.array([[5, 6], [0, 1]])
    vin, vout = m.in_embed.weight.numpy().astype(np.float64), m.out_embed.weight.numpy().astype(np.float64)
    np.testing.assert_allclose(m(c, o, n).item(), numpy_sgns(vin[c], vout[o], vout[n]).mean(), rtol=1e-5)


def planted_corpus(groups=8, sentences_per_group=200, seed=0):
    """Group g has 4 context words and two target words a_g, b_g; every sentence is
    "context target context" with the target a_g or b_g at random, so a_g and b_g share
    exactly the same contexts (and never meet): their vectors should become each other's
    nearest neighbours."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(sentences_per_group):
        for g in rng.permutation(groups):
            left, right = (f"ctx{g}x{k}" for k in rng.integers(0, 4, size=2))
            sentences.append([left, f"{'ab'[rng.integers(0, 2)]}{g}", right])
    return sentences


def test_planted_pairs_become_nearest_neighbours():
    model = Word2Vec(embedding_dim=16, window=1, min_count=1, negative=5, subsample=0, epochs=4,
                     batch_size=256, lr=0.02, seed=0).fit(planted_corpus(), progress=False)
    for g in range(8):
        assert model.most_similar(f"a{g}", k=1)[0][0] == f"b{g}", model.most_similar(f"a{g}", k=5)
        assert model.most_similar(f"b{g}", k=1)[0][0] == f"a{g}"
    assert model.loss_history[-1] < model.loss_history[0]


def test_analogy_and_similarity_use_cosine_on_the_vectors():
    model = Word2Vec(embedding_dim=2, window=1, min_count=1, epochs=1, batch_size=4)
    model.fit([["man", "woman", "king", "queen", "apple"]] * 3, progress=False)
    vectors = {"man": [1, 0], "woman": [1, 1], "king": [3, 0], "queen": [3, 3], "apple": [-1, 0.2]}
    for w, v in vectors.items():
        model.model.in_embed.weight.data[model.vocab.index[w]] = v
    assert model.analogy("man", "woman", "king")[0][0] == "queen"
    assert model.similarity("man", "king") == pytest.approx(1.0)
    assert model.most_similar("man", k=4)[-1][0] == "apple"
    with pytest.raises(KeyError, match="'prince' is not in the vocabulary"):
        model.most_similar("prince")


def test_fit_rejects_a_corpus_smaller_than_the_window():
    with pytest.raises(ValueError, match=r"3 in-vocabulary tokens, fewer than window \+ 1 = 6"):
        Word2Vec(window=5, min_count=1).fit([["a", "b", "c"]], progress=False)
    with pytest.raises(RuntimeError, match="fit"):
        Word2Vec().most_similar("a")
    with pytest.raises(ValueError, match="window"):
        Word2Vec(window=0)


@pytest.mark.slow
def test_stdlib_corpus_is_a_large_english_text():
    sentences = stdlib_corpus()
    tokens = [t for s in sentences for t in s]
    assert len(sentences) > 1000 and len(tokens) > 100_000
    counts = {w: tokens.count(w) for w in ("the", "file", "return")}
    assert all(n > 500 for n in counts.values()), counts

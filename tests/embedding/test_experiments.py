"""The word2vec experiment's command line and report (the full run takes about a minute)."""
import pytest

from minidl.embedding.experiments import main, word2vec_markdown
from minidl.embedding.word2vec import Word2Vec


def test_help_and_bad_arguments():
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main(["--window", "0"])
    assert e.value.code == 2


def test_markdown_lists_neighbours_and_missing_analogy_words():
    model = Word2Vec(embedding_dim=4, window=1, min_count=1, epochs=1)
    model.fit([["a", "b", "c", "d"]] * 4, progress=False)
    r = {"model": model, "sentences": 4, "tokens": 16, "vocab": 4, "corpus_s": 0.0, "train_s": 0.1,
         "losses": model.loss_history, "neighbours": {"a": model.most_similar("a", 2)},
         "analogies": {("a", "b", "c"): model.analogy("a", "b", "c"), ("x", "y", "z"): None}}
    text = word2vec_markdown(r, "cmd")
    assert "| a |" in text and "a : b :: c : ?" in text and "not in the vocabulary" in text

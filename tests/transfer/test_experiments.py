"""python -m minidl transfer: the splits, the corpus task, the vocabulary, tiny runs of both
experiments and the command line."""
import numpy as np
import pytest

from minidl.transfer import experiments as ex


def test_digits_transfer_split_separates_the_classes_and_the_labels():
    d = ex.digits_transfer_split(0, labels_per_class=3)
    assert set(np.unique(d["ys"])) == set(np.unique(d["ys_test"])) == {0, 1, 2, 3, 4}
    assert set(np.unique(d["yt"])) == {0, 1, 2, 3, 4}              # 5-9 relabelled
    assert np.bincount(d["yt"]).tolist() == [3] * 5
    assert d["Xt"].shape == (15, 1, 8, 8) and d["Xt"].dtype == np.float32
    assert len(d["ys"]) + len(d["ys_test"]) + len(d["yt"]) + len(d["yt_test"]) == 1797
    again = ex.digits_transfer_split(0, labels_per_class=10)
    np.testing.assert_array_equal(again["Xs"], d["Xs"])          # the source split depends on the seed only
    with pytest.raises(ValueError, match="leave no test image"):
        ex.digits_transfer_split(0, labels_per_class=500)


def test_vocab_reserves_padding_unknown_and_mask():
    v = ex.Vocab([["a", "b", "a"], ["b", "a", "c"]], size=5, min_count=2)
    assert v.words == ["<pad>", "<unk>", "<mask>", "a", "b"]
    np.testing.assert_array_equal(v.encode([["a", "c", "b"], ["b"]], 4), [[3, 1, 4, 0], [4, 0, 0, 0]])


def test_text_task_keeps_the_test_docstrings_out_of_pretraining():
    corpus = [(topic, [topic, "word", str(i), "x"]) for topic in ex.TOPICS for i in range(30)]
    corpus += [("other", ["plain", "text", "here", "too"])]
    a = ex.text_task(0, corpus, labels_per_class=5, test_per_class=10)
    b = ex.text_task(1, corpus, labels_per_class=5, test_per_class=10)
    assert len(a["train"]) == 30 and len(a["test"]) == 60
    assert a["test"] == b["test"] and a["train"] != b["train"]       # fixed test set, labels drawn per seed
    test_texts = {tuple(t) for t, _ in a["test"]}
    assert not test_texts & {tuple(t) for t in a["pretrain"]}
    assert not test_texts & {tuple(t) for t, _ in a["train"]}
    assert len(a["pretrain"]) == len(corpus) - 60
    with pytest.raises(ValueError, match="fewer than"):
        ex.text_task(0, corpus, labels_per_class=25, test_per_class=10)


def test_tiny_cnn_run_reports_every_method():
    r = ex.run_cnn([0], budgets=(2,), pretrain_epochs=1, steps=2, progress=False)
    assert set(r["accuracy"][2]) == set(ex.CNN_METHODS)
    assert all(0.0 <= v[0] <= 1.0 for v in r["accuracy"][2].values())
    pytest.importorskip("benchmarks.report", reason="the markdown helpers live in benchmarks/")
    text = ex.cnn_markdown(r, [0], (2,), 1, 2, "cmd")
    assert "feature extraction" in text and "2 labels/class" in text


def test_docstring_corpus_reads_the_standard_library():
    corpus = ex.docstring_corpus(packages=("email", "json"), language_topics=False)
    packages = {p for p, _ in corpus}
    assert packages == {"email", "json"} and len(corpus) > 100
    assert all(t and all(w.isalpha() and w.islower() for w in t) for _, t in corpus)
    json_words = {w for p, t in corpus if p == "json" for w in t}
    assert {"json", "decode"} <= json_words


def test_tiny_transformer_run_pretrains_and_compares():
    rng = np.random.default_rng(0)
    words = {topic: [f"{topic}{k}" for k in range(6)] + ["the", "of"] for topic in ex.TOPICS}
    corpus = [(topic, list(rng.choice(words[topic], size=8))) for topic in ex.TOPICS for _ in range(20)]
    r = ex.run_transformer([0], pretrain_steps=3, steps=2, labels_per_class=4, test_per_class=6, corpus=corpus,
                           progress=False)
    assert set(r["accuracy"]) == set(ex.TEXT_METHODS)
    assert r["n_test"] == 36 and r["n_train"] == 24
    assert r["accuracy"][ex.TEXT_METHODS[3]][0] > 0.9        # the bag of words sees the topic-specific words
    assert np.isfinite(r["loss_first"]) and 0.0 <= r["mlm_after"] <= 1.0
    pytest.importorskip("benchmarks.report", reason="the markdown helpers live in benchmarks/")
    assert "Fine-tuned minus scratch" in ex.text_markdown(r, [0], 3, 2, "cmd")


def test_command_help(capsys):
    with pytest.raises(SystemExit) as e:
        ex.main(["--help"])
    assert e.value.code == 0
    assert "masked tokens" in capsys.readouterr().out

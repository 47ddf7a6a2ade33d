"""The experiment script: its split, its baseline, and a tiny end-to-end run of every part."""
import numpy as np
import pytest

from minidl.data import load_digits
from minidl.semi import experiments
from minidl.semi.experiments import digits_split, main, train_supervised


def test_digits_split_is_stratified_disjoint_and_5_percent():
    d = digits_split(0)
    X, y = load_digits()
    assert len(d["X_train"]) + len(d["X_test"]) == len(X)
    assert len(d["X_labeled"]) + len(d["X_unlabeled"]) == len(d["X_train"])
    counts = np.bincount(d["y_labeled"], minlength=10)
    assert counts.min() >= 1 and abs(counts.sum() / len(d["X_train"]) - 0.05) < 0.01
    assert len(d["X_test"]) == 450 and np.bincount(d["y_test"]).min() >= 44
    assert not np.array_equal(digits_split(1)["X_test"], d["X_test"])


def test_digits_split_equals_the_self_supervised_split():
    ssl = pytest.importorskip("minidl.ssl.experiments", reason="the ssl experiments are not in this build")
    X, y = load_digits()
    theirs = ssl.labelled_split(X, y, 0.05, 0.25, 2)
    ours = digits_split(2)
    np.testing.assert_array_equal(ours["X_labeled"], theirs["X_labelled"])
    np.testing.assert_array_equal(ours["y_test"], theirs["y_test"])


def test_supervised_baseline_learns_the_labeled_set():
    d = digits_split(0)
    model = train_supervised(experiments._mlp(0), d["X_labeled"], d["y_labeled"], steps=150, seed=0,
                             progress=False)
    assert experiments.accuracy(model, d["X_labeled"], d["y_labeled"]) > 0.9
    assert experiments.accuracy(model, d["X_test"], d["y_test"]) > 0.5


@pytest.mark.slow
def test_tiny_run_of_every_part_prints_all_tables(capsys):
    assert main(["--seeds", "1", "--steps", "5", "--epochs", "1", "--no-write", "--quiet"]) == 0
    out = capsys.readouterr().out
    for title in (experiments.SEMI_SECTION, experiments.KMEANS_SECTION, experiments.INCREMENTAL_SECTION):
        assert f"## {title}" in out
    for name in experiments.SEMI_METHODS + experiments.INCREMENTAL_METHODS:
        assert name in out
    assert "within 1% of scikit-learn" in out


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--quick" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])

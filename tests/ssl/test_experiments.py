"""minidl.ssl.experiments: the split, the scratch baseline, the table, the command line."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.data import load_digits
from minidl.ssl.encoders import DigitEncoder
from minidl.ssl.experiments import labelled_split, main, results_markdown, train_end_to_end


def test_labelled_split_is_stratified_disjoint_and_seeded():
    X, y = load_digits()
    s = labelled_split(X, y, 0.05, 0.25, seed=3)
    assert len(s["X_train"]) + len(s["X_test"]) == len(X)
    assert abs(len(s["X_test"]) - 0.25 * len(X)) <= 10
    counts = np.bincount(s["y_labelled"], minlength=10)
    assert counts.min() >= 6 and counts.max() <= 8          # ~5% of ~135 training images per class
    flat = lambda a: {a_.tobytes() for a_ in a}             # noqa: E731
    assert flat(s["X_labelled"]) <= flat(s["X_train"])     # labelled images are training images
    # (a few digits are duplicated in the data set, so only check the test set by index count)
    again = labelled_split(X, y, 0.05, 0.25, seed=3)
    np.testing.assert_array_equal(again["y_labelled"], s["y_labelled"])
    assert not np.array_equal(labelled_split(X, y, 0.05, 0.25, seed=4)["X_labelled"], s["X_labelled"])


def test_validation_images_are_unlabelled_training_images_stratified_and_not_test_images():
    X, y = load_digits()
    s = labelled_split(X, y, 0.05, 0.25, seed=0, validation_size=300)
    assert s["X_val"].shape == (300, 1, 8, 8) and s["y_val"].shape == (300,)
    counts = np.bincount(s["y_val"], minlength=10)
    assert counts.min() >= 29 and counts.max() <= 31                # 10% of each class's unlabelled images
    # Identify images by their row in X (the data set holds a few duplicated digits).
    rows = {X[i].tobytes(): i for i in range(len(X))}
    index = lambda a: {rows[x.tobytes()] for x in a}               # noqa: E731
    val, train, test = index(s["X_val"]), index(s["X_train"]), index(s["X_test"])
    assert val <= train and not val & index(s["X_labelled"]) and not val & test
    np.testing.assert_array_equal(y[sorted(val)], s["y_val"])
    with pytest.raises(ValueError, match=r"labelled_split: validation_size must be in \[0, "):
        labelled_split(X, y, 0.05, 0.25, seed=0, validation_size=5000)


def test_training_from_scratch_learns_from_few_labels():
    X, y = load_digits()
    s = labelled_split(X, y, 0.1, 0.25, seed=0)
    minidl.manual_seed(0)
    acc = train_end_to_end(DigitEncoder(width=8, feature_dim=32), s["X_labelled"], s["y_labelled"],
                           s["X_test"], s["y_test"], steps=40, weight_decay=1e-4)
    assert acc > 0.5  # chance is 0.1


def test_results_table_reports_mean_spread_and_paired_gain():
    rows = {"scratch (encoder trained on the 5% only)": {"end_to_end": [0.8, 0.9], "seconds": [3.0, 5.0]},
            "scratch, narrow encoder (width 16, 64 features)": {"end_to_end": [0.9, 0.9], "seconds": [1.0, 1.0]},
            "SimCLR": {"probe": [0.9, 0.92], "knn": [0.85, 0.86], "end_to_end": [0.85, 0.94],
                       "seconds": [10.0, 12.0]}}
    md = results_markdown(rows, [0, 1], epochs=5, n_labelled=69, k=5)
    # gains are paired by seed: probe - scratch = (+10, +2) -> +6.0 ± 5.7; probe - narrow = (0, +2) -> +1.0 ± 1.4;
    # end to end - scratch = (+5, +4) -> +4.5 ± 0.7
    assert ("| SimCLR | 91.0 ± 1.4 | 90.0 / 92.0 | +6.0 ± 5.7 | +1.0 ± 1.4 | 85.5 ± 0.7 | 89.5 ± 6.4 | +4.5 ± 0.7 "
            "| 11 ± 1 |") in md
    assert "| scratch (encoder trained on the 5% only) | - | - | - | - | - | 85.0 ± 7.1 | - | 4 ± 1 |" in md
    assert "| scratch, narrow encoder (width 16, 64 features) | - | - | - | - | - | 90.0 ± 0.0 | +5.0 ± 7.1 | 1 ± 0 |" in md


def test_command_line_help_and_bad_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "linear probes on 5% of the labels" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])
    with pytest.raises(SystemExit):
        main(["--probe-views", "-1"])


def test_run_on_validation_images_scores_every_contender(monkeypatch):
    from minidl.ssl import experiments

    # A tiny encoder and schedule: this checks the plumbing, not the accuracies.
    monkeypatch.setattr(experiments, "WIDTH", 4)
    monkeypatch.setattr(experiments, "FEATURE_DIM", 8)
    rows = experiments.run([0], ["simclr"], epochs=1, batch_size=256, end_to_end_steps=3, probe_views=1,
                           evaluate_on="validation", progress=False)
    assert set(rows) == {"pixels + linear", "random encoder", experiments.SCRATCH, experiments.NARROW_SCRATCH,
                         "SimCLR"}
    assert set(rows["SimCLR"]) == {"probe", "knn", "end_to_end", "seconds"}
    assert all(0.0 <= v[0] <= 1.0 for r in rows.values() for key, v in r.items() if key != "seconds")
    with pytest.raises(ValueError, match="evaluate_on must be 'test' or 'validation'"):
        experiments.run([0], [], evaluate_on="train", progress=False)

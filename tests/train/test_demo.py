"""The demo command and the end-to-end digits test."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import optim
from minidl.data import DataLoader, TensorDataset, load_digits
from minidl.models import MLP
from minidl.train import EarlyStopping, Trainer, accuracy, train_val_test_split
from minidl.train.demo import digits_augmentation, digits_splits, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_reports_and_saves_the_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--epochs", "2", "--seed", "1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for line in ("1257 training, 270 validation, 270 test images", "training", "validation",
                 "test (out-of-sample)", "test accuracy:", "best epoch"):
        assert line in text
    assert "UNDER-FITTING" in text or "good fit" in text or "OVER-FITTING" in text
    for name in ("learning_curves.png", "confusion_matrix.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_demo_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--epochs", "--seed", "--device", "--out", "--batch-size"):
        assert option in text


def test_demo_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        main(["--epochs", "0"])
    with pytest.raises(SystemExit):
        main(["--device", "tpu"])
    if not minidl.cupy_available():
        with pytest.raises(SystemExit):
            main(["--device", "cuda"])
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_demo_split_is_stratified_and_disjoint():
    X_tr, X_va, X_te, y_tr, y_va, y_te = digits_splits(0)
    assert (len(y_tr), len(y_va), len(y_te)) == (1257, 270, 270)
    for y in (y_va, y_te):       # each class holds its share of the 1,797 to within one sample
        counts = np.bincount(y, minlength=10)
        full = np.bincount(load_digits()[1], minlength=10)
        assert np.all(np.abs(counts - full * 270 / 1797) < 1.5)
    rows = {x.tobytes() for x in X_tr}
    assert not any(x.tobytes() in rows for x in X_te)


def test_demo_augmentation_keeps_shape_and_dtype_and_is_seeded():
    x = load_digits()[0][0]
    a, b = digits_augmentation(3), digits_augmentation(3)
    ya, yb = a(x), b(x)
    assert ya.shape == x.shape and ya.dtype == x.dtype
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, x)


@pytest.mark.slow
def test_end_to_end_small_model_reaches_95_percent_on_the_digits():
    minidl.manual_seed(0)
    X, y = load_digits()
    X_tr, X_va, X_te, y_tr, y_va, y_te = train_val_test_split(X, y, 0.15, 0.15, seed=0)
    train = DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True, seed=0)
    val = DataLoader(TensorDataset(X_va, y_va), batch_size=256)
    model = MLP(64, hidden=(128,), num_classes=10)
    trainer = Trainer(model, F.cross_entropy, optim.Adam(model.parameters(), lr=3e-3),
                      callbacks=[EarlyStopping(patience=5, restore_best_weights=True)], progress=False)
    history = trainer.fit(train, val, epochs=40)
    test_acc = accuracy(y_te, trainer.predict(X_te))
    assert test_acc >= 0.95, f"test accuracy {test_acc:.4f} after {len(history.epoch)} epochs"
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]

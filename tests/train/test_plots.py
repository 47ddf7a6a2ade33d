"""PNG plots: learning curves and confusion matrices are written and are real images."""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="plots need matplotlib")
from matplotlib import image as mpimg  # noqa: E402

from minidl.train import plot_confusion_matrix, plot_learning_curves  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return mpimg.imread(path)


def test_learning_curves_png_has_one_panel_per_metric(tmp_path):
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.6],
               "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.45, 0.75, 0.8]}
    path = plot_learning_curves(history, tmp_path / "sub" / "curves.png", title="run")
    img = _read_png(path)
    assert img.shape[1] == 900 and img.shape[0] == 360      # 2 panels of 4.5 x 3.6 in at 100 dpi
    one = plot_learning_curves({"train_loss": [3, 2, 1]}, tmp_path / "one.png")
    assert _read_png(one).shape[1] == 450


def test_learning_curves_differ_when_the_data_differ(tmp_path):
    a = _read_png(plot_learning_curves({"loss": [1, 2, 3]}, tmp_path / "a.png"))
    b = _read_png(plot_learning_curves({"loss": [3, 2, 1]}, tmp_path / "b.png"))
    assert not np.array_equal(a, b)


def test_learning_curves_bad_history(tmp_path):
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_learning_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="val 'loss' must be a non-empty list"):
        plot_learning_curves({"loss": [1.0], "val_loss": []}, tmp_path / "x.png")


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_png(tmp_path, normalize):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    path = plot_confusion_matrix(cm, tmp_path / "cm.png", class_names=["cat", "dog", "bird"],
                                 normalize=normalize)
    img = _read_png(path)
    assert img.ndim == 3 and img.shape[0] >= 300
    assert img[..., :3].std() > 0.05                         # not a blank canvas


def test_confusion_matrix_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"square \(K, K\) matrix, got shape \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 class names for a 3x3"):
        plot_confusion_matrix(np.eye(3), tmp_path / "x.png", class_names=["a", "b"])

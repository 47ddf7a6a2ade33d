"""Offline datasets: bundled sets, synthetic sets, and the MNIST / CIFAR-10 file formats.

The MNIST and CIFAR-10 tests write small files in exactly the published formats (IDX with
big-endian headers, gzipped or not; pickled dicts of the python CIFAR batches) and load them.
"""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest
from sklearn import datasets as skd

from minidl.data import (CIFAR10, MNIST, DataLoader, DatasetFileError, Digits, FashionMNIST,
                         load_breast_cancer, load_cifar10, load_digits, load_iris, load_mnist,
                         load_wine, make_blobs, make_moons, make_spirals)
from minidl.data.transforms import RandomHorizontalFlip


# --------------------------------------------------------------------------- bundled

def test_load_digits_is_n_1_8_8_float32_in_unit_range():
    X, y = load_digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    ref = skd.load_digits()
    np.testing.assert_allclose(X[:, 0], ref.images / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(y, ref.target)
    assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("loader, shape, classes", [
    (load_iris, (150, 4), 3), (load_wine, (178, 13), 3), (load_breast_cancer, (569, 30), 2)])
def test_tabular_sets_shapes_and_dtypes(loader, shape, classes):
    X, y = loader()
    assert X.shape == shape and X.dtype == np.float32
    assert y.dtype == np.int64 and y.shape == (shape[0],)
    assert sorted(set(y.tolist())) == list(range(classes))


def test_digits_dataset_returns_image_label_pairs_and_applies_transform():
    ds = Digits(transform=RandomHorizontalFlip(p=1.0))
    X, y = load_digits()
    img, label = ds[3]
    np.testing.assert_array_equal(img, X[3][:, :, ::-1])
    assert label == y[3]
    xb, yb = next(iter(DataLoader(ds, batch_size=5)))
    np.testing.assert_array_equal(xb.numpy(), X[:5][:, :, :, ::-1])


# --------------------------------------------------------------------------- synthetic

def test_make_moons_lies_on_two_half_circles_without_noise():
    X, y = make_moons(101, noise=0.0, seed=0)
    assert X.shape == (101, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert (y == 0).sum() == 51 and (y == 1).sum() == 50
    r0 = np.hypot(X[y == 0, 0], X[y == 0, 1])
    r1 = np.hypot(X[y == 1, 0] - 1.0, X[y == 1, 1] - 0.5)
    np.testing.assert_allclose(r0, 1.0, atol=1e-5)
    np.testing.assert_allclose(r1, 1.0, atol=1e-5)
    assert (X[y == 0, 1] >= -1e-6).all() and (X[y == 1, 1] <= 0.5 + 1e-6).all()


def test_synthetic_sets_are_seeded():
    for make in (make_moons, make_spirals, make_blobs):
        a, b, c = make(seed=1), make(seed=1), make(seed=2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def test_make_spirals_classes_and_radius():
    X, y = make_spirals(301, n_classes=3, noise=0.0, seed=0)
    assert X.shape == (301, 2)
    assert np.bincount(y).tolist() == [101, 100, 100]
    assert np.hypot(X[:, 0], X[:, 1]).max() < 1.0


def test_make_blobs_clusters_around_given_centres():
    centers = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]])
    X, y = make_blobs(3000, centers=centers, cluster_std=0.5, seed=0)
    for k in range(3):
        np.testing.assert_allclose(X[y == k].mean(axis=0), centers[k], atol=0.1)
        np.testing.assert_allclose(X[y == k].std(axis=0), 0.5, atol=0.05)
    with pytest.raises(ValueError, match="n_samples"):
        make_blobs(0)


# --------------------------------------------------------------------------- MNIST IDX

def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: 0x0000, type 0x08 (ubyte), ndim, then big-endian uint32 dims, then data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path, payload: bytes, gz: bool):
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)


def _write_mnist(root, n=7, train=True, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if train else "t10k"
    os.makedirs(root, exist_ok=True)
    _write(os.path.join(root, f"{prefix}-images-idx3-ubyte"), _idx_bytes(images), gz)
    _write(os.path.join(root, f"{prefix}-labels-idx1-ubyte"), _idx_bytes(labels), gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_load_mnist_reads_idx_files(tmp_path, gz, train):
    images, labels = _write_mnist(tmp_path, n=7, train=train, gz=gz)
    X, y = load_mnist(tmp_path, train=train)
    assert X.shape == (7, 1, 28, 28) and X.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(X[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)


def test_fashion_mnist_in_torchvision_layout(tmp_path):
    images, labels = _write_mnist(tmp_path / "FashionMNIST" / "raw", n=4, gz=True, seed=3)
    ds = FashionMNIST(tmp_path)
    assert len(ds) == 4 and ds.classes[0] == "T-shirt/top"
    img, label = ds[2]
    assert img.shape == (1, 28, 28)
    np.testing.assert_allclose(img[0], images[2] / 255.0, rtol=1e-6)
    assert label == labels[2]
    with pytest.raises(DatasetFileError):       # plain MNIST is not in FashionMNIST/raw
        MNIST(tmp_path)


def test_missing_mnist_file_names_the_expected_paths(tmp_path):
    with pytest.raises(DatasetFileError) as info:
        load_mnist(tmp_path, train=False)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte" in msg and str(tmp_path) in msg
    assert "download" in msg


def test_corrupt_mnist_files_give_clear_errors(tmp_path):
    _write_mnist(tmp_path, n=5)
    img_path = tmp_path / "train-images-idx3-ubyte"
    good = img_path.read_bytes()
    img_path.write_bytes(good[:-10])                                  # truncated
    with pytest.raises(DatasetFileError, match=r"not a valid IDX file.*header says"):
        load_mnist(tmp_path)
    img_path.write_bytes(b"\x00\x00\x0d\x03" + good[4:])              # wrong type code
    with pytest.raises(DatasetFileError, match="magic number"):
        load_mnist(tmp_path)
    img_path.unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")
    with pytest.raises(DatasetFileError, match="corrupt"):
        load_mnist(tmp_path)


def test_mnist_image_label_count_mismatch(tmp_path):
    _write_mnist(tmp_path, n=5)
    labels = np.zeros(4, np.uint8)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(labels), gz=False)
    with pytest.raises(DatasetFileError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_unknown_kind():
    with pytest.raises(ValueError, match="'mnist' or 'fashion'"):
        load_mnist(".", kind="kmnist")


# --------------------------------------------------------------------------- CIFAR-10

def _write_cifar(root, n_per_batch=3, seed=0):
    """data_batch_1..5 and test_batch: pickled dicts with bytes keys, as the real files."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n_per_batch}, f, protocol=2)
        written[name] = (data, labels)
    return written


def test_load_cifar10_reads_python_batches_in_channel_first_layout(tmp_path):
    written = _write_cifar(tmp_path, n_per_batch=3)
    X, y = load_cifar10(tmp_path, train=True)
    assert X.shape == (15, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    data2, labels2 = written["data_batch_2"]
    # row = 1024 red, then 1024 green, then 1024 blue values, each plane row-major 32x32
    i, c, h, w = 1, 2, 5, 17
    assert X[3 + i, c, h, w] == np.float32(data2[i, c * 1024 + h * 32 + w] / np.float32(255))
    assert y[3 + i] == labels2[i]
    Xt, yt = load_cifar10(tmp_path, train=False)
    assert Xt.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(yt, written["test_batch"][1])
    ds = CIFAR10(tmp_path, train=False)
    assert ds.classes[0] == "airplane" and ds[0][0].shape == (3, 32, 32)


def test_cifar10_missing_file_names_the_expected_paths(tmp_path):
    _write_cifar(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_4")
    with pytest.raises(DatasetFileError) as info:
        load_cifar10(tmp_path)
    msg = str(info.value)
    assert "data_batch_4" in msg and "cifar-10-batches-py" in msg and "download" in msg


def test_cifar10_corrupt_file_is_a_clear_error(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetFileError, match=r"test_batch.*corrupt"):
        load_cifar10(tmp_path, train=False)


def test_cifar10_loader_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DatasetFileError, match="refusing to load"):
        load_cifar10(tmp_path, train=False)


def test_cifar10_wrong_shapes_are_reported(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetFileError, match=r"\(N, 3072\) uint8"):
        load_cifar10(tmp_path, train=False)


def test_cifar10_batches_pickled_with_the_legacy_numpy_module_name(tmp_path):
    """The published batches were pickled under NumPy 1 (``numpy.core.multiarray``)."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    raw = pickle.dumps({b"data": data, b"labels": [3, 7]}, protocol=2)
    (d / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray",
                                               b"numpy.core.multiarray"))
    X, y = load_cifar10(tmp_path, train=False)
    np.testing.assert_array_equal(y, [3, 7])
    np.testing.assert_allclose(X.reshape(2, -1), data / 255.0, rtol=1e-6)

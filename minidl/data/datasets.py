"""Datasets that ship offline, and loaders for the standard files users bring themselves.

Nothing here downloads anything: these machines cannot reach the internet.

* Bundled with scikit-learn (read from its package files): ``load_digits`` (1,797 8x8
  images, returned as N x 1 x 8 x 8), ``load_iris``, ``load_wine``, ``load_breast_cancer``.
* Synthetic, seeded: ``make_moons``, ``make_spirals``, ``make_blobs``.
* From a directory the user names: ``load_mnist`` (MNIST / Fashion-MNIST IDX files, gzipped
  or not) and ``load_cifar10`` (the "CIFAR-10 python version" pickle batches).

Images come back in PyTorch's layout, N x C x H x W float32 scaled to [0, 1]; labels as
int64. ``Digits``, ``MNIST``, ``FashionMNIST`` and ``CIFAR10`` wrap them as datasets that
return ``(image, label)`` with an optional per-sample ``transform``.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from .dataset import Dataset, _generator

__all__ = [
    "load_digits", "load_iris", "load_wine", "load_breast_cancer",
    "make_moons", "make_spirals", "make_blobs",
    "load_mnist", "load_cifar10", "DatasetFileError",
    "ImageDataset", "Digits", "MNIST", "FashionMNIST", "CIFAR10",
    "MNIST_CLASSES", "FASHION_MNIST_CLASSES", "CIFAR10_CLASSES",
]

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


class DatasetFileError(FileNotFoundError):
    """A dataset file is missing or unreadable; the message says where to put it."""


# --------------------------------------------------------------------------- bundled sets

def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise ImportError("minidl.data: the bundled datasets (digits, iris, wine, breast "
                          "cancer) are read from scikit-learn's package files; install "
                          "scikit-learn (pip install scikit-learn)") from exc
    return datasets


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits bundled with scikit-learn.

    Returns:
        X: (1797, 1, 8, 8) float32, pixel intensities 0..16 scaled to [0, 1].
        y: (1797,) int64 class labels 0..9.
    """
    bunch = _sklearn_datasets().load_digits()
    X = (bunch.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(X), bunch.target.astype(np.int64)


def _tabular(name: str) -> tuple[np.ndarray, np.ndarray]:
    bunch = getattr(_sklearn_datasets(), name)()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Iris: X (150, 4) float32 raw measurements in cm, y (150,) int64 in 0..2."""
    return _tabular("load_iris")


def load_wine() -> tuple[np.ndarray, np.ndarray]:
    """Wine: X (178, 13) float32 raw (unscaled) features, y (178,) int64 in 0..2."""
    return _tabular("load_wine")


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """Breast cancer (Wisconsin): X (569, 30) float32 raw features, y (569,) int64 in 0..1."""
    return _tabular("load_breast_cancer")


# --------------------------------------------------------------------------- synthetic sets

def _check_count(name: str, n_samples: int, minimum: int = 1) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < minimum:
        raise ValueError(f"{name}: n_samples must be an integer >= {minimum}, got {n_samples!r}")
    return int(n_samples)


def make_moons(n_samples: int = 200, noise: float = 0.1,
               seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in 2-D.

    Class 0: ``(cos t, sin t)``, class 1: ``(1 - cos t, 0.5 - sin t)``, t evenly spaced in
    [0, pi]; ceil(n/2) points in class 0, the rest in class 1, then Gaussian noise of
    standard deviation ``noise`` is added and the rows are shuffled.

    Returns X (n, 2) float32 and y (n,) int64.
    """
    n = _check_count("make_moons", n_samples, 2)
    rng = _generator(seed)
    n0 = (n + 1) // 2
    n1 = n - n0
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], axis=1),
                        np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    X = X + rng.normal(0.0, noise, size=X.shape)
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


def make_spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, turns: float = 1.0,
                 seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved arms of a spiral in 2-D.

    Point j of class k (j = 0..m-1): radius ``r = j / m``, angle
    ``theta = 2*pi*turns*r + 2*pi*k/n_classes + noise * N(0, 1)``, position
    ``(r sin theta, r cos theta)``. Classes get n // n_classes points, the first
    n % n_classes classes one more. Rows are shuffled.

    Returns X (n, 2) float32 and y (n,) int64 in 0..n_classes-1.
    """
    n = _check_count("make_spirals", n_samples, 1)
    if n_classes < 1:
        raise ValueError(f"make_spirals: n_classes must be >= 1, got {n_classes}")
    rng = _generator(seed)
    Xs, ys = [], []
    for k in range(n_classes):
        m = n // n_classes + (1 if k < n % n_classes else 0)
        r = np.arange(m) / max(m, 1)
        theta = 2 * np.pi * turns * r + 2 * np.pi * k / n_classes + noise * rng.normal(size=m)
        Xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(m, k, np.int64))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


def make_blobs(n_samples: int = 300, centers: int | np.ndarray = 3, n_features: int = 2,
               cluster_std: float = 1.0, center_box: tuple[float, float] = (-10.0, 10.0),
               seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs: class k is ``N(center_k, cluster_std^2 I)``.

    ``centers`` is a count (centres drawn uniformly in ``center_box`` per coordinate) or an
    array (K, n_features) of centres. Class sizes differ by at most one; rows are shuffled.

    Returns X (n, n_features) float32 and y (n,) int64 in 0..K-1.
    """
    n = _check_count("make_blobs", n_samples, 1)
    rng = _generator(seed)
    if np.ndim(centers) == 0:
        k = int(centers)
        if k < 1:
            raise ValueError(f"make_blobs: centers must be >= 1, got {centers}")
        C = rng.uniform(center_box[0], center_box[1], size=(k, n_features))
    else:
        C = np.asarray(centers, dtype=np.float64)
        if C.ndim != 2:
            raise ValueError(f"make_blobs: centers array must be (K, n_features), got shape "
                             f"{C.shape}")
        k, n_features = C.shape
    counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    X = C[y] + rng.normal(0.0, cluster_std, size=(n, n_features))
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


# --------------------------------------------------------------------------- MNIST (IDX)

_NO_DOWNLOAD = ("minidl never downloads data (these machines have no internet access); "
                "copy the files there yourself")

_MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_SUBDIRS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


def _find_file(root: str, subdirs: list[str], base: str, suffixes: tuple[str, ...]) -> str | None:
    for d in subdirs:
        for suffix in suffixes:
            p = os.path.join(root, d, base + suffix)
            if os.path.isfile(p):
                return p
    return None


def _read_bytes(path: str, what: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise DatasetFileError(f"{what}: cannot read {path}: {exc}. The file looks corrupt "
                               f"or truncated; replace it with a fresh copy. "
                               f"{_NO_DOWNLOAD}.") from exc


def _parse_idx(raw: bytes, path: str, what: str, expected_ndim: int) -> np.ndarray:
    """Parse an IDX file: magic 0x0000 <type 0x08 = ubyte> <ndim>, ndim big-endian uint32
    sizes, then the data in row-major order."""
    def corrupt(reason: str) -> DatasetFileError:
        return DatasetFileError(f"{what}: {path} is not a valid IDX file ({reason}); replace "
                                f"it with a fresh copy. {_NO_DOWNLOAD}.")
    if len(raw) < 4:
        raise corrupt(f"only {len(raw)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise corrupt(f"magic number {raw[:4].hex()} is not 0x000008{expected_ndim:02x}")
    if ndim != expected_ndim:
        raise corrupt(f"{ndim} dimensions where {expected_ndim} were expected")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt("header truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise corrupt(f"header says {dims} = {count} bytes of data, file has "
                      f"{len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(root: str, train: bool = True,
               kind: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from the standard IDX files in ``root``.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``train=True``) or
    ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte``, each optionally ending in
    ``.gz``, directly in ``root`` or in ``root/MNIST/raw`` (``root/FashionMNIST/raw`` for
    ``kind="fashion"``), the layout torchvision uses.

    Returns:
        X: (N, 1, 28, 28) float32 in [0, 1] (pixel / 255).
        y: (N,) int64 in 0..9.
    """
    if kind not in _MNIST_SUBDIRS:
        raise ValueError(f"load_mnist: kind must be 'mnist' or 'fashion', got {kind!r}")
    what = f"load_mnist(kind={kind!r}, train={train})"
    root = os.fspath(root)
    subdirs = ["", os.path.join(_MNIST_SUBDIRS[kind], "raw")]
    paths = []
    for base in _MNIST_FILES[bool(train)]:
        p = _find_file(root, subdirs, base, ("", ".gz"))
        if p is None:
            expected = " or ".join(os.path.join(root, d, base) + "[.gz]" for d in subdirs)
            raise DatasetFileError(
                f"{what}: missing file {base}; expected {expected}. "
                f"{_NO_DOWNLOAD}: the four IDX files of "
                f"{'Fashion-MNIST' if kind == 'fashion' else 'MNIST'} "
                f"({', '.join(_MNIST_FILES[True] + _MNIST_FILES[False])}), gzipped or not.")
        paths.append(p)
    images = _parse_idx(_read_bytes(paths[0], what), paths[0], what, 3)
    labels = _parse_idx(_read_bytes(paths[1], what), paths[1], what, 1)
    if images.shape[0] != labels.shape[0]:
        raise DatasetFileError(f"{what}: {paths[0]} holds {images.shape[0]} images but "
                               f"{paths[1]} holds {labels.shape[0]} labels; one file is from a "
                               f"different set or truncated. {_NO_DOWNLOAD}.")
    if labels.size and labels.max() > 9:
        raise DatasetFileError(f"{what}: {paths[1]} has label {labels.max()} outside 0..9; "
                               f"the file is corrupt. {_NO_DOWNLOAD}.")
    X = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return np.ascontiguousarray(X), labels.astype(np.int64)


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_DIR = "cifar-10-batches-py"


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays and plain containers: a batch file is data,
    and must not be able to run arbitrary code when loaded."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("builtins", "bytearray"),
        ("_codecs", "encode"),        # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _load_cifar_batch(path: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError) as exc:
        raise DatasetFileError(f"{what}: cannot read {path}: {exc}. The file looks corrupt "
                               f"or is not a CIFAR-10 python batch; replace it with a fresh "
                               f"copy. {_NO_DOWNLOAD}.") from exc
    if not isinstance(batch, dict):
        raise DatasetFileError(f"{what}: {path} holds a {type(batch).__name__}, not the dict of "
                               f"a CIFAR-10 python batch. {_NO_DOWNLOAD}.")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DatasetFileError(f"{what}: {path} lacks the 'data' or 'labels' entry of a "
                               f"CIFAR-10 python batch. {_NO_DOWNLOAD}.")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8 \
            or labels.shape != (data.shape[0],):
        raise DatasetFileError(f"{what}: {path} has data {data.shape} {data.dtype} and labels "
                               f"{labels.shape}; a CIFAR-10 batch has (N, 3072) uint8 data and "
                               f"N labels. {_NO_DOWNLOAD}.")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFileError(f"{what}: {path} has labels outside 0..9; the file is "
                               f"corrupt. {_NO_DOWNLOAD}.")
    return data, labels.astype(np.int64)


def load_cifar10(root: str, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the "python version" batches in ``root``.

    Reads ``data_batch_1`` .. ``data_batch_5`` (``train=True``) or ``test_batch`` from
    ``root/cifar-10-batches-py/`` or directly from ``root``. Each batch is a pickled dict
    with ``data`` (N, 3072) uint8, rows being the red, green then blue 32x32 planes, and
    ``labels`` (N,). Only NumPy arrays and plain containers are unpickled.

    Returns:
        X: (N, 3, 32, 32) float32 in [0, 1] (pixel / 255).
        y: (N,) int64 in 0..9.
    """
    what = f"load_cifar10(train={train})"
    root = os.fspath(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    subdirs = [_CIFAR_DIR, ""]
    datas, labels = [], []
    for name in names:
        p = _find_file(root, subdirs, name, ("",))
        if p is None:
            expected = " or ".join(os.path.join(root, d, name) for d in subdirs)
            raise DatasetFileError(
                f"{what}: missing file {name}; expected {expected}. {_NO_DOWNLOAD} "
                f"(extract the 'CIFAR-10 python version' archive so that {root}/{_CIFAR_DIR}/ "
                f"holds data_batch_1..5 and test_batch).")
        d, l = _load_cifar_batch(p, what)
        datas.append(d)
        labels.append(l)
    X = np.concatenate(datas).reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(X), np.concatenate(labels)


# --------------------------------------------------------------------------- dataset classes

class ImageDataset(Dataset):
    """``(image, label)`` pairs from arrays X (N, C, H, W) and y (N,).

    ``transform`` (e.g. from ``minidl.data.transforms``) is applied to each image as it is
    fetched, ``target_transform`` to each label.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 classes: tuple[str, ...] | None = None) -> None:
        if len(X) != len(y):
            raise ValueError(f"{type(self).__name__}: {len(X)} images but {len(y)} labels")
        self.data = X
        self.targets = y
        self.transform = transform
        self.target_transform = target_transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        x, y = self.data[index], self.targets[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stacked samples at ``indices`` (transforms applied per sample, in order)."""
        if self.transform is None and self.target_transform is None:
            return self.data[indices], self.targets[indices]
        pairs = [self[int(i)] for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([np.asarray(p[1]) for p in pairs])


class Digits(ImageDataset):
    """scikit-learn's 8x8 digits as a dataset of ((1, 8, 8) float32, int64 label)."""

    def __init__(self, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        X, y = load_digits()
        super().__init__(X, y, transform, target_transform, MNIST_CLASSES)


class MNIST(ImageDataset):
    """MNIST from IDX files in ``root`` (see ``load_mnist``): ((1, 28, 28), label) pairs."""

    kind = "mnist"
    class_names = MNIST_CLASSES

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        X, y = load_mnist(root, train=train, kind=self.kind)
        super().__init__(X, y, transform, target_transform, self.class_names)


class FashionMNIST(MNIST):
    """Fashion-MNIST from IDX files in ``root``: ((1, 28, 28), label) pairs."""

    kind = "fashion"
    class_names = FASHION_MNIST_CLASSES


class CIFAR10(ImageDataset):
    """CIFAR-10 from the python batches in ``root`` (see ``load_cifar10``): ((3, 32, 32), label)."""

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        X, y = load_cifar10(root, train=train)
        super().__init__(X, y, transform, target_transform, CIFAR10_CLASSES)

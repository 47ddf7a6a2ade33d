"""Datasets: the indexable collections a DataLoader draws samples from.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample (an
array, a number, a tuple or a dict of those). The classes here follow PyTorch's
``torch.utils.data`` names: ``Dataset``, ``TensorDataset``, ``Subset``, ``random_split``.

A dataset may also define ``get_batch(indices)`` returning the samples at ``indices``
already stacked along a new leading axis (same structure as one sample). The DataLoader
uses it, when the default collate is in use, to avoid a Python loop per sample; it must
give exactly what stacking ``[ds[i] for i in indices]`` would give.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import random_generator

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split"]


def _generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``; for ``seed=None``, seeded by a number drawn from
    minidl's global generator, so that ``minidl.manual_seed`` makes shuffling, splits and
    augmentations reproducible. A Generator passed in is used as it is (shared)."""
    if seed is None:
        seed = int(random_generator().integers(2**63))
    return np.random.default_rng(seed)


class Dataset:
    """Base class of map-style datasets: ``len(ds)`` samples, ``ds[i]`` the i-th one."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement __getitem__(index) returning one sample")

    def __len__(self) -> int:
        raise NotImplementedError(
            f"{type(self).__name__} must implement __len__() returning the number of samples")


def _as_array(x: Any, where: str, position: int) -> np.ndarray:
    """Raw NumPy array of a NumPy array, a minidl/CuPy tensor-like, or a nested list."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "data") and hasattr(x, "numpy"):       # a minidl Tensor
        return np.asarray(x.numpy())
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):   # a CuPy array
        return x.get()
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"{where}: argument {position} ({type(x).__name__}) cannot be "
                        f"converted to an array: {exc}") from exc


class TensorDataset(Dataset):
    """Samples are rows of equally long arrays: ``ds[i] = (a[i], b[i], ...)``.

    Args:
        *arrays: NumPy arrays (or minidl Tensors, or nested lists), each of shape
            ``(N, ...)`` with the same first dimension N.
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array, got none")
        self.arrays = tuple(_as_array(a, "TensorDataset", i) for i, a in enumerate(arrays))
        for i, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is a 0-d array (a scalar); "
                                 "every argument needs a first (sample) dimension")
        lengths = [a.shape[0] for a in self.arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays)
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension "
                             f"(number of samples); got shapes {shapes}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: int) -> tuple:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray) -> tuple:
        """The samples at ``indices`` stacked: ``(a[indices], b[indices], ...)``."""
        return tuple(a[indices] for a in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order:
    ``sub[i] = dataset[indices[i]]``."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Subset: indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a dataset of {n} "
                             f"samples; got range [{idx.min()}, {idx.max()}]")
        self.dataset = dataset
        self.indices = idx

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray) -> Any:
        """The samples at ``indices`` stacked, through the parent's ``get_batch``."""
        if not _has_batch_fetch(self.dataset):
            raise AttributeError(f"Subset.get_batch: the parent {type(self.dataset).__name__} "
                                 "has no get_batch; fetch samples one by one instead")
        return self.dataset.get_batch(self.indices[np.asarray(indices)])


def _has_batch_fetch(dataset: Any) -> bool:
    """True when ``dataset.get_batch`` can be used (for Subsets: when the parent has one)."""
    if isinstance(dataset, Subset):
        return _has_batch_fetch(dataset.dataset)
    return callable(getattr(dataset, "get_batch", None))


def random_split(dataset: Any, lengths: Sequence[int | float],
                 seed: int | np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    ``lengths`` are either sample counts summing to ``len(dataset)`` or fractions summing
    to 1 (then counts are ``floor(f * N)`` and the remainder goes one by one to the first
    splits, as PyTorch does). The permutation comes from ``numpy.random.default_rng(seed)``
    (for ``seed=None``, from a seed drawn from minidl's global generator).
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(v, float) for v in lengths) and abs(sum(lengths) - 1.0) < 1e-6:
        if any(v < 0 for v in lengths):
            raise ValueError(f"random_split: fractions must be non-negative, got {lengths}")
        counts = [int(np.floor(f * n)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        counts = [int(v) for v in lengths]
        if any(c != v for c, v in zip(counts, lengths)) or any(c < 0 for c in counts):
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions "
                             f"summing to 1; got {lengths}")
        if sum(counts) != n:
            raise ValueError(f"random_split: lengths sum to {sum(counts)} but the dataset "
                             f"has {n} samples")
    perm = _generator(seed).permutation(n)
    splits, start = [], 0
    for c in counts:
        splits.append(Subset(dataset, perm[start:start + c]))
        start += c
    return splits

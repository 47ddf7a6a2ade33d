"""DataLoader: batches of samples from a dataset, shuffled reproducibly, optionally prefetched.

One epoch = one pass of ``for batch in loader``. The order of samples comes from a sampler:
by default ``0..N-1`` in order, or, with ``shuffle=True``, a fresh permutation drawn from the
loader's own ``numpy.random.Generator`` (seeded by ``seed``) at the start of each epoch, so
that two loaders with the same seed give the same batches epoch after epoch while each
epoch's order differs from the last. Batches are consecutive chunks of ``batch_size``
indices; ``drop_last`` drops a final short chunk.

The default collate stacks the samples of a batch along a new axis 0 and returns minidl
Tensors (``requires_grad=False``): floats as float32 unless they were float64, integers as
int64, bools as bool; tuples, lists and dicts are collated element by element.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from numbers import Number
from typing import Any

import numpy as np

from .dataset import _generator, _has_batch_fetch

__all__ = ["DataLoader", "SequentialSampler", "RandomSampler", "default_collate",
           "numpy_collate"]


class SequentialSampler:
    """Indices ``0, 1, ..., n-1`` in order, every epoch."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class RandomSampler:
    """A new random permutation of ``0..n-1`` each epoch, drawn from its own Generator.

    ``state_dict()`` / ``load_state_dict()`` save and restore the generator, so that a run
    resumed from a checkpoint draws the same permutations as an uninterrupted one.
    """

    def __init__(self, n: int, seed: int | np.random.Generator | None = None) -> None:
        self.n = int(n)
        self.rng = _generator(seed)

    def __iter__(self) -> Iterator[int]:
        return iter(self.rng.permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def _tensor(array: np.ndarray):
    # Imported here, not at module top: minidl.data sits above the core and only needs it
    # when the default collate actually builds Tensors.
    import minidl
    return minidl.tensor(array, requires_grad=False)


def _canonical_dtype(array: np.ndarray) -> np.ndarray:
    """float64 stays, other floats become float32, integers int64, bool stays bool."""
    kind = array.dtype.kind
    if kind == "f":
        return array if array.dtype == np.float64 else array.astype(np.float32, copy=False)
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind == "b":
        return array
    raise TypeError(f"DataLoader collate: cannot batch arrays of dtype {array.dtype}; "
                    "expected float, integer or bool samples")


def _collate(samples: list, to_tensor: bool, path: str = "sample") -> Any:
    first = samples[0]
    if isinstance(first, Mapping):
        keys = list(first.keys())
        for s in samples:
            if not isinstance(s, Mapping) or set(s.keys()) != set(keys):
                raise TypeError(f"DataLoader collate: every {path} must be a dict with keys "
                                f"{keys}; got {type(s).__name__} "
                                f"{list(s.keys()) if isinstance(s, Mapping) else ''}")
        return {k: _collate([s[k] for s in samples], to_tensor, f"{path}[{k!r}]") for k in keys}
    if isinstance(first, (tuple, list)):
        n = len(first)
        for s in samples:
            if not isinstance(s, (tuple, list)) or len(s) != n:
                raise TypeError(f"DataLoader collate: every {path} must be a tuple of {n} "
                                f"items; got {type(s).__name__} of length "
                                f"{len(s) if isinstance(s, (tuple, list)) else '-'}")
        return tuple(_collate([s[i] for s in samples], to_tensor, f"{path}[{i}]")
                     for i in range(n))
    if isinstance(first, (str, bytes)):
        return list(samples)            # strings are passed through as a list
    gpu = _gpu_arrays(samples) if to_tensor else None
    if gpu is not None:
        return _stack_on_device(gpu, path)
    arrays = []
    for s in samples:
        if hasattr(s, "numpy") and not isinstance(s, np.ndarray):   # a minidl Tensor
            s = s.numpy()
        elif isinstance(s, bool):
            s = np.bool_(s)
        elif isinstance(s, int):
            s = np.int64(s)
        elif isinstance(s, float):
            s = np.float32(s)
        elif not isinstance(s, (np.ndarray, np.generic, Number)):
            raise TypeError(f"DataLoader collate: {path} has type {type(s).__name__}; "
                            "expected an array, a number, a tuple/list or a dict")
        arrays.append(np.asarray(s))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"DataLoader collate: cannot stack {path} of different shapes "
                         f"{sorted(shapes)}; samples of a batch must share one shape")
    batch = _canonical_dtype(np.stack(arrays))
    return _tensor(batch) if to_tensor else batch


def _gpu_arrays(samples: list) -> list | None:
    """The arrays of the samples when every one is a GPU array or a Tensor on one GPU, else None."""
    from ..backend import device_of, get_array_module
    from ..tensor import Tensor

    arrays = [s.data if isinstance(s, Tensor) else s for s in samples]
    if any(get_array_module(a) is np for a in arrays):
        return None
    if len({device_of(a) for a in arrays}) != 1:
        return None
    return arrays


def _stack_on_device(arrays: list, path: str):
    """Stack GPU arrays where they live (no round trip through the host), with the
    collate's dtype rules."""
    from ..backend import get_array_module
    from ..tensor import Tensor

    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"DataLoader collate: cannot stack {path} of different shapes "
                         f"{sorted(shapes)}; samples of a batch must share one shape")
    batch = get_array_module(arrays[0]).stack(arrays)
    return Tensor(_canonical_dtype(batch))


def _convert_batch(batch: Any, to_tensor: bool) -> Any:
    """Apply the collate's dtype rules to an already stacked batch (from ``get_batch``)."""
    if isinstance(batch, Mapping):
        return {k: _convert_batch(v, to_tensor) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return tuple(_convert_batch(v, to_tensor) for v in batch)
    if to_tensor and _gpu_arrays([batch]) is not None:     # a batch already on the GPU stays there
        from ..tensor import Tensor
        return Tensor(_canonical_dtype(batch.data if isinstance(batch, Tensor) else batch))
    array = _canonical_dtype(np.ascontiguousarray(batch))
    return _tensor(array) if to_tensor else array


def default_collate(samples: list) -> Any:
    """Stack a list of samples into one batch of minidl Tensors (no grad).

    A sample is an array (or number) of shape ``S``; a batch of B of them is a Tensor of
    shape ``(B, *S)``. Tuples/lists give a tuple of batches, dicts a dict of batches.
    Floats become float32 unless float64, integers int64, bools stay bool.
    """
    return _collate(list(samples), to_tensor=True)


def numpy_collate(samples: list) -> Any:
    """Like ``default_collate`` but returns NumPy arrays instead of Tensors."""
    return _collate(list(samples), to_tensor=False)


class DataLoader:
    """Iterate over a dataset in batches.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (see ``Dataset``).
        batch_size: samples per batch (B).
        shuffle: draw a new permutation each epoch from the loader's Generator.
        drop_last: drop the final batch when it has fewer than ``batch_size`` samples.
        collate_fn: ``list of samples -> batch``; ``default_collate`` (Tensors) if None.
        seed: seed of the loader's ``numpy.random.Generator`` (used when shuffling).
            With ``seed=None`` it is seeded from minidl's global generator
            (reproducible after ``minidl.manual_seed``).
        prefetch: number of batches a background thread prepares ahead (0: none). The
            batches are the same, in the same order, as without prefetching.
        sampler: an iterable of indices with ``__len__``, replacing the built-in order
            (e.g. a class-balanced or distributed sampler); excludes ``shuffle``.

    ``len(loader)`` is the number of batches per epoch. ``state_dict()`` /
    ``load_state_dict()`` save and restore the shuffling state for exact resumption.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable[[list], Any] | None = None,
                 seed: int | np.random.Generator | None = None, prefetch: int = 0,
                 sampler: Iterable[int] | None = None) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__; "
                            f"got {type(dataset).__name__}")
        n = len(dataset)
        if n == 0:
            raise ValueError("DataLoader: the dataset is empty (0 samples); nothing to load")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) \
                or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an integer >= 0, got {prefetch!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give either shuffle=True or a sampler, not both "
                             "(the sampler decides the order)")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.prefetch = int(prefetch)
        if sampler is None:
            sampler = RandomSampler(n, seed) if shuffle else SequentialSampler(n)
        self.sampler = sampler
        self._batch_fetch = collate_fn is None and _has_batch_fetch(dataset)

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size

    def _index_batches(self) -> list[np.ndarray]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        batches = [order[i:i + self.batch_size] for i in range(0, order.size, self.batch_size)]
        if self.drop_last and batches and batches[-1].size < self.batch_size:
            batches.pop()
        return batches

    def _make_batch(self, indices: np.ndarray) -> Any:
        if self._batch_fetch:
            return _convert_batch(self.dataset.get_batch(indices), to_tensor=True)
        samples = [self.dataset[int(i)] for i in indices]
        collate = self.collate_fn if self.collate_fn is not None else default_collate
        return collate(samples)

    def __iter__(self) -> Iterator[Any]:
        # The epoch's order is drawn here, in the caller's thread, before any prefetching,
        # so that prefetching cannot change which batches come out.
        index_batches = self._index_batches()
        if self.prefetch == 0:
            return (self._make_batch(idx) for idx in index_batches)
        return self._prefetched(index_batches)

    def _prefetched(self, index_batches: list[np.ndarray]) -> Iterator[Any]:
        buffer: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: tuple) -> bool:
            """Put unless the consumer has gone away; True if the item was queued."""
            while not stop.is_set():
                try:
                    buffer.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for idx in index_batches:
                    if not put(("batch", self._make_batch(idx))):
                        return
                put(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                put(("error", exc))

        worker = threading.Thread(target=produce, name="minidl-DataLoader-prefetch",
                                  daemon=True)
        worker.start()
        try:
            while True:
                kind, payload = buffer.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise payload
                yield payload
        finally:
            stop.set()
            worker.join(timeout=5.0)

    def state_dict(self) -> dict:
        """The sampler's state (its Generator) when it has one; ``{}`` otherwise."""
        if hasattr(self.sampler, "state_dict"):
            return {"sampler": self.sampler.state_dict()}
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        if "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])

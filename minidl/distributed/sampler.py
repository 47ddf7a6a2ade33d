"""``DistributedSampler``: each process's share of every epoch's sample order."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """Split each epoch's (shuffled) indices across ``num_replicas`` processes.

    All processes draw the same permutation (seeded by ``seed + epoch``), pad it by
    repeating its first indices up to a multiple of ``num_replicas`` (or drop the tail with
    ``drop_last``), and process ``rank`` takes every ``num_replicas``-th index from position
    ``rank``. Call ``set_epoch(e)`` before each epoch so the order changes. Pass it to
    ``DataLoader(dataset, batch_size=B, sampler=...)``: per-rank batch B, global batch
    ``B * num_replicas``.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        n = dataset if isinstance(dataset, int) else len(dataset)
        if num_replicas is None or rank is None:
            from .comm import get_comm

            comm = get_comm()
            num_replicas = comm.size if num_replicas is None else num_replicas
            rank = comm.rank if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        if n == 0:
            raise ValueError("DistributedSampler: the dataset is empty")
        self.n, self.num_replicas, self.rank = n, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (the same on every process)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:
            order = np.concatenate([order, np.resize(order, self.total_size - self.n)])
        else:
            order = order[: self.total_size]
        return iter(order[self.rank: self.total_size: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

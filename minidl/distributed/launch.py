"""Rank-0-only side effects: logging, progress bars and checkpoints happen once, not per process."""
from __future__ import annotations

import functools
from typing import Any, Callable

from .comm import Communicator, get_comm

__all__ = ["is_main_process", "rank_zero_only", "save_on_main"]


def is_main_process(comm: Communicator | None = None) -> bool:
    """True on rank 0 (and in a single process)."""
    return (comm or get_comm()).rank == 0


def rank_zero_only(fn: Callable) -> Callable:
    """Decorate a function (logging, plotting) so it runs on rank 0 only; others get None."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


def save_on_main(obj: Any, path: str, comm: Communicator | None = None) -> None:
    """``minidl.save(obj, path)`` on rank 0, then a barrier so no process reads it early."""
    comm = comm or get_comm()
    if comm.rank == 0:
        from ..serialization import save

        save(obj, path)
    comm.barrier()

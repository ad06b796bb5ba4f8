"""Executors that run coalition evaluations: chosen by name, swapped without touching the estimators.

An executor is anything with ``map(fn, items) -> iterable of results, in order``. The Shapley
estimators in ``aggregator.contribution`` plan a whole batch of coalitions, hand it to ``map`` and only
then fit, so a parallel executor evaluates a batch at once. A cluster engine (Ray, Dask) plugs in by
providing the same ``map``.

``ProcessPoolExecutor`` pickles the utility once per chunk of coalitions (by default one chunk per
worker per batch): it must be a module-level function or a picklable object (a dataclass holding
the validation data and the updates, say), not a lambda or a closure. Results are identical to ``SequentialExecutor``'s because order is preserved and the
estimators never depend on timing.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, Iterable, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterable[R]: ...


class SequentialExecutor:
    """Evaluates in this process, one after another: the default, and the reference."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(item) for item in items]


class ProcessPoolExecutor:
    """Evaluates a batch across local worker processes. ``fn`` and the items must be picklable.

    Use it as a context manager, or call ``close()``; the pool starts lazily on the first ``map``.
    """

    def __init__(self, max_workers: int | None = None, chunksize: int | None = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be a positive int or None, got {max_workers!r}")
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"chunksize must be a positive int or None, got {chunksize!r}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.chunksize = chunksize
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=self.max_workers)
        items = list(items)
        chunksize = self.chunksize or max(1, -(-len(items) // self.max_workers))  # fn is pickled per chunk
        return list(self._pool.map(fn, items, chunksize=chunksize))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "ProcessPoolExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "sequential": SequentialExecutor,
    "process": ProcessPoolExecutor,
}


def make_executor(name: str, **options: object) -> Executor:
    """Build an executor by its config name: ``"sequential"`` or ``"process"``."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose one of {sorted(EXECUTORS)}") from None
    return factory(**options)

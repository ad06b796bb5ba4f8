"""Chain reads cached per block, so that reads scale with clients and not with chain round trips.

A read is answered from the cache while the chain's head is still the block it was read at, and
for at most ``max_age_s`` (the contract's phases move with time even when no block is mined, as on
a quiet Anvil). The head is polled at most every ``HEAD_POLL_S``, so a burst of requests shares
one ``eth_blockNumber``. Concurrent misses of one key wait for a single read (single flight), so
eight clients listing a cold page cost the chain one batch, not eight. No lock is held while the
chain is read. Writes' eligibility checks use ``fresh``, the uncached view.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from backend.api.chain_view import ChainView, CommitteeInfo, ProjectView, RoundView

HEAD_POLL_S = 0.1
MAX_ENTRIES = 50_000  # distinct keys (addresses in rewards reads) between two heads; past it, start over


class CachedChainView:
    """A ChainView whose reads are memoised per block; ``fresh`` is the view underneath."""

    def __init__(self, inner: ChainView, max_age_s: float, clock: Callable[[], float] = time.monotonic):
        self.fresh = inner
        self.chain_id = inner.chain_id
        self.market_address = inner.market_address
        self.market_key = getattr(inner, "market_key", None)
        self._max_age = max_age_s
        self._clock = clock
        self._enabled = max_age_s > 0 and callable(getattr(inner, "head", None))
        self._head: tuple[int | None, float] = (None, float("-inf"))  # (block, when polled)
        self._entries: dict[tuple, tuple[float, Any]] = {}  # key -> (when read, value)
        self._pending: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()  # guards the dicts above; never held across a chain read

    def _current_head(self) -> int | None:
        block, polled = self._head
        now = self._clock()
        if now - polled < HEAD_POLL_S:
            return block
        latest = self.fresh.head()
        with self._lock:
            if latest != self._head[0]:
                self._entries.clear()
            self._head = (latest, now)
        return latest

    def _lookup(self, key: tuple, now: float) -> tuple[bool, Any]:
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._max_age:
            return True, hit[1]
        return False, None

    def memo(self, key: tuple, read: Callable[[], Any]) -> Any:
        """``read()``, or its value from the cache: for chain reads, and for values made only from
        them (a rendered page of projects)."""
        if not self._enabled or self._current_head() is None:
            return read()
        for _ in range(2):  # once as a follower of another thread's read, then on our own
            now = self._clock()
            with self._lock:
                found, value = self._lookup(key, now)
                if found:
                    return value
                waiting = self._pending.get(key)
                if waiting is None:
                    done = self._pending[key] = threading.Event()
                    break
            waiting.wait(timeout=60)
        else:
            return read()
        try:
            value = read()
            with self._lock:  # dated when the read ended: a read that takes longer than max_age still serves
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (self._clock(), value)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            done.set()

    # ChainView
    def head(self) -> int | None:
        return self._current_head() if self._enabled else None

    def project_ids(self) -> list[int]:
        return self.memo(("ids",), self.fresh.project_ids)

    def project(self, project_id: int) -> ProjectView | None:
        return self.memo(("project", project_id), lambda: self.fresh.project(project_id))

    def projects(self, project_ids: list[int]) -> list[ProjectView | None]:
        """A page of projects: one batched read of those not cached yet."""
        return self.memo(("projects", tuple(project_ids)), lambda: self._read_projects(project_ids))

    def _read_projects(self, project_ids: list[int]) -> list[ProjectView | None]:
        batch = getattr(self.fresh, "projects", None)
        found = batch(project_ids) if callable(batch) else [self.fresh.project(pid) for pid in project_ids]
        if not self._enabled:
            return found
        now = self._clock()
        with self._lock:
            for pid, info in zip(project_ids, found):
                self._entries[("project", pid)] = (now, info)
        return found

    def round(self, project_id: int, round: int) -> RoundView | None:
        return self.memo(("round", project_id, round), lambda: self.fresh.round(project_id, round))

    def is_joined(self, project_id: int, address: str) -> bool:
        return self.memo(("joined", project_id, address.lower()), lambda: self.fresh.is_joined(project_id, address))

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        return self.memo(
            ("submitted", project_id, round, address.lower()),
            lambda: self.fresh.has_submitted(project_id, round, address),
        )

    def claimable(self, project_id: int, address: str) -> int:
        return self.memo(("claimable", project_id, address.lower()), lambda: self.fresh.claimable(project_id, address))

    def stake(self, project_id: int, address: str) -> int:
        return self.memo(("stake", project_id, address.lower()), lambda: self.fresh.stake(project_id, address))

    def committee(self, project_id: int, round: int) -> CommitteeInfo | None:
        read = getattr(self.fresh, "committee", None)
        if not callable(read):
            return None
        return self.memo(("committee", project_id, round), lambda: read(project_id, round))

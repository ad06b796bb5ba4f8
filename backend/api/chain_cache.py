"""Chain reads cached per block, so that reads scale with clients and not with chain round trips.

A read is answered from the cache while the chain's head is still the block it was read at. Reads
whose answer depends on the clock as well (a round's phase moves with time even when no block is
mined, as on a quiet Anvil) are reused for at most ``max_age_s`` besides; reads of stored state only
(projects, the project list) are ``timeless``: only a new block retires them, so a quiet chain is
read once however many clients list it. The head is polled at most every ``HEAD_POLL_S``, so a
burst of requests shares one ``eth_blockNumber``. Concurrent misses of one key wait for a single read (single flight), so
eight clients listing a cold page cost the chain one batch, not eight. No lock is held while the
chain is read. Writes' eligibility checks use ``fresh``, the uncached view.
"""

from __future__ import annotations

import math
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
        self._entries: dict[tuple, tuple[float, Any]] = {}  # key -> (expires at, value)
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
        if hit is not None and now < hit[0]:
            return True, hit[1]
        return False, None

    def peek(self, key: tuple) -> tuple[bool, Any]:
        """(True, the cached value) when it is known current without touching the chain (the head
        was polled within ``HEAD_POLL_S``), else (False, None): safe to call on the event loop."""
        block, polled = self._head
        now = self._clock()
        if not self._enabled or block is None or now - polled >= HEAD_POLL_S:
            return False, None
        with self._lock:
            return self._lookup(key, now)

    def _expiry(self, timeless: bool) -> float:
        """When an entry read now stops serving, unless a new block retires it first."""
        return math.inf if timeless else self._clock() + self._max_age

    def memo(self, key: tuple, read: Callable[[], Any], *, timeless: bool = False) -> Any:
        """``read()``, or its value from the cache: for chain reads, and for values made only from
        them (a rendered page of projects). ``timeless``: the value depends on stored state only,
        never on the block's timestamp, so it serves until the head moves."""
        head = self._current_head() if self._enabled else None
        if head is None:
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
            self._keep(head, {key: value}, timeless)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            done.set()

    def _keep(self, head: int, values: dict[tuple, Any], timeless: bool) -> None:
        """Caches ``values``, read while ``head`` was the head, unless a newer head has been seen
        since: the cache was cleared for it, and a value read before it must not outlive it. Dated
        when the read ended: a read that takes longer than max_age still serves."""
        expires = self._expiry(timeless)
        with self._lock:
            if self._head[0] != head:
                return
            if len(self._entries) + len(values) > MAX_ENTRIES:
                self._entries.clear()
            self._entries.update((key, (expires, value)) for key, value in values.items())

    # ChainView
    def head(self) -> int | None:
        return self._current_head() if self._enabled else None

    def project_ids(self) -> list[int]:
        return self.memo(("ids",), self.fresh.project_ids, timeless=True)

    def project(self, project_id: int) -> ProjectView | None:
        return self.memo(("project", project_id), lambda: self.fresh.project(project_id), timeless=True)

    def projects(self, project_ids: list[int]) -> list[ProjectView | None]:
        """A page of projects: one batched read of those not cached yet."""
        return self.memo(("projects", tuple(project_ids)), lambda: self._read_projects(project_ids), timeless=True)

    def _read_projects(self, project_ids: list[int]) -> list[ProjectView | None]:
        head = self._head[0]
        batch = getattr(self.fresh, "projects", None)
        found = batch(project_ids) if callable(batch) else [self.fresh.project(pid) for pid in project_ids]
        if self._enabled and head is not None:
            self._keep(head, {("project", pid): info for pid, info in zip(project_ids, found)}, timeless=True)
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

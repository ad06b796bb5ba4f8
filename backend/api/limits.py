"""The API's tunable limits, token-bucket rate limiting, and the cap on upload bytes in flight."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from backend.config import Settings
from backend.limits import UPDATE_MAX_BYTES


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = UPDATE_MAX_BYTES  # the update size cap (Settings.max_update_bytes)
    max_clock_skew_s: int = 300  # a signed request older (or further ahead) than this is refused
    writes_per_minute: float = 60.0  # sustained signed writes per address
    write_burst: int = 10  # writes an idle address may make at once
    ip_writes_per_minute: float = 120.0  # write attempts per client IP, signed or not, counted before any crypto
    ip_write_burst: int = 30
    reads_per_minute: float = 300.0  # reads (every non-write request) per client IP
    read_burst: int = 60
    body_timeout_s: float = 300.0  # a body must arrive within this (a trickling client holds a slot)
    max_inflight_upload_bytes: int = 256 * 1024 * 1024  # upload bodies held at once, all clients together
    chain_cache_s: float = 1.0  # a chain read is reused within one block for at most this long

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "ApiLimits":
        """The limits ``settings`` name (``MERIT_API_*``, ``MERIT_MAX_UPDATE_BYTES``), plus overrides."""
        values = dict(
            max_body_bytes=settings.max_update_bytes,
            writes_per_minute=settings.api_writes_per_minute,
            write_burst=settings.api_write_burst,
            ip_writes_per_minute=settings.api_ip_writes_per_minute,
            ip_write_burst=settings.api_ip_write_burst,
            reads_per_minute=settings.api_reads_per_minute,
            read_burst=settings.api_read_burst,
            body_timeout_s=settings.api_body_timeout_s,
            max_inflight_upload_bytes=settings.api_max_inflight_upload_bytes,
            chain_cache_s=settings.api_chain_cache_s,
        )
        return cls(**{**values, **overrides})


class RateLimiter:
    """A token bucket per key (an address, a client IP).

    ``wait_time`` only looks, so the server can refuse an over-limit address before it spends
    anything on the request; ``take`` spends a token. For addresses the server takes only after
    the signature is verified, so nobody can drain another address's bucket by writing in its name.
    """

    def __init__(self, per_minute: float, burst: int, clock=time.monotonic, max_keys: int = 100_000):
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0 when it may now."""
        with self._lock:
            tokens = self._level(key.lower(), self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def take(self, key: str) -> float:
        """Spend one token; returns 0, or the seconds to wait when the bucket is empty."""
        key = key.lower()
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self._rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self._max_keys:  # forget full buckets so memory stays bounded
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self._burst}
            return 0.0


class InflightBytes:
    """A cap on the upload bytes the server holds at once, over all requests: the server's memory
    for bodies is bounded whatever the number of clients. A request reserves its declared size
    (the whole cap per body when it declares none) before reading, and releases it when done."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def try_reserve(self, size: int) -> bool:
        with self._lock:
            if self._used + size > self.capacity:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)

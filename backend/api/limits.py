"""Per-address rate limiting and the API's tunable limits."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = 64 * 1024 * 1024   # the update size cap (Settings.max_update_bytes)
    max_clock_skew_s: int = 300              # a signed request older (or further ahead) than this is refused
    writes_per_minute: float = 60.0          # sustained signed writes per address
    write_burst: int = 10                    # writes an idle address may make at once
    body_timeout_s: float = 300.0            # a body must arrive within this (a trickling client holds a slot)


class RateLimiter:
    """A token bucket per address.

    ``wait_time`` only looks, so the server can refuse an over-limit address before reading its
    body; ``take`` spends a token only after the signature is verified, so nobody can drain
    another address's bucket by sending requests in its name.
    """

    def __init__(self, per_minute: float, burst: int, clock=time.monotonic):
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

    def wait_time(self, address: str) -> float:
        """Seconds until ``address`` may write again; 0 when it may now."""
        key = address.lower()
        with self._lock:
            tokens = self._level(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def take(self, address: str) -> float:
        """Spend one token; returns 0, or the seconds to wait when the bucket is empty."""
        key = address.lower()
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self._rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget full buckets so memory stays bounded
                self._buckets = {k: v for k, v in self._buckets.items() if self._level(k, now) < self._burst}
            return 0.0

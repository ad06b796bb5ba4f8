"""The read limiter's hold: a client over its read rate gets its 429 when its next token is due
(bounded), so that a loop that ignores Retry-After is paced instead of answered as fast as it asks;
the number of held requests is capped per client and in all, so holding cannot be used to pile up
connections."""

from __future__ import annotations

import asyncio

import pytest

from backend.api import http_guards
from backend.api.http_guards import HOLD_MAX_S, HOLD_PER_IP, ReadRateLimit
from backend.api.limits import RateLimiter

REAL_SLEEP = asyncio.sleep  # the guard's asyncio.sleep is patched below, and it is this module's too


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def _app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _scope(ip: str, method: str = "GET") -> dict:
    return {"type": "http", "method": method, "path": "/v1/projects", "headers": [], "client": (ip, 1234)}


async def _status(guard: ReadRateLimit, ip: str, method: str = "GET") -> int:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    await guard(_scope(ip, method), receive, send)
    return sent[0]["status"]


@pytest.fixture
def sleeps(monkeypatch):
    """asyncio.sleep as the guard sees it: records the durations, and lets a test hold sleepers."""
    record = {"durations": [], "gate": None}

    async def fake_sleep(seconds):
        record["durations"].append(seconds)
        if record["gate"] is not None:
            await record["gate"].wait()
        await REAL_SLEEP(0)

    monkeypatch.setattr(http_guards.asyncio, "sleep", fake_sleep)
    return record


def test_an_over_limit_read_is_held_until_its_token_is_due_then_refused(sleeps):
    guard = ReadRateLimit(_app, RateLimiter(per_minute=60, burst=2, clock=Clock()))

    async def scenario():
        return [await _status(guard, "10.0.0.1") for _ in range(3)] + [await _status(guard, "10.0.0.2")]

    assert asyncio.run(scenario()) == [200, 200, 429, 200]  # the other client is not held back
    assert sleeps["durations"] == [pytest.approx(1.0)]  # one token a second: due in 1 s
    assert asyncio.run(_status(guard, "10.0.0.1", "POST")) == 200  # writes have their own limits


def test_a_long_wait_is_held_at_most_hold_max(sleeps):
    guard = ReadRateLimit(_app, RateLimiter(per_minute=1, burst=1, clock=Clock()))

    async def scenario():
        return [await _status(guard, "10.0.0.1") for _ in range(2)]

    assert asyncio.run(scenario()) == [200, 429]
    assert sleeps["durations"] == [HOLD_MAX_S]


def test_held_requests_are_capped_per_client(sleeps):
    guard = ReadRateLimit(_app, RateLimiter(per_minute=60, burst=1, clock=Clock()))

    async def scenario():
        sleeps["gate"] = asyncio.Event()
        assert await _status(guard, "10.0.0.1") == 200
        held = [asyncio.create_task(_status(guard, "10.0.0.1")) for _ in range(HOLD_PER_IP)]
        await REAL_SLEEP(0)  # they reach their sleep
        # no room to hold: answered now (without the cap it would wait on the gate, and time out)
        refused_at_once = await asyncio.wait_for(_status(guard, "10.0.0.1"), timeout=10)
        assert len(sleeps["durations"]) == HOLD_PER_IP and not any(t.done() for t in held)
        sleeps["gate"].set()
        return refused_at_once, await asyncio.gather(*held)

    refused, held = asyncio.run(scenario())
    assert refused == 429 and held == [429] * HOLD_PER_IP
    assert not guard._held  # every hold released

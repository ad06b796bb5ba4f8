"""ASGI middleware that protects the server before any route runs.

- ``ReadRateLimit``: every request that is not a write spends a token of its client IP's bucket;
  an empty bucket is answered 429 before routing, so a flood of reads stays cheap. The 429 is held
  back until the client's next token is due (at most ``HOLD_MAX_S``, as nginx's ``limit_req``
  delays excess requests): a client that loops without reading ``Retry-After`` is paced to its
  rate instead of costing the server a refusal per loop. A sleeping request costs no CPU; each IP
  has at most ``HOLD_PER_IP`` of them, and the server ``HOLD_TOTAL``: past that, the 429 is at once.
- ``CloseUnreadBody``: a response sent before the request's body was read (a write refused on its
  headers) closes the connection, so the server never reads, parses and discards the rest of a
  body nobody will use (64 MiB of it would cost more CPU than the refusal itself).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter

from backend.api.context import client_ip
from backend.api.limits import RateLimiter

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


HOLD_MAX_S = 1.0
HOLD_PER_IP = 4
HOLD_TOTAL = 256


class ReadRateLimit:
    def __init__(self, app, limiter: RateLimiter):
        self.app = app
        self.limiter = limiter
        self._held: Counter[str] = Counter()  # 429s sleeping, per client IP

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in WRITE_METHODS:
            return await self.app(scope, receive, send)
        ip = client_ip(scope)
        wait = self.limiter.take(ip)
        if wait <= 0:
            return await self.app(scope, receive, send)
        await self._hold(ip, wait)
        await self._refuse(send, ip, wait)

    async def _hold(self, ip: str, wait: float) -> None:
        """Sleeps until the client's next token is due, when there is room to hold its request."""
        if self._held[ip] >= HOLD_PER_IP or self._held.total() >= HOLD_TOTAL:
            return
        self._held[ip] += 1
        try:
            await asyncio.sleep(min(wait, HOLD_MAX_S))
        finally:
            self._held[ip] -= 1
            if not self._held[ip]:
                del self._held[ip]

    @staticmethod
    async def _refuse(send, ip: str, wait: float) -> None:
        retry = str(max(1, math.ceil(wait)))
        body = json.dumps(
            {"error": "rate_limited", "detail": f"too many reads from client {ip}; retry in {retry} s"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class CloseUnreadBody:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _declares_body(scope["headers"]):
            return await self.app(scope, receive, send)
        state = {"body_done": False}

        async def tracking_receive():
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def closing_send(message):
            if message["type"] == "http.response.start" and not state["body_done"]:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, closing_send)

"""ASGI middleware that protects the server before any route runs.

- ``ReadRateLimit``: every request that is not a write spends a token of its client IP's bucket;
  an empty bucket is answered 429 at once, before routing, so a flood of reads stays cheap.
- ``CloseUnreadBody``: a response sent before the request's body was read (a write refused on its
  headers) closes the connection, so the server never reads, parses and discards the rest of a
  body nobody will use (64 MiB of it would cost more CPU than the refusal itself).
"""

from __future__ import annotations

import json
import math

from backend.api.context import client_ip
from backend.api.limits import RateLimiter

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ReadRateLimit:
    def __init__(self, app, limiter: RateLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in WRITE_METHODS:
            return await self.app(scope, receive, send)
        ip = client_ip(scope)
        wait = self.limiter.take(ip)
        if wait <= 0:
            return await self.app(scope, receive, send)
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

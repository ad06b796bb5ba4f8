"""Running the API under uvicorn, with the limits a server on the open internet needs.

uvicorn times out idle keep-alive connections but not a client that sends its request's headers
slowly (slowloris): such a client would hold a connection, and with enough of them every
connection slot, forever. ``HeaderTimeoutH11Protocol`` closes a connection whose request head
has not arrived within ``api_header_timeout_s`` of the connection opening or of the previous
response ending. Bodies have their own timeout (``api_body_timeout_s``, in the upload route);
``api_max_connections`` caps connections and requests (beyond it uvicorn answers 503), and h11
refuses request heads over 16 KiB.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from backend.config import Settings


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return  # a request is being answered: its body has its own timeout
        self.logger.info("closing a connection whose request headers took over %g s", self.header_timeout_s)
        if self.conn.our_state is h11.IDLE:  # nothing sent yet on this cycle: say why, then close
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: 82\r\n\r\n"
                b'{"error": "header_timeout", "detail": "the request headers did not arrive in time"}'
            )
        self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the head is in: a request is under way
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": float(seconds)})


def uvicorn_config(
    app, settings: Settings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn's configuration for the API: header, keep-alive and connection limits from ``settings``.

    One worker: the upload index and nonce registry are per server, the embedded chain per process.
    X-Forwarded-For is trusted only from ``api_forwarded_allow_ips``, so that a client cannot pick
    the IP its rate limits are counted under."""
    proxies = settings.api_forwarded_allow_ips
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        workers=1,
        lifespan="on",
        http=protocol_with_header_timeout(settings.api_header_timeout_s),
        timeout_keep_alive=settings.api_keep_alive_s,
        limit_concurrency=settings.api_max_connections,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
    )

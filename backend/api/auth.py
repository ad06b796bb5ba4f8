"""Authentication of writes, as FastAPI dependencies: everything is checked before the body is read.

A write is refused before a byte of its body is read unless its client IP is under its write
limit, its ``X-Merit-*`` headers are well formed and fresh, its signature (scheme MERIT-API-2,
over the declared body hash, this server's origin, the chain and the market) recovers to
``X-Merit-Address``, the address is under its rate limit and its nonce is new. Only then is the
body read, hashed as it streams in, within the size cap and the server-wide cap on upload bytes
in flight, and refused if it is not the body that was signed. A forged request costs the server
one signature recovery, never the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from backend import signing
from backend.api.context import ApiContext, client_ip, get_context
from backend.api.errors import ApiError


def _rate_limited(ctx: ApiContext, who: str, wait: float) -> ApiError:
    return ctx.refuse(
        429,
        "rate_limited",
        f"too many writes from {who}; retry in {math.ceil(wait)} s",
        {"Retry-After": str(max(1, math.ceil(wait)))},
    )


async def signed_headers(
    request: Request,
    ctx: ApiContext = Depends(get_context),
    address: str | None = Header(None, alias=signing.HEADER_ADDRESS, description="signer's address, 0x + 40 hex"),
    timestamp: str | None = Header(
        None, alias=signing.HEADER_TIMESTAMP, description="Unix seconds; refused when more than 5 minutes off"
    ),
    nonce: str | None = Header(None, alias=signing.HEADER_NONCE, description="8-64 of [A-Za-z0-9_-], never reused"),
    content_sha256: str | None = Header(
        None,
        alias=signing.HEADER_CONTENT_SHA256,
        description="sha256 of the body, 64 lowercase hex; the body must match it",
    ),
    signature: str | None = Header(
        None, alias=signing.HEADER_SIGNATURE, description=f"EIP-191 signature of the {signing.SCHEME} canonical string"
    ),
) -> signing.SignedHeaders:
    """The claimed signer and its fresh timestamp; 429 when the client IP writes too often, 401
    when a header is missing, malformed or stale. Nothing here costs more than a dictionary look-up,
    so it runs on the event loop, not in a worker thread.

    The headers are optional to FastAPI so that a missing one is a 401 from here, not a 422.
    """
    ip = client_ip(request)
    wait = ctx.ip_write_limiter.take(ip)
    if wait > 0:
        raise _rate_limited(ctx, f"client {ip}", wait)
    parsed = signing.parse_headers(
        {
            signing.HEADER_ADDRESS: address,
            signing.HEADER_TIMESTAMP: timestamp,
            signing.HEADER_NONCE: nonce,
            signing.HEADER_SIGNATURE: signature,
            signing.HEADER_CONTENT_SHA256: content_sha256,
        }
    )
    if isinstance(parsed, str):
        raise ctx.refuse(401, "unauthorized", parsed)
    skew = time.time() - parsed.timestamp
    if abs(skew) > ctx.limits.max_clock_skew_s:
        when = "old" if skew > 0 else "in the future"
        raise ctx.refuse(
            401,
            "stale_timestamp",
            f"{signing.HEADER_TIMESTAMP} is {abs(int(skew))} s {when}; the limit is "
            f"{ctx.limits.max_clock_skew_s} s: sign each request when you send it and check your clock",
        )
    return parsed


def request_target(request: Request) -> str:
    """The request target as the client sent it: the raw (still percent-encoded) path, and the
    query string when there is one. This, not the decoded path, is what the signature covers."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string") or b""
    try:
        return raw.decode("ascii") + (f"?{query.decode('ascii')}" if query else "")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the request target is not ASCII; percent-encode it") from None


def audience(request: Request, ctx: ApiContext) -> signing.Audience:
    """What a signature must name to be valid here: this chain, this market and this server's origin.

    With configured origins (``MERIT_API_ORIGIN``) the request's Host must be one of them; with none
    (development) the origin is the one the request was addressed to."""
    host = request.headers.get("host", "")
    candidates = sorted(ctx.origins) if ctx.origins is not None else [f"{request.url.scheme}://{host}"]
    for origin in candidates:
        scheme = origin.split("://", 1)[0]
        try:
            addressed = signing.canonical_origin(f"{scheme}://{host}")
        except ValueError:
            raise ctx.refuse(400, "bad_request", "the Host header is not a valid host[:port]") from None
        if ctx.origins is None or addressed == origin:
            return signing.Audience(chain_id=ctx.chain.chain_id, market=ctx.chain.market_address, origin=addressed)
    raise ctx.refuse(
        401,
        "wrong_origin",
        f"this API is {', '.join(candidates)}, not {host!r}: address it by that origin, which signatures must name",
    )


async def authenticated(
    request: Request, headers: signing.SignedHeaders = Depends(signed_headers), ctx: ApiContext = Depends(get_context)
) -> signing.SignedHeaders:
    """A write whose signature, address rate limit and nonce are good; its body not yet read."""
    where = audience(request, ctx)
    if not signing.verify(where, request.method, request_target(request), headers):
        raise ctx.refuse(
            401,
            "bad_signature",
            f"{signing.HEADER_SIGNATURE} is not {headers.address}'s signature of this request "
            f"(scheme {signing.SCHEME} for chain {where.chain_id}, market {where.market}, origin "
            f"{where.origin}: method, target as sent, declared sha256, timestamp, nonce)",
        )
    wait = ctx.rate_limiter.take(headers.address)
    if wait > 0:
        raise _rate_limited(ctx, headers.address, wait)
    expires = headers.timestamp + ctx.limits.max_clock_skew_s + 1
    if not await run_in_threadpool(ctx.nonces.use, headers.address, headers.nonce, expires):
        raise ctx.refuse(
            401,
            "nonce_reused",
            f"{signing.HEADER_NONCE} {headers.nonce} was already used; use a fresh random nonce for every request",
        )
    return headers


def _declared_size(request: Request, ctx: ApiContext) -> int:
    """The body's declared length (the cap when it declares none: chunked); 413 when over the cap."""
    cap = ctx.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is None:
        return cap
    if not declared.isdigit():
        raise ctx.refuse(400, "bad_request", "Content-Length is not a number")
    if int(declared) > cap:
        raise ctx.refuse(
            413, "too_large", f"the body is over the {cap}-byte cap on updates (Content-Length {declared})"
        )
    return int(declared)


async def _read_capped(request: Request, ctx: ApiContext) -> tuple[bytes, str]:
    """The body and its sha256, read as it streams in; 413 as soon as it is past the cap."""
    cap = ctx.limits.max_body_bytes
    body = bytearray()
    digest = hashlib.sha256()
    try:
        async with asyncio.timeout(ctx.limits.body_timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > cap:
                    raise ctx.refuse(413, "too_large", f"the body is over the {cap}-byte cap on updates")
                body += chunk
                digest.update(chunk)
    except TimeoutError:
        raise ctx.refuse(
            408, "body_timeout", f"the body did not arrive within {ctx.limits.body_timeout_s:g} s"
        ) from None
    except ClientDisconnect:  # nobody is left to answer; say so in the log line, not as a 500
        raise ApiError(400, "client_disconnected", "the client went away before sending the whole body") from None
    return bytes(body), digest.hexdigest()


@asynccontextmanager
async def signed_body(request: Request, ctx: ApiContext, signed: signing.SignedHeaders) -> AsyncIterator[bytes]:
    """The body of an authenticated write, held within the server-wide cap on upload bytes in flight
    until the block ends; 503 when the server holds too many already, 401 when it is not the body
    whose hash was signed."""
    size = _declared_size(request, ctx)
    if not ctx.inflight.try_reserve(size):
        raise ctx.refuse(503, "busy", "the server is receiving too many uploads; retry shortly", {"Retry-After": "5"})
    try:
        body, sha256 = await _read_capped(request, ctx)
        if sha256 != signed.body_sha256:
            raise ctx.refuse(
                401,
                "body_mismatch",
                f"the body's sha256 is {sha256}, not the signed {signing.HEADER_CONTENT_SHA256} {signed.body_sha256}",
            )
        yield body
    finally:
        ctx.inflight.release(size)

"""Authentication of writes, as FastAPI dependencies.

A write is accepted only when its ``X-Merit-*`` headers are well formed and fresh, its body fits
the cap, its signature recovers to ``X-Merit-Address``, its nonce is new, and the address is under
its rate limit. Cheap checks come first, so a bad request is refused before its body is read.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from backend.api import signing
from backend.api.context import ApiContext, get_context
from backend.api.errors import ApiError


@dataclass(frozen=True)
class SignedWrite:
    """A verified write: who signed it and the body they signed."""

    address: str
    body: bytes
    sha256: str


def _rate_limited(ctx: ApiContext, address: str, wait: float) -> ApiError:
    return ctx.refuse(429, "rate_limited", f"too many writes from {address}; retry in {math.ceil(wait)} s",
                      {"Retry-After": str(max(1, math.ceil(wait)))})


def signed_headers(
    ctx: ApiContext = Depends(get_context),
    address: str | None = Header(None, alias=signing.HEADER_ADDRESS, description="signer's address, 0x + 40 hex"),
    timestamp: str | None = Header(None, alias=signing.HEADER_TIMESTAMP,
                                   description="Unix seconds; refused when more than 5 minutes off"),
    nonce: str | None = Header(None, alias=signing.HEADER_NONCE, description="8-64 of [A-Za-z0-9_-], never reused"),
    signature: str | None = Header(None, alias=signing.HEADER_SIGNATURE,
                                   description=f"EIP-191 signature of the {signing.SCHEME} canonical string"),
) -> signing.SignedHeaders:
    """The claimed signer and its fresh timestamp; 401 when missing, malformed or stale.

    The headers are optional to FastAPI so that a missing one is a 401 from here, not a 422.
    """
    parsed = signing.parse_headers({signing.HEADER_ADDRESS: address, signing.HEADER_TIMESTAMP: timestamp,
                                    signing.HEADER_NONCE: nonce, signing.HEADER_SIGNATURE: signature})
    if isinstance(parsed, str):
        raise ctx.refuse(401, "unauthorized", parsed)
    skew = time.time() - parsed.timestamp
    if abs(skew) > ctx.limits.max_clock_skew_s:
        when = "old" if skew > 0 else "in the future"
        raise ctx.refuse(401, "stale_timestamp",
                         f"{signing.HEADER_TIMESTAMP} is {abs(int(skew))} s {when}; the limit is "
                         f"{ctx.limits.max_clock_skew_s} s: sign each request when you send it and check your clock")
    return parsed


async def _read_capped(request: Request, ctx: ApiContext) -> tuple[bytes, str]:
    """The body and its sha256, read as it streams in; 413 as soon as it is past the cap."""
    cap = ctx.limits.max_body_bytes
    too_large = f"the body is over the {cap}-byte cap on updates"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ctx.refuse(400, "bad_request", "Content-Length is not a number")
        if int(declared) > cap:
            raise ctx.refuse(413, "too_large", f"{too_large} (Content-Length {declared})")
    body = bytearray()
    digest = hashlib.sha256()
    try:
        async with asyncio.timeout(ctx.limits.body_timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > cap:
                    raise ctx.refuse(413, "too_large", too_large)
                body += chunk
                digest.update(chunk)
    except TimeoutError:
        raise ctx.refuse(408, "body_timeout", f"the body did not arrive within {ctx.limits.body_timeout_s:g} s") from None
    except ClientDisconnect:  # nobody is left to answer; say so in the log line, not as a 500
        raise ApiError(400, "client_disconnected", "the client went away before sending the whole body") from None
    return bytes(body), digest.hexdigest()


async def signed_write(request: Request, headers: signing.SignedHeaders = Depends(signed_headers),
                       ctx: ApiContext = Depends(get_context)) -> SignedWrite:
    """Read and authenticate a write's body. Use after any cheaper route-specific checks."""
    wait = ctx.rate_limiter.wait_time(headers.address)
    if wait > 0:
        raise _rate_limited(ctx, headers.address, wait)
    body, sha256 = await _read_capped(request, ctx)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not await run_in_threadpool(signing.verify, request.method, path, sha256, headers):
        raise ctx.refuse(401, "bad_signature",
                         f"{signing.HEADER_SIGNATURE} is not {headers.address}'s signature of this request "
                         f"(scheme {signing.SCHEME}: method, path, sha256(body), timestamp, nonce)")
    expires = headers.timestamp + ctx.limits.max_clock_skew_s + 1
    if not await run_in_threadpool(ctx.nonces.use, headers.address, headers.nonce, expires):
        raise ctx.refuse(401, "nonce_reused", f"{signing.HEADER_NONCE} {headers.nonce} was already used; "
                                                "use a fresh random nonce for every request")
    wait = ctx.rate_limiter.take(headers.address)
    if wait > 0:
        raise _rate_limited(ctx, headers.address, wait)
    return SignedWrite(address=headers.address, body=body, sha256=sha256)

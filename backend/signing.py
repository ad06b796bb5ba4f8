"""Signed API requests: the canonical string and its EIP-191 signature (scheme ``MERIT-API-2``).

Server and client share this module, so they cannot disagree about what is signed.
A write carries five headers:

- ``X-Merit-Address``: the signer's Ethereum address (``0x`` + 40 hex);
- ``X-Merit-Timestamp``: Unix seconds, an integer;
- ``X-Merit-Nonce``: 8-64 characters of ``[A-Za-z0-9_-]``, never reused;
- ``X-Merit-Content-SHA256``: the sha256 of the body, 64 lowercase hex digits;
- ``X-Merit-Signature``: ``0x`` + 130 hex, an EIP-191 (``personal_sign``) signature of

::

    MERIT-API-2
    <chain id, decimal>
    <market address, 0x + 40 lowercase hex>
    <origin>
    <METHOD>
    <target>
    <sha256(body), lowercase hex: the X-Merit-Content-SHA256 value>
    <timestamp>
    <nonce>

joined by ``\\n`` with no trailing newline.

- ``origin`` is the API's origin as the client addresses it: ``scheme://host[:port]``, scheme and
  host in lower case, the port left out when it is the scheme's default (80, 443).
- ``METHOD`` is upper case.
- ``target`` is the request target exactly as sent on the request line: the path, still
  percent-encoded as sent (``/v1/projects/1/rounds/0/updates``), then ``?`` and the query string
  when there is one. Nothing is decoded or normalised, so the server checks the bytes it received.

Because the body's hash travels in a signed header, the server authenticates a request before it
reads a byte of the body, then hashes the body as it streams in and refuses it if it differs.
The chain id, market and origin bind a signature to one API server of one market: it cannot be
replayed to another server, market or chain. The first line names the scheme, so a signature made
for Merit's API is never valid as any other personal_sign message.

``MERIT-API-1`` (no chain, market, origin or declared body hash) is refused: its signatures could
be replayed to any other server of the market, and the server and its only client ship together.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

SCHEME = "MERIT-API-2"
HEADER_ADDRESS = "X-Merit-Address"
HEADER_SIGNATURE = "X-Merit-Signature"
HEADER_TIMESTAMP = "X-Merit-Timestamp"
HEADER_NONCE = "X-Merit-Nonce"
HEADER_CONTENT_SHA256 = "X-Merit-Content-SHA256"
SIGNED_HEADERS = (HEADER_ADDRESS, HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_CONTENT_SHA256)

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SIGNATURE_RE = re.compile(r"^0x[0-9a-fA-F]{130}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as it is signed; ValueError for anything that is not a
    plain http(s) origin (a path other than ``/``, a query, credentials)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"{url!r} is not an http(s)://host[:port] origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} has more than scheme://host[:port]; an API origin has no path, query or credentials")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class Audience:
    """Where a signature is meant to be used: one API server (``origin``) of one market on one chain."""

    chain_id: int
    market: str
    origin: str

    def __post_init__(self) -> None:
        if not ADDRESS_RE.match(self.market):
            raise ValueError(f"market {self.market!r} is not 0x followed by 40 hex digits")
        object.__setattr__(self, "market", self.market.lower())
        object.__setattr__(self, "origin", canonical_origin(self.origin))
        object.__setattr__(self, "chain_id", int(self.chain_id))


def canonical_string(audience: Audience, method: str, target: str, body_sha256: str, timestamp: int, nonce: str) -> str:
    """The exact text a request's signature covers (see the module docstring)."""
    return "\n".join(
        (
            SCHEME,
            str(audience.chain_id),
            audience.market,
            audience.origin,
            method.upper(),
            target,
            body_sha256,
            str(timestamp),
            nonce,
        )
    )


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_request(
    private_key: str | bytes | LocalAccount,
    audience: Audience,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    body_sha256: str | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five ``X-Merit-*`` headers that authenticate one request (key: hex, bytes or an account).

    ``target`` is the path (and ``?query``) exactly as it will go on the request line.
    ``body_sha256`` overrides the body's hash (for a body streamed from elsewhere, or a test)."""
    account = private_key if isinstance(private_key, LocalAccount) else Account.from_key(private_key)
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    digest = body_digest(body) if body_sha256 is None else body_sha256
    message = encode_defunct(text=canonical_string(audience, method, target, digest, timestamp, nonce))
    signature = account.sign_message(message).signature.hex()
    return {
        HEADER_ADDRESS: account.address,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_CONTENT_SHA256: digest,
        HEADER_SIGNATURE: signature if signature.startswith("0x") else "0x" + signature,
    }


@dataclass(frozen=True)
class SignedHeaders:
    """The ``X-Merit-*`` headers of a request, checked for form but not yet verified."""

    address: str
    signature: str
    timestamp: int
    nonce: str
    body_sha256: str


def parse_headers(headers: dict[str, str] | object) -> SignedHeaders | str:
    """The signed headers, or the reason they are missing or malformed."""
    get = headers.get  # type: ignore[attr-defined]
    values = {name: get(name) for name in SIGNED_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        return (
            f"missing header(s) {', '.join(missing)}: writes must be signed with scheme {SCHEME} "
            f"(MERIT-API-1 clients must upgrade)"
        )
    address, signature = values[HEADER_ADDRESS], values[HEADER_SIGNATURE]
    timestamp, nonce, digest = values[HEADER_TIMESTAMP], values[HEADER_NONCE], values[HEADER_CONTENT_SHA256]
    if not ADDRESS_RE.match(address):
        return f"{HEADER_ADDRESS} must be 0x followed by 40 hex digits"
    if not SIGNATURE_RE.match(signature):
        return f"{HEADER_SIGNATURE} must be 0x followed by 130 hex digits"
    if not TIMESTAMP_RE.match(timestamp):
        return f"{HEADER_TIMESTAMP} must be Unix seconds"
    if not NONCE_RE.match(nonce):
        return f"{HEADER_NONCE} must be 8-64 characters of A-Z a-z 0-9 _ -"
    if not SHA256_RE.match(digest):
        return f"{HEADER_CONTENT_SHA256} must be the body's sha256 as 64 lowercase hex digits"
    return SignedHeaders(
        address=address, signature=signature, timestamp=int(timestamp), nonce=nonce, body_sha256=digest
    )


def recover_signer(audience: Audience, method: str, target: str, signed: SignedHeaders) -> str | None:
    """The checksummed address that signed this request, or None if the signature is not valid."""
    text = canonical_string(audience, method, target, signed.body_sha256, signed.timestamp, signed.nonce)
    try:
        return Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(signed.signature[2:]))
    except Exception:  # eth-keys raises several types for a malformed or out-of-range signature
        return None


def verify(audience: Audience, method: str, target: str, signed: SignedHeaders) -> bool:
    """True when ``signed.signature`` was made by ``signed.address`` over this request for ``audience``."""
    signer = recover_signer(audience, method, target, signed)
    return signer is not None and signer.lower() == signed.address.lower()

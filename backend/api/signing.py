"""Signed API requests: the canonical string and its EIP-191 signature.

Server and client share this module, so they cannot disagree about what is signed.
A write carries four headers:

- ``X-Merit-Address``: the signer's Ethereum address (``0x`` + 40 hex);
- ``X-Merit-Timestamp``: Unix seconds, an integer;
- ``X-Merit-Nonce``: 8-64 characters of ``[A-Za-z0-9_-]``, never reused;
- ``X-Merit-Signature``: ``0x`` + 130 hex, an EIP-191 (``personal_sign``) signature of

::

    MERIT-API-1
    <METHOD>
    <path>
    <sha256(body), lowercase hex>
    <timestamp>
    <nonce>

joined by ``\\n`` with no trailing newline. ``METHOD`` is upper case; ``path`` is the request path
as sent (``/v1/projects/1/rounds/0/updates``), followed by ``?`` and the query string when there is
one. The first line names the scheme so that a signature made for Merit's API cannot be replayed
as any other personal_sign message, and a future scheme can change the string without ambiguity.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

SCHEME = "MERIT-API-1"
HEADER_ADDRESS = "X-Merit-Address"
HEADER_SIGNATURE = "X-Merit-Signature"
HEADER_TIMESTAMP = "X-Merit-Timestamp"
HEADER_NONCE = "X-Merit-Nonce"

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SIGNATURE_RE = re.compile(r"^0x[0-9a-fA-F]{130}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


def canonical_string(method: str, path: str, body_sha256: str, timestamp: int, nonce: str) -> str:
    """The exact text a request's signature covers (see the module docstring)."""
    return "\n".join((SCHEME, method.upper(), path, body_sha256, str(timestamp), nonce))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_request(private_key: str | bytes | LocalAccount, method: str, path: str, body: bytes = b"",
                 timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four ``X-Merit-*`` headers that authenticate one request (key: hex, bytes or an account)."""
    account = private_key if isinstance(private_key, LocalAccount) else Account.from_key(private_key)
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    message = encode_defunct(text=canonical_string(method, path, body_digest(body), timestamp, nonce))
    signature = account.sign_message(message).signature.hex()
    return {
        HEADER_ADDRESS: account.address,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature if signature.startswith("0x") else "0x" + signature,
    }


@dataclass(frozen=True)
class SignedHeaders:
    """The ``X-Merit-*`` headers of a request, checked for form but not yet verified."""

    address: str
    signature: str
    timestamp: int
    nonce: str


def parse_headers(headers: dict[str, str] | object) -> SignedHeaders | str:
    """The signed headers, or the reason they are missing or malformed."""
    get = headers.get  # type: ignore[attr-defined]
    values = {name: get(name) for name in (HEADER_ADDRESS, HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_NONCE)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        return f"missing header(s) {', '.join(missing)}: writes must be signed"
    address, signature = values[HEADER_ADDRESS], values[HEADER_SIGNATURE]
    timestamp, nonce = values[HEADER_TIMESTAMP], values[HEADER_NONCE]
    if not ADDRESS_RE.match(address):
        return f"{HEADER_ADDRESS} must be 0x followed by 40 hex digits"
    if not SIGNATURE_RE.match(signature):
        return f"{HEADER_SIGNATURE} must be 0x followed by 130 hex digits"
    if not TIMESTAMP_RE.match(timestamp):
        return f"{HEADER_TIMESTAMP} must be Unix seconds"
    if not NONCE_RE.match(nonce):
        return f"{HEADER_NONCE} must be 8-64 characters of A-Z a-z 0-9 _ -"
    return SignedHeaders(address=address, signature=signature, timestamp=int(timestamp), nonce=nonce)


def recover_signer(method: str, path: str, body_sha256: str, signed: SignedHeaders) -> str | None:
    """The checksummed address that signed this request, or None if the signature is not valid."""
    message = encode_defunct(text=canonical_string(method, path, body_sha256, signed.timestamp, signed.nonce))
    try:
        return Account.recover_message(message, signature=bytes.fromhex(signed.signature[2:]))
    except Exception:  # eth-keys raises several types for a malformed or out-of-range signature
        return None


def verify(method: str, path: str, body_sha256: str, signed: SignedHeaders) -> bool:
    """True when ``signed.signature`` was made by ``signed.address`` over this request."""
    signer = recover_signer(method, path, body_sha256, signed)
    return signer is not None and signer.lower() == signed.address.lower()

"""CIDs as Merit uses them: parsing strangers' strings, and building block CIDs fast.

Only what Kubo's ``ipfs add`` produces is accepted: CIDv0 (dag-pb, sha2-256, base58btc) and CIDv1
with the ``dag-pb`` or ``raw`` codec and a sha2-256 multihash, in any multibase. Parsing and string
encoding go through the ``multiformats`` library. The importer builds one CID per 256 KiB block,
where a full ``multiformats.CID`` costs more than hashing the block, so :class:`CidPrefix` asks the
library once for the bytes that precede the digest and reuses them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache

from multiformats import CID, multihash

from backend.errors import StorageError

DAG_PB = "dag-pb"
RAW = "raw"
SHA2_256 = "sha2-256"
_DIGEST_LEN = 32


class MalformedCidError(StorageError):
    """A string or link that is not a CID Merit can fetch."""


@dataclass(frozen=True)
class CidPrefix:
    """Everything in a binary CID before the sha2-256 digest, for one (version, codec) pair."""

    version: int
    codec: str
    cid_head: bytes  # binary CID minus the digest
    mh_head: bytes  # multihash minus the digest

    def cid_bytes(self, digest: bytes) -> bytes:
        return self.cid_head + digest

    def cid_string(self, digest: bytes) -> str:
        return format_cid(self.cid_head + digest)


@lru_cache(maxsize=None)
def cid_prefix(version: int, codec: str) -> CidPrefix:
    if version == 0 and codec != DAG_PB:
        raise ValueError("CIDv0 is always dag-pb")
    probe = bytes(_DIGEST_LEN)
    mh = bytes(multihash.wrap(probe, SHA2_256))
    cid = CID("base58btc" if version == 0 else "base32", version, codec, mh)
    return CidPrefix(version, codec, bytes(cid)[:-_DIGEST_LEN], mh[:-_DIGEST_LEN])


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A CID Merit can fetch, decoded once: the read path needs its codec and digest per block, and
    ``multiformats.CID`` recomputes them on every access (about 0.1 ms each)."""

    binary: bytes  # the binary CID
    version: int
    codec: str  # RAW or DAG_PB
    digest: bytes  # sha2-256

    def __str__(self) -> str:
        return format_cid(self.binary)


@lru_cache(maxsize=1)
def _known_heads() -> dict[bytes, tuple[int, str]]:
    return {cid_prefix(v, c).cid_head: (v, c) for v, c in ((0, DAG_PB), (1, DAG_PB), (1, RAW))}


def ref_from_binary(binary: bytes) -> BlockRef:
    """A link read from a (verified) dag-pb block; anything but a sha2-256 dag-pb/raw CID is refused."""
    head = bytes(binary[:-_DIGEST_LEN])
    known = _known_heads().get(head)
    if known is None:
        return parse_cid(bytes(binary))  # a well-formed CID Merit cannot fetch gets the precise message
    return BlockRef(bytes(binary), known[0], known[1], bytes(binary[-_DIGEST_LEN:]))


def parse_cid(value: str | bytes) -> BlockRef:
    """Parse a CID string (or binary CID) from a stranger; raise :class:`MalformedCidError` if Merit
    cannot fetch it."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MalformedCidError("empty CID", "pass a CID such as bafkrei... or Qm...")
    else:
        text = bytes(value)
    try:
        cid = CID.decode(text)
    except Exception as exc:  # the library raises several error types for bad input
        shown = text if isinstance(text, str) else text.hex()
        raise MalformedCidError(
            f"not a valid CID: {shown[:80]!r} ({exc})", "a CID looks like bafybei..., bafkrei... or Qm..."
        ) from None
    if cid.codec.name not in (DAG_PB, RAW):
        raise MalformedCidError(f"CID {cid} has codec {cid.codec.name}; Merit stores only dag-pb and raw blocks")
    if cid.hashfun.name != SHA2_256 or len(cid.raw_digest) != _DIGEST_LEN:
        raise MalformedCidError(f"CID {cid} uses hash {cid.hashfun.name}; Merit verifies only sha2-256")
    binary = bytes(cid)
    return BlockRef(binary, cid.version, cid.codec.name, binary[-_DIGEST_LEN:])


def format_cid(cid: BlockRef | CID | bytes) -> str:
    """Canonical text: base58btc for CIDv0, base32 for CIDv1 (what Kubo prints).

    A binary CIDv1 is written with the standard library's RFC 4648 base32, which is multibase
    ``b`` exactly; multiformats' own encoder type-checks every argument at run time and took
    ~1.4 ms a CID, a third of adding a 1 MB file. Tests compare both on many CIDs."""
    if isinstance(cid, BlockRef):
        cid = cid.binary
    if isinstance(cid, (bytes, bytearray)) and cid[:1] == b"\x01":
        return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")
    if not isinstance(cid, CID):
        cid = CID.decode(bytes(cid))
    return str(cid.set(base="base58btc" if cid.version == 0 else "base32"))


def multihash_key(ref: BlockRef) -> str:
    """Kubo's flatfs key for a block: the multihash in unpadded upper-case base32 (``CIQ...``)."""
    return base64.b32encode(cid_prefix(1, RAW).mh_head + ref.digest).decode("ascii").rstrip("=")

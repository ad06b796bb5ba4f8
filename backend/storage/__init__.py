"""Content-addressed storage for models, updates and reports: IPFS CIDs, verified on every read.

Usage::

    from backend.storage import open_store, compute_cid

    with open_store() as store:                  # settings.ipfs: "embedded" or a Kubo RPC URL
        cid = store.add_bytes(b"weights")        # CIDv1 base32 (bafk.../bafy...), Kubo-compatible
        cid = store.add_path("update.safetensors", cid_version=0)   # Qm...
        data = store.get_bytes(cid, max_size=64 << 20)
        for piece in store.get_stream(cid): ...  # bounded memory, each piece verified
        store.get_to_path(cid, "out.bin")        # atomic: no partial file on failure
        store.has(cid); store.pin(cid); store.size(cid)
    compute_cid(b"weights")                      # only hash, stores nothing

The CIDs are exactly those ``ipfs add`` (Kubo) prints for the same bytes: 256 KiB chunks, balanced
DAG with 174 links per node; CIDv1 (Merit's default) uses raw leaves, CIDv0 dag-pb leaves.

Errors (all :class:`backend.errors.StorageError`):

- :class:`MalformedCidError`: the CID string is not a CID Merit can fetch (raised before any I/O);
- :class:`BlockNotFoundError`: the backend lacks the content;
- :class:`backend.errors.IntegrityError`: bytes did not hash to their CID (corrupt block file, lying
  node); nothing unverified is ever returned;
- plain :class:`StorageError`: unreachable node, full disk, unreadable file.

Backends: :mod:`backend.storage.embedded` (a Kubo-flatfs-like directory, the default) and
:mod:`backend.storage.kubo` (Kubo RPC over HTTP). Format details: :mod:`backend.storage.unixfs`.
"""

from __future__ import annotations

import os

from backend.config import get_settings
from backend.errors import ConfigError, IntegrityError, StorageError
from backend.storage.cids import MalformedCidError, format_cid, parse_cid
from backend.storage.embedded import EmbeddedStore
from backend.storage.kubo import KuboStore
from backend.storage.store import DEFAULT_CID_VERSION, BlockNotFoundError, Store, compute_cid, is_cid_of

__all__ = [
    "open_store",
    "Store",
    "compute_cid",
    "is_cid_of",
    "parse_cid",
    "format_cid",
    "DEFAULT_CID_VERSION",
    "StorageError",
    "IntegrityError",
    "MalformedCidError",
    "BlockNotFoundError",
]


def open_store(spec: str | None = None, *, home: str | os.PathLike | None = None) -> Store:
    """The store named by ``spec``: ``"embedded"`` or a Kubo RPC URL such as ``http://127.0.0.1:5001``.

    ``spec`` defaults to ``settings.ipfs`` (``MERIT_IPFS``); the embedded store lives in
    ``home/ipfs`` (``home`` defaults to ``settings.home``, i.e. ``$MERIT_HOME``). Timeouts and
    retries of the Kubo backend come from ``settings.ipfs_timeout`` and ``settings.ipfs_retries``.
    """
    settings = get_settings()
    spec = (spec if spec is not None else settings.ipfs).strip()
    if spec == "embedded":
        return EmbeddedStore(os.path.join(home, "ipfs") if home is not None else settings.ipfs_dir)
    if spec.startswith(("http://", "https://")):
        return KuboStore(spec, timeout=settings.ipfs_timeout, retries=settings.ipfs_retries)
    raise ConfigError(
        f"unknown IPFS backend {spec!r}", "use 'embedded' or a Kubo RPC URL such as http://127.0.0.1:5001"
    )

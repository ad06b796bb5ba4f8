"""The storage interface both backends implement, and the verified read path they share.

A :class:`Store` adds files and returns CIDs, and gets them back as bytes or a stream. Backends
supply four block-level primitives (``_get_block``, ``has``, ``pin``, ``add_stream``); everything
else lives here once. Every block a backend returns passes :func:`verify_block` before any byte of
it reaches the caller, so a get either yields exactly the content its CID names or raises.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from backend.errors import IntegrityError, StorageError
from backend.files import atomic_output
from backend.storage.cids import BlockRef, format_cid, parse_cid
from backend.storage.unixfs import decode_node, export_file, import_file

DEFAULT_CID_VERSION = 1
_POOL_LOCK = threading.Lock()


class BlockNotFoundError(StorageError):
    """The backend does not have a block (the root or one below it)."""


def verify_block(cid: BlockRef, data: bytes, source: str) -> bytes:
    """Return ``data`` if it hashes to ``cid``; otherwise raise :class:`IntegrityError` naming ``source``."""
    actual = hashlib.sha256(data).digest()
    if actual != cid.digest:
        raise IntegrityError(
            f"{source} holds {len(data)} bytes for block {format_cid(cid)} that do not hash to "
            f"that CID (sha2-256 {actual.hex()[:16]}...); refusing them",
            "the stored copy is corrupt or the node is misbehaving: re-add the content or use another node",
        )
    return data


def compute_cid(data: bytes | bytearray | memoryview | BinaryIO, cid_version: int = DEFAULT_CID_VERSION) -> str:
    """The CID ``ipfs add --only-hash`` would print, storing nothing. Streams file objects."""
    check_cid_version(cid_version)
    reader = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return import_file(reader, cid_version, lambda cid, block: None).cid


def is_cid_of(data: bytes | bytearray | memoryview | BinaryIO, cid: str) -> bool:
    """Whether ``data`` hashes to ``cid``, imported the way that CID's version is (CIDv0 for
    ``Qm…``, else CIDv1 with raw leaves): the check for bytes someone else named."""
    return compute_cid(data, cid_version=0 if cid.startswith("Qm") else 1) == cid


def check_cid_version(cid_version: int) -> None:
    if cid_version not in (0, 1):
        raise StorageError(f"unsupported CID version {cid_version!r}", "use 0 or 1")


class Store(ABC):
    """Content-addressed file storage. CIDs are strings; all reads are verified."""

    name: str = "store"

    # -- adding ---------------------------------------------------------------------------------
    @abstractmethod
    def add_stream(self, reader: BinaryIO, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True) -> str:
        """Add the bytes read from ``reader`` until EOF; return the CID. Memory stays bounded."""

    def add_bytes(
        self, data: bytes | bytearray | memoryview, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True
    ) -> str:
        """Add ``data``; return its CID (the same for the same bytes and version, on any backend)."""
        return self.add_stream(io.BytesIO(bytes(data)), cid_version=cid_version, pin=pin)

    def add_path(self, path: str | os.PathLike, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True) -> str:
        """Add the regular file at ``path``; return its CID."""
        with open_input(path) as reader:
            return self.add_stream(reader, cid_version=cid_version, pin=pin)

    # -- reading --------------------------------------------------------------------------------
    def get_stream(self, cid: str, *, max_size: int | None = None) -> Iterator[bytes]:
        """The file's bytes in verified pieces of at most 256 KiB.

        Raises :class:`~backend.storage.cids.MalformedCidError` at once for a bad CID string. Missing
        or corrupt blocks raise :class:`BlockNotFoundError` / :class:`IntegrityError` when reached,
        so a consumer that must not keep partial output should write to a temporary file (as
        :meth:`get_to_path` does). ``max_size`` refuses files declaring or yielding more bytes.
        """
        root = parse_cid(cid)
        return self._stream(root, max_size)

    def _stream(self, root: BlockRef, max_size: int | None) -> Iterator[bytes]:
        if max_size is not None:
            declared = self._size(root)
            if declared > max_size:
                raise StorageError(f"CID {format_cid(root)} holds {declared} bytes, over the limit of {max_size}")
        seen = 0
        for piece in export_file(root, self._fetch):
            seen += len(piece)
            if max_size is not None and seen > max_size:
                raise StorageError(f"CID {format_cid(root)} yields more than the limit of {max_size} bytes")
            yield piece

    def get_bytes(self, cid: str, *, max_size: int | None = None) -> bytes:
        """The whole file in memory; pass ``max_size`` for anything a stranger chose."""
        return b"".join(self.get_stream(cid, max_size=max_size))

    def get_to_path(self, cid: str, path: str | os.PathLike, *, max_size: int | None = None) -> int:
        """Write the file to ``path`` through a temporary file, so a failed read leaves nothing behind."""
        target = Path(path)
        pieces = self.get_stream(cid, max_size=max_size)
        with atomic_output(target) as out:
            written = 0
            for piece in pieces:
                out.write(piece)
                written += len(piece)
        return written

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether this backend has the CID's root block locally (no network search)."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Keep the whole DAG under ``cid``; fails if any block is missing or corrupt."""

    def size(self, cid: str) -> int:
        """The file's size in bytes, from its (verified) root block."""
        return self._size(parse_cid(cid))

    def _size(self, root: BlockRef) -> int:
        (block,) = self._fetch([root])
        return decode_node(root, block)[2]

    # -- backend primitives ---------------------------------------------------------------------
    @abstractmethod
    def _get_block(self, cid: BlockRef) -> bytes:
        """Raw block bytes, verified with :func:`verify_block`; :class:`BlockNotFoundError` if absent."""

    fetch_workers = 4
    """Blocks read ahead in parallel; a read is latency-bound (disk or network), not CPU-bound."""

    def _fetch(self, cids: list[BlockRef]) -> Iterable[bytes]:
        if len(cids) == 1 or self.fetch_workers <= 1:
            return (self._get_block(cid) for cid in cids)
        return _read_ahead(self._pool(), self._get_block, cids, 2 * self.fetch_workers)

    def _pool(self) -> ThreadPoolExecutor:
        with _POOL_LOCK:  # stores are shared between threads (API server, aggregator)
            if getattr(self, "_executor", None) is None:
                self._executor = ThreadPoolExecutor(self.fetch_workers, thread_name_prefix=f"merit-{self.name}")
            return self._executor

    def close(self) -> None:
        """Release threads and connections; the store must not be used afterwards."""
        if getattr(self, "_executor", None) is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_ahead(
    pool: ThreadPoolExecutor, get: Callable[[BlockRef], bytes], cids: list[BlockRef], window: int
) -> Iterator[bytes]:
    """``get`` over ``cids`` in order, with at most ``window`` blocks fetched ahead of the consumer."""
    pending: deque[Future[bytes]] = deque()
    todo = iter(cids)
    try:
        for cid in islice(todo, window):
            pending.append(pool.submit(get, cid))
        while pending:
            block = pending.popleft().result()
            for cid in islice(todo, 1):
                pending.append(pool.submit(get, cid))
            yield block
    finally:
        for future in pending:  # the consumer stopped early or a block failed
            future.cancel()


def open_input(path: str | os.PathLike) -> BinaryIO:
    p = Path(path)
    if p.is_dir():
        raise StorageError(f"{p} is a directory", "Merit adds single files; add each file, or archive the folder first")
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise StorageError(f"no such file: {p}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {p}: {exc.strerror}") from None

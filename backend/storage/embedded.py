"""The embedded backend: a blockstore directory laid out like Kubo's flatfs.

Layout under the store directory (``$MERIT_HOME/ipfs`` by default)::

    blocks/SHARDING             "/repo/flatfs/shard/v1/next-to-last/2", as Kubo writes it
    blocks/<XY>/<KEY>.data      one block; KEY is the block's multihash in upper-case base32
                                (Kubo's key since 0.12); XY is the two characters before KEY's last
    pins/<CID>                  one empty file per pinned root

Blocks are keyed by multihash, as in Kubo, so the same bytes stored under a CIDv0 and a CIDv1 share
a file. A block is written to a temporary file and renamed into place, so a reader never sees a
partial block. There is no fsync per block (Kubo's flatfs does one; it would cap throughput on
small disks): a crash can leave a block truncated, and the next read of it names the file as
corrupt. An add that fails, a full disk included, removes the blocks it created, so it leaves no
trace. Re-adding content repairs a corrupt block.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from backend.errors import StorageError
from backend.files import disk_error
from backend.storage.cids import BlockRef, cid_prefix, format_cid, multihash_key, parse_cid
from backend.storage.store import (
    DEFAULT_CID_VERSION,
    BlockNotFoundError,
    Store,
    check_cid_version,
    verify_block,
)
from backend.storage.unixfs import import_file

SHARDING = "/repo/flatfs/shard/v1/next-to-last/2\n"
_MH_HEAD = cid_prefix(1, "raw").mh_head  # the sha2-256 multihash header; every Merit CID uses it


class EmbeddedStore(Store):
    name = "embedded"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.blocks = self.root / "blocks"
        self.pins = self.root / "pins"
        try:
            self.blocks.mkdir(parents=True, exist_ok=True)
            self.pins.mkdir(exist_ok=True)
            sharding = self.blocks / "SHARDING"
            if not sharding.exists():
                sharding.write_text(SHARDING)
        except OSError as exc:
            raise disk_error(exc, self.root) from None
        if (self.blocks / "SHARDING").read_text() != SHARDING:
            raise StorageError(
                f"{self.blocks} is sharded differently from what Merit writes", "point MERIT_HOME at a fresh directory"
            )
        self._shards: set[str] = set()
        self._tmp_tag = f"{os.getpid()}"
        self._claims = _Claims()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------
    def _path_for_key(self, key: str) -> Path:
        return self.blocks / key[-3:-1] / f"{key}.data"

    def block_path(self, cid: str | BlockRef) -> Path:
        """Where the block of ``cid`` lives (whether or not it is there)."""
        return self._path_for_key(multihash_key(parse_cid(cid) if isinstance(cid, str) else cid))

    # -- writing --------------------------------------------------------------------------------
    fetch_workers = 8
    """Threads for reading ahead and for writing blocks behind the importer: creating a file costs
    a metadata round trip, which threads overlap. Shared by all reads and adds of this store."""

    def add_stream(self, reader: BinaryIO, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True) -> str:
        check_cid_version(cid_version)
        created: list[tuple[str, Path]] = []
        touched: set[str] = set()
        token = self._claims.begin()
        writer = _WriteBehind(
            lambda cid, block: self._put(cid, block, created, token, touched), self._pool(), self.fetch_workers
        )
        try:
            cid = import_file(reader, cid_version, writer.put).cid
            writer.finish()
            if pin:
                self._record_pin(cid)
        except BaseException:
            writer.abort()
            self._claims.end(token, touched, created, ok=False)  # leave no trace of a failed add
            raise
        self._claims.end(token, touched, created, ok=True)
        return cid

    def _put(
        self, cid: bytes, block: bytes, created: list[tuple[str, Path]], token: int = 0, touched: set[str] | None = None
    ) -> None:
        """Store one block; ``token``/``touched``: the add it belongs to (0: a lone block)."""
        key = base64.b32encode(_MH_HEAD + cid[-32:]).decode("ascii").rstrip("=")
        if token:
            self._claims.touch(token, key)  # before looking: a failing add must not delete what this one relies on
            touched.add(key)
        shard = key[-3:-1]
        path = self.blocks / shard / f"{key}.data"
        if shard not in self._shards:
            try:
                (self.blocks / shard).mkdir(exist_ok=True)
            except OSError as exc:
                raise disk_error(exc, self.blocks / shard) from None
            self._shards.add(shard)
        existed = False
        try:
            with open(path, "rb") as existing:
                if _intact(cid, existing.read()):
                    return  # already stored and intact
            existed = True  # corrupt: overwrite it
        except FileNotFoundError:
            pass
        tmp = path.with_name(f".{key}.{self._tmp_tag}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, block)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise disk_error(exc, path) from None
        if not existed:
            created.append((key, path))

    def _record_pin(self, cid: str) -> None:
        try:
            (self.pins / cid).touch()
        except OSError as exc:
            raise disk_error(exc, self.pins / cid) from None

    # -- reading --------------------------------------------------------------------------------
    def _get_block(self, cid: BlockRef) -> bytes:
        path = self._path_for_key(multihash_key(cid))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise BlockNotFoundError(
                f"CID {format_cid(cid)} is not in the embedded store at {self.root}",
                "add it with `merit ipfs add`, or point --ipfs at a node that has it",
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read block file {path}: {exc.strerror}") from None
        return verify_block(cid, data, f"block file {path}")

    def has(self, cid: str) -> bool:
        return self.block_path(cid).exists()

    def pin(self, cid: str) -> None:
        root = parse_cid(cid)
        for _ in self._stream(root, None):  # every block present and intact
            pass
        self._record_pin(format_cid(root))

    def pinned(self) -> list[str]:
        """CIDs pinned in this store."""
        return sorted(p.name for p in self.pins.iterdir() if not p.name.startswith("."))


class _Claims:
    """Which adds rely on which blocks, so that a failed add removes only the blocks it created that
    no other add relies on: not those another add in flight has looked up, nor those an add that
    finished meanwhile (and may have pinned) uses. Without this, two adds sharing content could
    lose a block when one of them fails."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, set[int]] = {}
        self._kept: set[str] = set()
        self._active = 0
        self._next = 0

    def begin(self) -> int:
        with self._lock:
            self._active += 1
            self._next += 1
            return self._next

    def touch(self, token: int, key: str) -> None:
        with self._lock:
            self._users.setdefault(key, set()).add(token)

    def end(self, token: int, touched: set[str], created: list[tuple[str, Path]], ok: bool) -> None:
        with self._lock:
            for key in touched:
                users = self._users.get(key)
                if users is not None:
                    users.discard(token)
                    if not users:
                        del self._users[key]
            if ok and self._active > 1:
                self._kept |= touched
            if not ok:
                for key, path in created:
                    if key not in self._kept and key not in self._users:
                        path.unlink(missing_ok=True)
            self._active -= 1
            if self._active == 0:
                self._kept.clear()


def _store_closed() -> StorageError:
    return StorageError("the store was closed while adding", "retry the add")


class _WriteBehind:
    """Run ``write(cid, block)`` on a shared pool's threads, at most ``2 * workers`` blocks of this add
    in flight, which bounds memory and lets :meth:`finish` wait for exactly this add's blocks. A block
    leaves the count when its task ends or is cancelled (the store closing), so no wait outlives the
    pool. The first failure is raised from the next :meth:`put` or from :meth:`finish`."""

    def __init__(self, write: Callable[[bytes, bytes], None], pool: ThreadPoolExecutor, workers: int):
        self._write = write
        self._pool = pool
        self._limit = 2 * workers
        self._pending = 0
        self._done = threading.Condition()
        self._error: BaseException | None = None
        self._aborted = False

    def put(self, cid: bytes, block: bytes) -> None:
        with self._done:
            while self._pending >= self._limit and self._error is None:
                self._done.wait()
            if self._error is not None:
                raise self._error
            self._pending += 1
        try:
            future = self._pool.submit(self._run, cid, block)
        except RuntimeError:  # the pool is shut down: the store was closed under this add
            self._settle(None)
            raise _store_closed() from None
        future.add_done_callback(self._settle)

    def _run(self, cid: bytes, block: bytes) -> None:
        if self._error is None and not self._aborted:
            self._write(cid, block)

    def _settle(self, future) -> None:
        error = None
        if future is not None:
            error = _store_closed() if future.cancelled() else future.exception()
        with self._done:
            self._pending -= 1
            if error is not None and self._error is None:
                self._error = error
            self._done.notify_all()

    def _drain(self) -> None:
        with self._done:
            while self._pending:
                self._done.wait()

    def finish(self) -> None:
        self._drain()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Skip the blocks not yet written and wait for those being written (the caller then
        removes every block this add created)."""
        self._aborted = True
        self._drain()


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]


def _intact(cid: bytes, data: bytes) -> bool:
    return hashlib.sha256(data).digest() == cid[-32:]

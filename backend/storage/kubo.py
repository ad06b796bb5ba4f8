"""The Kubo RPC backend: a real IPFS node (Kubo, or anything speaking its RPC API) over HTTP.

Calls: ``/api/v0/version`` (once, to check the node is Kubo), ``/api/v0/add`` (multipart upload),
``/api/v0/block/get`` (reads), ``/api/v0/block/stat`` (``has``) and ``/api/v0/pin/add``. Every call
is a POST, as Kubo requires, with the configured timeout; connection failures and 502/503/504 are
retried with exponential backoff. ``ipfshttpclient`` is not used: it refuses every Kubo after 0.8.

Nothing the node says is trusted:

- add: the CID is computed locally first and compared with the one the node returns;
- get: the file is read one block at a time with ``block/get`` and every block is hashed against the
  CID that names it before any of its bytes are returned (several blocks are fetched in parallel).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

import httpx

from backend import safe_json
from backend.errors import IntegrityError, StorageError
from backend.files import disk_error
from backend.retry import RetryPolicy, retry_call
from backend.storage.cids import BlockRef, format_cid, parse_cid
from backend.storage.store import (
    DEFAULT_CID_VERSION,
    BlockNotFoundError,
    Store,
    check_cid_version,
    open_input,
    verify_block,
)
from backend.storage.unixfs import CHUNK_SIZE, import_file

MAX_BLOCK = 2 * 1024 * 1024  # Kubo refuses blocks over 2 MiB (bitswap's limit); so do we
_RETRY_STATUS = {502, 503, 504}
_HINT_UNREACHABLE = (
    "start it with `ipfs daemon`, check --ipfs / MERIT_IPFS (e.g. http://127.0.0.1:5001), or use --ipfs embedded"
)


class _GatewayStatus(StorageError):
    """A gateway status (502/503/504): the node is restarting or overloaded, so the call is retried."""


class KuboStore(Store):
    name = "kubo"
    fetch_workers = 8

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 0.25):
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(base_url=f"{self.url}/api/v0", timeout=httpx.Timeout(timeout))
        self._version: str | None = None

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    # -- transport ------------------------------------------------------------------------------
    def _post(
        self,
        command: str,
        params: dict[str, str] | None = None,
        *,
        rewind: BinaryIO | None = None,
        limit: int | None = None,
        **kwargs: object,
    ) -> bytes:
        """One RPC call's body, retried on transport errors and gateway statuses; StorageError otherwise.

        ``limit`` caps the body: a node that sends more is refused without reading the rest.
        """

        def attempt() -> bytes:
            request = self._client.build_request("POST", f"/{command}", params=params, **kwargs)
            response = self._client.send(request, stream=True)
            try:
                if response.status_code in _RETRY_STATUS:
                    raise _GatewayStatus(f"HTTP {response.status_code}")
                if response.status_code != 200:
                    raise self._refusal(command, response)
                return self._read_body(command, response, limit)
            finally:
                response.close()

        def give_up(last: BaseException, attempts: int) -> StorageError:
            if isinstance(last, httpx.TimeoutException):
                return StorageError(
                    f"the Kubo node at {self.url} did not answer {command} within the timeout ({attempts} tries)",
                    "raise MERIT_IPFS_TIMEOUT, or check the node",
                )
            return StorageError(f"cannot reach the Kubo RPC API at {self.url} ({last})", _HINT_UNREACHABLE)

        def rewind_body(_exc: BaseException, _delay: float) -> None:
            if rewind is not None:  # the failed try consumed the upload's file
                rewind.seek(0)

        return retry_call(
            attempt,
            RetryPolicy(retries=self.retries, base_delay=self.backoff),
            transient=lambda exc: isinstance(exc, (httpx.TransportError, _GatewayStatus)),
            give_up=give_up,
            before_retry=rewind_body,
        )

    def _read_body(self, command: str, response: httpx.Response, limit: int | None) -> bytes:
        if limit is None:
            return response.read()
        body, complete = _read_capped(response, limit)
        if not complete:
            raise IntegrityError(f"Kubo at {self.url} sent more than {limit} bytes for {command}; refusing it")
        return body

    def _refusal(self, command: str, response: httpx.Response) -> StorageError:
        """Kubo's error body is ``{"Message": ..., "Code": 0, "Type": "error"}``; read at most 64 KiB of it."""
        text = _read_capped(response, 65536)[0].decode("utf-8", "replace")
        try:
            message = str(safe_json.loads(text, what="Kubo's error").get("Message") or text)
        except (ValueError, AttributeError):
            message = text[:200].strip()
        cls = BlockNotFoundError if "not found" in message.lower() else StorageError
        return cls(f"Kubo at {self.url} refused {command}: {message} (HTTP {response.status_code})")

    def version(self) -> str:
        """The node's Kubo version; also proves the URL is a Kubo RPC API."""
        if self._version is None:
            body = self._post("version", limit=1 << 20)
            try:
                self._version = str(safe_json.loads(body, what="Kubo's version")["Version"])
            except (ValueError, KeyError, TypeError):
                raise StorageError(
                    f"{self.url} answered /api/v0/version, but not as Kubo does",
                    "point --ipfs at a Kubo RPC API (port 5001 by default)",
                ) from None
        return self._version

    # -- adding ---------------------------------------------------------------------------------
    def add_stream(self, reader: BinaryIO, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True) -> str:
        """Spool ``reader`` to a temporary file while computing its CID, then upload that file."""
        check_cid_version(cid_version)
        with tempfile.TemporaryFile(prefix="merit-kubo-add-") as spool:
            tee = _Tee(reader, spool)
            expected = import_file(tee, cid_version, lambda cid, block: None).cid
            spool.seek(0)
            return self._upload(spool, expected, cid_version, pin)

    def add_path(self, path: str | Path, *, cid_version: int = DEFAULT_CID_VERSION, pin: bool = True) -> str:
        check_cid_version(cid_version)
        with open_input(path) as reader:
            expected = import_file(reader, cid_version, lambda cid, block: None).cid
            reader.seek(0)
            return self._upload(reader, expected, cid_version, pin)

    def _upload(self, reader: BinaryIO, expected: str, cid_version: int, pin: bool) -> str:
        self.version()
        params = {
            "cid-version": str(cid_version),
            "raw-leaves": "true" if cid_version == 1 else "false",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "progress": "false",
            "trickle": "false",
            "wrap-with-directory": "false",
        }
        body = self._post(
            "add", params, rewind=reader, limit=1 << 20, files={"file": ("file", reader, "application/octet-stream")}
        )
        added = None
        for line in body.decode("utf-8", "replace").splitlines():
            try:
                entry = safe_json.loads(line, what="Kubo's add answer")
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("Hash"):
                added = entry["Hash"]
        if added is None:
            raise StorageError(f"Kubo at {self.url} answered add without a CID")
        if format_cid(parse_cid(added)) != expected:
            raise IntegrityError(
                f"Kubo at {self.url} stored the content as {added}, but it hashes to {expected}",
                "the node may use other import settings; Merit asks for 256 KiB chunks, "
                "balanced layout, raw leaves with CIDv1",
            )
        return expected

    # -- reading --------------------------------------------------------------------------------
    def _get_block(self, cid: BlockRef) -> bytes:
        self.version()
        block = self._post("block/get", {"arg": format_cid(cid)}, limit=MAX_BLOCK)
        return verify_block(cid, block, f"Kubo at {self.url}")

    def has(self, cid: str) -> bool:
        root = parse_cid(cid)
        self.version()
        try:
            self._post("block/stat", {"arg": format_cid(root), "offline": "true"}, limit=1 << 20)
        except BlockNotFoundError:
            return False
        return True

    def pin(self, cid: str) -> None:
        root = parse_cid(cid)
        self.version()
        self._post("pin/add", {"arg": format_cid(root), "recursive": "true", "progress": "false"}, limit=1 << 20)

    def close(self) -> None:
        super().close()
        self._client.close()


def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether that was all of it."""
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


class _Tee:
    """A reader that copies what it reads into ``sink``."""

    def __init__(self, source: BinaryIO, sink: BinaryIO):
        self.source, self.sink = source, sink

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            try:
                self.sink.write(data)
            except OSError as exc:
                raise disk_error(exc, "a temporary file") from None
        return data

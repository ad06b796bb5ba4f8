"""A loopback HTTP server that answers the Kubo RPC calls Merit makes, as Kubo's RPC reference
(https://docs.ipfs.tech/reference/kubo/rpc/) specifies them:

- every command is ``POST /api/v0/<command>``; other methods get 405;
- arguments are query parameters (``arg=<cid>``, ``cid-version=1``, ``raw-leaves=true``, ...);
- ``add`` takes ``multipart/form-data`` and answers one JSON object per line (``Name``, ``Hash``, ``Size``);
- ``cat`` streams the bytes with chunked transfer encoding and ``X-Stream-Output: 1``;
- ``block/get`` answers the raw block, ``block/stat`` ``{"Key", "Size"}``, ``pin/add`` ``{"Pins": [...]}``,
  ``version`` ``{"Version", "Commit", "Repo", "System", "Golang"}``;
- errors are HTTP 500 with ``{"Message", "Code": 0, "Type": "error"}``.

Blocks live in a dict. Knobs let tests make it misbehave: ``tamper`` (CIDs whose ``block/get``
bytes are altered), ``lie_on_add``, ``fail_next`` (answer 503 that many times), ``delay``.
The importer is Merit's own; the CIDs themselves are checked against real Kubo elsewhere.
"""

from __future__ import annotations

import io
import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from backend.storage.cids import format_cid, parse_cid
from backend.storage.unixfs import CHUNK_SIZE, decode_node, import_file


class FakeKubo:
    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}  # multihash digest -> block
        self.pins: set[str] = set()
        self.tamper: set[str] = set()
        self.lie_on_add = False
        self.fail_next = 0
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.uploads: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that gave up (timeout tests)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FakeKubo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- storage ---------------------------------------------------------------------------------
    def block(self, cid: str) -> bytes | None:
        return self.blocks.get(parse_cid(cid).digest)

    def walk(self, cid: str):
        parsed = parse_cid(cid)
        block = self.block(cid)
        if block is None:
            raise KeyError(cid)
        children, data, _ = decode_node(parsed, block)
        if data:
            yield data
        for child in children:
            yield from self.walk(format_cid(child))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._reply(405, b"405 - Method Not Allowed", "text/plain")

            def do_POST(self) -> None:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                fake.requests.append(("POST", url.path, params))
                body = self._body()
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    return self._reply(503, b"busy", "text/plain")
                command = url.path.removeprefix("/api/v0/")
                handler = getattr(self, "cmd_" + command.replace("/", "_"), None)
                if not url.path.startswith("/api/v0/") or handler is None:
                    return self._reply(404, b"404 page not found", "text/plain")
                try:
                    handler(params, body)
                except KeyError as exc:
                    self._error(f"block was not found locally (offline): ipld: could not find {exc.args[0]}")
                except ValueError as exc:
                    self._error(str(exc))

            # -- commands ---------------------------------------------------------------------
            def cmd_version(self, params, body):
                self._json(
                    {"Version": "0.39.0", "Commit": "", "Repo": "16", "System": "amd64/linux", "Golang": "go1.25.4"}
                )

            def cmd_add(self, params, body):
                ctype = self.headers.get("Content-Type", "")
                if not ctype.startswith("multipart/form-data"):
                    raise ValueError("file argument 'path' is required")
                message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
                version = int(params.get("cid-version", ["0"])[0])
                raw = params.get("raw-leaves", ["true" if version == 1 else "false"])[0] == "true"
                chunker = params.get("chunker", [f"size-{CHUNK_SIZE}"])[0]
                if chunker != f"size-{CHUNK_SIZE}" or raw != (version == 1):
                    raise ValueError("this test node only imports with Kubo's defaults")
                lines = []
                for part in message.iter_parts():
                    name = part.get_filename() or part.get_param("name", header="content-disposition")
                    fake.uploads.append({"name": name, "type": part.get_content_type()})
                    content = part.get_payload(decode=True) or b""
                    result = import_file(io.BytesIO(content), version, self._store)
                    cid = result.cid
                    if fake.lie_on_add:
                        cid = import_file(io.BytesIO(content + b"!"), version, lambda c, b: None).cid
                    if params.get("pin", ["true"])[0] == "true":
                        fake.pins.add(cid)
                    lines.append(json.dumps({"Name": name, "Hash": cid, "Size": str(len(content))}))
                self._reply(200, ("\n".join(lines) + "\n").encode(), "application/json")

            def cmd_cat(self, params, body):
                pieces = fake.walk(params["arg"][0])
                first = next(pieces, b"")  # fail before the headers go out if the root is missing
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("X-Stream-Output", "1")
                self.end_headers()
                for piece in [first, *pieces]:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")

            def cmd_block_get(self, params, body):
                cid = params["arg"][0]
                block = fake.block(cid)
                if block is None:
                    raise KeyError(cid)
                if format_cid(parse_cid(cid)) in fake.tamper:
                    block = bytes([block[0] ^ 1]) + block[1:]
                self._reply(200, block, "text/plain")

            def cmd_block_stat(self, params, body):
                cid = params["arg"][0]
                block = fake.block(cid)
                if block is None:
                    raise KeyError(cid)
                self._json({"Key": cid, "Size": len(block)})

            def cmd_pin_add(self, params, body):
                cid = params["arg"][0]
                for _ in fake.walk(cid):
                    pass
                fake.pins.add(cid)
                self._json({"Pins": [cid]})

            # -- plumbing ---------------------------------------------------------------------
            def _store(self, cid: bytes, block: bytes) -> None:
                fake.blocks[cid[-32:]] = block

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _json(self, value: object) -> None:
                self._reply(200, json.dumps(value).encode() + b"\n", "application/json")

            def _error(self, message: str) -> None:
                self._reply(
                    500, json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode(), "application/json"
                )

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

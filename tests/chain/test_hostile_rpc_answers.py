"""A JSON-RPC endpoint that is broken or hostile gets a ChainError that names it, never a traceback
of web3's internals and never a hang: garbage, HTML, wrong types, a chain id that is no chain id, odd
reverts, an answer that never ends or that arrives one byte a second."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.chain.client import MarketClient
from backend.chain.connection import rpc_chain
from backend.errors import ChainError
from backend.limits import RPC_MAX_RESPONSE_BYTES

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def answer(result) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 0, "result": result}).encode()


class HostileNode(BaseHTTPRequestHandler):
    """Answers eth_chainId and eth_getCode sanely unless the mode lies about them; lies about the rest."""

    protocol_version = "HTTP/1.1"
    mode = "html"

    def log_message(self, *args):
        pass

    def send(self, body: bytes, status: int = 200, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (http.server's name)
        method = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["method"]
        mode = self.mode
        if mode == "html":
            return self.send(b"<html><body>502 Bad Gateway</body></html>", ctype="text/html")
        if mode == "binary":
            return self.send(bytes(range(256)))
        if mode == "close":
            self.close_connection = True
            return self.connection.shutdown(socket.SHUT_RDWR)
        if mode == "endless":  # declares 3 GB and keeps sending
            self.send_response(200)
            self.send_header("Content-Length", str(3 << 30))
            self.end_headers()
            chunk = b" " * (1 << 20)
            try:
                for _ in range(3 << 10):
                    self.wfile.write(chunk)
            except OSError:
                return
        if mode == "trickle":  # one byte a second: each read is within any per-read timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                return
        chain_ids = {"chainid-object": {"a": [1]}, "chainid-null": None, "chainid-huge": "0x" + "f" * 100_000}
        if method == "eth_chainId":
            return self.send(answer(chain_ids.get(mode, "0x7a69")))
        if method == "eth_getCode":
            return self.send(answer("0x6080"))
        if mode == "call-object":
            return self.send(answer({"a": 1}))
        if mode == "call-huge":
            return self.send(answer("0x" + "ff" * 50_000))
        if mode == "revert-unknown-panic":  # a Panic selector with no code: web3 raises KeyError on it
            error = {"code": 3, "message": "execution reverted", "data": "0x4e487b71"}
            return self.send(json.dumps({"jsonrpc": "2.0", "id": 0, "error": error}).encode())
        if mode == "revert-not-hex":
            error = {"code": 3, "message": "execution reverted", "data": "0xzz" * 10}
            return self.send(json.dumps({"jsonrpc": "2.0", "id": 0, "error": error}).encode())
        return self.send(answer("0x"))


@pytest.fixture
def hostile_node():
    servers = []

    def start(mode: str) -> str:
        handler = type("Node", (HostileNode,), {"mode": mode})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def outcome(fn, limit: float = 60.0) -> BaseException | None:
    """Run ``fn`` in a thread; what it raised. A call still running after ``limit`` seconds is a hang."""
    box: list = []

    def target():
        try:
            fn()
            box.append(None)
        except BaseException as exc:  # noqa: BLE001  the test inspects whatever came out
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting on the endpoint after {limit:.0f}s"
    return box[0]


CONNECT = {
    "html": "not JSON-RPC",
    "binary": "not JSON-RPC",
    "close": "cannot reach",
    "endless": f"more than {RPC_MAX_RESPONSE_BYTES >> 20} MiB",
    "trickle": "did not finish its answer within 2s",
    "chainid-object": "as its chain id",
    "chainid-null": "None as its chain id",
    "chainid-huge": "an integer of 400000 bits as its chain id",
}


@pytest.mark.parametrize("mode", sorted(CONNECT))
def test_connecting_to_a_hostile_node_fails_by_name(hostile_node, mode):
    url = hostile_node(mode)
    error = outcome(lambda: rpc_chain(url, timeout=2))
    assert isinstance(error, ChainError), repr(error)
    assert url in str(error) and CONNECT[mode] in str(error), str(error)
    assert len(str(error)) < 400


CALLS = {
    "call-object": "TypeError",
    "call-huge": "more characters",
    "revert-unknown-panic": "KeyError",
    "revert-not-hex": "projectCount",
}


@pytest.mark.parametrize("mode", sorted(CALLS))
def test_a_call_the_node_answers_with_garbage_fails_by_name(hostile_node, mode):
    url = hostile_node(mode)
    market = MarketClient(rpc_chain(url, timeout=5), MARKET, None, retries=0)

    def read():
        count = market.project_count()
        market.project(1 if count else 0)

    error = outcome(read)
    assert isinstance(error, ChainError) or type(error).__name__ == "ContractRevert", repr(error)
    assert len(str(error)) < 600, str(error)[:600]
    assert CALLS[mode] in str(error), str(error)
    if isinstance(error, ChainError):
        assert url in str(error)

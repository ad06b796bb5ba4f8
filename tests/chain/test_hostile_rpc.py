"""A JSON-RPC endpoint that answers with hostile JSON gets a clear error, not a crash."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.chain.connection import rpc_chain
from backend.errors import ChainError


class DeepAnswer(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"jsonrpc":"2.0","id":0,"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_deeply_nested_rpc_answer_is_refused_by_name():
    import aggregator.node  # noqa: F401  the recursion limit the node runs with

    server = ThreadingHTTPServer(("127.0.0.1", 0), DeepAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ChainError, match="100001 levels deep"):
            rpc_chain(f"http://127.0.0.1:{server.server_port}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()

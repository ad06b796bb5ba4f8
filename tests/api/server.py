"""Run an ASGI app under a real uvicorn server on a loopback port, in a background thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from backend.api.server import uvicorn_config


@contextmanager
def serve(app, host: str = "127.0.0.1"):
    """Yield the base URL of a uvicorn server running ``app`` as `merit api serve` configures it
    (header timeout, connection limit); stop it on exit."""
    config = uvicorn_config(app, app.state.merit.settings, host=host, port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)

"""`merit api serve` with no configuration: the embedded chain and store, answering at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_on_the_embedded_chain(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERIT_")}
    env["MERIT_HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli.main", "api", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "merit api serve did not answer"
                time.sleep(0.2)
        assert health.status_code == 200
        body = health.json()
        assert body == {
            "status": "ok",
            "version": body["version"],
            "chain": "embedded",
            "projects": 0,
            "chain_id": body["chain_id"],
            "market": body["market"],
        }
        assert isinstance(body["chain_id"], int) and body["market"].startswith("0x")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/projects").json() == {
            "projects": [],
            "total": 0,
            "offset": 0,
            "next_offset": None,
        }
        assert httpx.get(f"http://127.0.0.1:{port}/v1/projects/1").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_on_every_interface_needs_an_origin(tmp_path):
    """Signatures name the server's origin: listening on 0.0.0.0, the server cannot guess it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERIT_")}
    env["MERIT_HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "api", "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "--origin" in out.stderr and "Traceback" not in out.stderr + out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "api", "serve", "--origin", "ftp://x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "MERIT_API_ORIGIN" in bad.stderr and "Traceback" not in bad.stderr

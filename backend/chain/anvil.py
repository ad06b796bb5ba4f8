"""Anvil, the development node, started from the project's npm dependencies (``@foundry-rs/anvil``)."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from backend.chain.connection import DEV_ACCOUNTS, DEV_MNEMONIC, wait_for_rpc
from backend.errors import ChainError

ROOT = Path(__file__).resolve().parents[2]


def anvil_binary() -> Path:
    path = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise ChainError(f"Anvil is not installed at {path}", f"run `npm ci` in {ROOT} (or `make setup`)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def anvil_command(port: int, state: Path | None = None, host: str = "127.0.0.1", block_time: float | None = None) -> list[str]:
    cmd = [str(anvil_binary()), "--host", host, "--port", str(port), "--mnemonic", DEV_MNEMONIC,
           "--accounts", str(DEV_ACCOUNTS), "--balance", "1000000", "--hardfork", "cancun", "--silent"]
    if state is not None:
        cmd += ["--state", str(state)]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    return cmd


class AnvilProcess:
    """A context manager that runs Anvil on a port (a free one by default) and stops it afterwards."""

    def __init__(self, port: int | None = None, state: Path | None = None, host: str = "127.0.0.1",
                 block_time: float | None = None):
        self.port = port or free_port()
        self.host = host
        self.state = state
        self.block_time = block_time
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "AnvilProcess":
        self.proc = subprocess.Popen(anvil_command(self.port, self.state, self.host, self.block_time), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            wait_for_rpc(self.url, timeout=30)
        except ChainError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM lets Anvil write --state
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "AnvilProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

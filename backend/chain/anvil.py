"""Development nodes started from the project's npm dependencies: Anvil (``@foundry-rs/anvil``,
Cancun, the default) and Ganache (``ganache`` 7.9.2, which stops at Shanghai and so runs Merit's
Shanghai build). Both get the same funded dev accounts (the test mnemonic) and persist their state."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from backend.chain.connection import DEV_ACCOUNTS, DEV_MNEMONIC, wait_for_rpc
from backend.errors import ChainError

ROOT = Path(__file__).resolve().parents[2]


def anvil_binary() -> Path:
    path = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise ChainError(f"Anvil is not installed at {path}", f"run `npm ci` in {ROOT} (or `make setup`)")
    return path


ENGINES = ("anvil", "ganache")


def ganache_binary() -> Path:
    path = ROOT / "node_modules" / ".bin" / "ganache"
    if not path.exists():
        raise ChainError(f"Ganache is not installed at {path}", f"run `npm ci` in {ROOT} (or `make setup`)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def anvil_command(
    port: int,
    state: Path | None = None,
    host: str = "127.0.0.1",
    block_time: float | None = None,
    hardfork: str = "cancun",
) -> list[str]:
    cmd = [
        str(anvil_binary()),
        "--host",
        host,
        "--port",
        str(port),
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(DEV_ACCOUNTS),
        "--balance",
        "1000000",
        "--hardfork",
        hardfork,
        "--silent",
    ]
    if state is not None:
        cmd += ["--state", str(state)]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    return cmd


def ganache_command(
    port: int,
    state: Path | None = None,
    host: str = "127.0.0.1",
    block_time: float | None = None,
    hardfork: str = "shanghai",
) -> list[str]:
    """Ganache with Anvil's accounts and balances; ``state`` is a directory (its database)."""
    cmd = [
        str(ganache_binary()),
        "--server.host",
        host,
        "--server.port",
        str(port),
        "--wallet.mnemonic",
        DEV_MNEMONIC,
        "--wallet.totalAccounts",
        str(DEV_ACCOUNTS),
        "--wallet.defaultBalance",
        "1000000",
        "--chain.hardfork",
        hardfork,
        "--logging.quiet",
    ]
    if state is not None:
        cmd += ["--database.dbPath", str(state)]
    if block_time:
        cmd += ["--miner.blockTime", str(block_time)]
    return cmd


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that asks for SIGTERM when the parent dies, so Anvil saves its
    state and exits even if Merit is killed outright. ``prctl`` is looked up here, in the parent: the
    child between fork and exec must not load libraries. Linux sends the signal when the *thread*
    that started Anvil ends, so start Anvil from a thread that lives as long as it should."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # deferred: prctl exists on Linux only, checked just above

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class DevNodeProcess:
    """A context manager that runs a development node on a port (a free one by default) and stops it
    afterwards. ``engine`` is "anvil" or "ganache"; ``hardfork`` defaults to the newest it runs."""

    engine = "anvil"

    def __init__(
        self,
        port: int | None = None,
        state: Path | None = None,
        host: str = "127.0.0.1",
        block_time: float | None = None,
        hardfork: str | None = None,
    ):
        self.port = port or free_port()
        self.host = host
        self.state = state
        self.block_time = block_time
        self.hardfork = hardfork or ("cancun" if self.engine == "anvil" else "shanghai")
        self.proc: subprocess.Popen | None = None
        self.name = self.engine.capitalize()

    def command(self) -> list[str]:
        build = anvil_command if self.engine == "anvil" else ganache_command
        return build(self.port, self.state, self.host, self.block_time, self.hardfork)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "DevNodeProcess":
        with tempfile.TemporaryFile() as log:  # the node's stderr: read back only to explain a failed start
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, stderr=log, preexec_fn=_parent_death_signal()
            )
            try:
                wait_for_rpc(self.url, timeout=30, alive=lambda: self.proc is not None and self.proc.poll() is None)
            except ChainError:
                code = self.proc.poll()
                self.stop()
                if code is None:
                    raise
                log.seek(0)
                said = " ".join(log.read()[-400:].decode(errors="replace").split())
                raise ChainError(
                    f"{self.name} exited with code {code} while starting on {self.url}: {said or 'no message'}",
                    "is the port already in use? pick another with --port",
                ) from None
        if self.proc.poll() is not None:  # what answered was another node on that port
            code = self.proc.returncode
            self.proc = None
            raise ChainError(
                f"{self.name} exited with code {code} while starting, but something else answers on {self.url}",
                "another node holds that port; pick another with --port",
            )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM lets the node save its state
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "DevNodeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AnvilProcess(DevNodeProcess):
    engine = "anvil"


class GanacheProcess(DevNodeProcess):
    engine = "ganache"


def dev_node(engine: str, **kwargs) -> DevNodeProcess:
    """A development node of ``engine`` ("anvil" or "ganache"), not yet started."""
    if engine not in ENGINES:
        raise ChainError(f"unknown chain engine {engine!r}", f"use one of: {', '.join(ENGINES)}")
    return (AnvilProcess if engine == "anvil" else GanacheProcess)(**kwargs)

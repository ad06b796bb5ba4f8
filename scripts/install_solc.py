"""Make solc SOLC_VERSION available to py-solc-x, forge and eth-brownie, offline if need be.

Order of preference:
1. a native compiler py-solc-x already has (installed earlier, or by hand);
2. ``solcx.install_solc`` (downloads a native build where the Solidity binaries site is reachable);
3. a small wrapper around npm's ``solc`` (solcjs, the official WebAssembly build of the same
   compiler), installed where py-solc-x looks for native builds: ``~/.solcx/solc-v<version>``.

The wrapper answers ``--version`` like native solc and forwards ``--standard-json`` to solcjs,
dropping the line solcjs prints before the JSON. Other flags are ignored. Imports missing from the
standard JSON are read from files relative to the working directory (forge and py-solc-x pass
every source; eth-brownie passes paths under node_modules through its remappings).

Usable as ``python scripts/install_solc.py`` and under ``brownie run``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

SOLC_VERSION = "0.8.37"
SOLC_LONG_VERSION = "0.8.37+commit.f401782d"
MARKER = "# merit solcjs wrapper"
ROOT = Path(__file__).resolve().parent.parent

WRAPPER = """#!/usr/bin/env bash
{marker}
# Forwards --standard-json to solcjs {version}; see scripts/install_solc.py in Merit.
set -euo pipefail
SOLCJS={solcjs}
NODE={node}
mode=""
for arg in "$@"; do
  case "$arg" in
    --version|-v) mode=version ;;
    --standard-json) mode=json ;;
  esac
done
case "$mode" in
  version)
    echo "solc, the solidity compiler commandline interface"
    echo "Version: {long_version}.Linux.g++"
    ;;
  json)
    # solcjs exits before a pipe is drained (output cut at 64 KiB); a file is written synchronously.
    # Its stdin read fails with EAGAIN on a non-blocking pipe, so it reads a file too.
    in=$(mktemp)
    out=$(mktemp)
    trap 'rm -f "$in" "$out"' EXIT
    cat > "$in"
    # --base-path gives solcjs a file import callback, rooted at the caller's directory, for
    # callers (eth-brownie) that leave imported files out of the standard JSON.
    "$NODE" "$SOLCJS" --standard-json --base-path "$PWD" < "$in" > "$out"
    sed -n '/^{{/,$p' "$out"
    ;;
  *)
    echo "merit solc wrapper: only --version and --standard-json are supported" >&2
    exit 2
    ;;
esac
"""


def solcx_dir() -> Path:
    return Path(os.environ.get("SOLCX_BINARY_PATH", Path.home() / ".solcx"))


def target_path() -> Path:
    return solcx_dir() / f"solc-v{SOLC_VERSION}"


def is_wrapper(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="ignore")[:200]
    except OSError:
        return False


def works(path: Path) -> bool:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and SOLC_VERSION in out.stdout


def install_wrapper() -> Path:
    solcjs = ROOT / "node_modules" / "solc" / "solc.js"
    if not solcjs.exists():
        raise SystemExit(f"error: {solcjs} is missing; run `npm ci` in {ROOT} first")
    node = shutil.which("node")
    if node is None:
        raise SystemExit("error: node is not on PATH; install Node.js 20 (it ships npm)")
    path = target_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        WRAPPER.format(
            marker=MARKER, version=SOLC_VERSION, long_version=SOLC_LONG_VERSION, solcjs=str(solcjs), node=node
        )
    )
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)
    return path


def ensure_solc(allow_download: bool = True) -> Path:
    """Return the path of a working solc SOLC_VERSION, installing one if needed."""
    path = target_path()
    if path.exists() and not is_wrapper(path) and works(path):
        return path  # a native compiler: best case
    if allow_download:
        try:
            import solcx

            solcx.install_solc(SOLC_VERSION, show_progress=False)
            if works(path) and not is_wrapper(path):
                return path
        except Exception:  # no network to the binaries site: fall back to solcjs
            pass
    path = install_wrapper()
    if not works(path):
        raise SystemExit(
            f"error: the solc wrapper at {path} does not run; check `node {ROOT}/node_modules/solc/solc.js --version`"
        )
    return path


def main() -> None:
    offline = "--offline" in sys.argv
    path = ensure_solc(allow_download=not offline)
    kind = "solcjs wrapper" if is_wrapper(path) else "native"
    print(f"solc {SOLC_VERSION} ({kind}) at {path}")


if __name__ in ("__main__", "__builtin__", "builtins"):
    main()

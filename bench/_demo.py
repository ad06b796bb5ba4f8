"""`merit demo` in a fresh process, for the benches that compare whole demo runs (threads, committee)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_report(args: list[str], out: Path, env: dict[str, str], timeout: float | None = None) -> dict:
    """Runs ``merit demo ARGS --out OUT --json`` from the repository root and returns its report.json;
    a failed demo raises with the end of its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "demo", *args, "--out", str(out), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"merit demo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())

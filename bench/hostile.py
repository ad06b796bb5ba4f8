"""Hostile inputs: every parser of untrusted bytes, over the fuzz corpus and fresh fuzzing, in a child
process (as a node or the API would meet them, with the Ethereum libraries' recursion limit).

Writes bench/results/hostile.json: whether the child survived, the slowest refusal per parser, and
the target (each hostile input refused in under 1 s, the process alive afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("MERIT_BENCH_FUZZ_EXAMPLES", "1000"))


def run(results: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        timings_path, last = Path(tmp) / "timings.json", Path(tmp) / "last.bin"
        start = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.fuzz.harness",
                "--examples",
                str(EXAMPLES),
                "--timings",
                str(timings_path),
                "--last",
                str(last),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        slowest = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        crashed_on = last.read_bytes()[:200].decode("utf-8", "replace") if child.returncode else None
    corpus = sorted(p.name for p in (ROOT / "tests" / "fuzz" / "corpus").glob("*.bin.gz"))
    worst = max(slowest.values(), default=None)
    return {
        "examples_per_parser": EXAMPLES,
        "corpus": corpus,
        "child_exit_code": child.returncode,
        "crashed_on": crashed_on,
        "slowest_seconds": {k: round(v, 4) for k, v in sorted(slowest.items())},
        "total_seconds": round(seconds, 1),
        "targets": {"no_crash": child.returncode == 0, "each_refused_under_1s": worst is not None and worst < 1.0},
    }

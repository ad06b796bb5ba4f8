"""Every parser of untrusted bytes survives the fuzz harness and its corpus of hostile shapes.

The harness runs in a child process (``python -m tests.fuzz.harness``): a segmentation fault there
fails this test with the input that caused it, instead of killing the test runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_parsers_survive_fuzzing_and_the_hostile_corpus(tmp_path):
    last = tmp_path / "last-input.bin"
    examples = os.environ.get("MERIT_FUZZ_EXAMPLES", "150")
    child = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.harness", "--examples", examples, "--last", str(last)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if child.returncode != 0:
        crashed = last.read_bytes() if last.exists() else b""
        target, _, data = crashed.partition(b"\n")
        raise AssertionError(
            f"the fuzz harness exited {child.returncode} while parsing a {target.decode()!r} input "
            f"of {len(data)} bytes starting {data[:80]!r}\n{child.stdout[-2000:]}\n{child.stderr[-4000:]}"
        )
    assert "fuzzed 5 parsers" in child.stdout

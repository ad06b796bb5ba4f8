"""Adding and reading 1 GiB never holds it in memory (measured in a fresh process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_gib_round_trip_in_bounded_memory(tmp_path):
    size = 1 << 30
    try:
        command = [sys.executable, "-m", "tests.storage.streaming_probe", str(tmp_path / "ipfs"), str(size)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    finally:
        shutil.rmtree(tmp_path / "ipfs", ignore_errors=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["bytes"] == size and report["same"]
    assert report["peak_growth_mb"] < 100, json.dumps(report)

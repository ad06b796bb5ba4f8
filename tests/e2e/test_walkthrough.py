"""README's walk-through, run exactly as written (only the ports move to free ones): Anvil, deploy,
owner, aggregator, the REST API and two trainers (one through the API) as separate processes, two
rounds, claims, reveal, verify. Also on Ganache, with only the chain command changed.

Each run spends most of its 7-8 minutes waiting for real-time windows to close, so the two engines'
runs start together (one fixture) and each test judges its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("anvil", "ganache")
pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def walkthrough_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", readme, re.S)
    assert block, "README.md lost its walk-through block"
    return block.group(1)


def _start(engine: str, directory: Path) -> subprocess.Popen:
    script = walkthrough_script().replace("8545", str(free_port())).replace("8000", str(free_port()))
    assert "--api http://127.0.0.1:" in script  # one trainer works through the REST API
    if engine == "ganache":
        assert script.count("merit chain up --port") == 1
        script = script.replace("merit chain up --port", "merit chain up --engine ganache --port")
    directory.mkdir(parents=True)
    (directory / "walkthrough.sh").write_text("set -euo pipefail\n" + script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MERIT_HOME", None)  # the script sets its own
    # output to a file, not a pipe: a run blocked on a full pipe while the other is waited on would
    # miss its real-time windows
    with open(directory / "output.log", "w") as log:
        return subprocess.Popen(
            ["bash", "walkthrough.sh"],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def walkthroughs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """Both engines' runs, started together: engine -> (exit code, output, directory)."""
    root = tmp_path_factory.mktemp("walkthroughs")
    procs = {engine: _start(engine, root / engine) for engine in ENGINES}
    results = {}
    try:
        for engine, proc in procs.items():
            proc.wait(timeout=1200)
            results[engine] = (proc.returncode, (root / engine / "output.log").read_text(), root / engine)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    return results


@pytest.mark.parametrize("engine", ENGINES)
def test_readme_walkthrough_runs_end_to_end(walkthroughs, engine):
    """As written on Anvil; on Ganache (Shanghai, so `merit deploy` takes the Shanghai build) with
    only the chain command changed."""
    code, out, directory = walkthroughs[engine]
    assert code == 0, out[-6000:]
    assert out.count("committee consensus settled") == 2, out[-6000:]
    assert "the validation set matches the owner's on-chain commitment" in out  # the operator checked it
    assert "round 0: match" in out and "round 1: match" in out
    assert out.count("done: claimed") == 2 and out.count("stake returned 1 ETH") == 2
    assert "Traceback" not in out
    if engine == "anvil":
        assert (directory / "walkthrough" / "anvil-state.json").exists()
    else:
        assert "shanghai build" in out and (directory / "walkthrough" / "ganache-db").is_dir()

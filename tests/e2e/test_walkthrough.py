"""README's walk-through, run exactly as written (only the ports move to free ones): Anvil, deploy,
owner, aggregator, the REST API and two trainers (one through the API) as separate processes, two
rounds, claims, reveal, verify."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def walkthrough_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", readme, re.S)
    assert block, "README.md lost its walk-through block"
    return block.group(1)


@pytest.mark.parametrize("engine", ["anvil", "ganache"])
def test_readme_walkthrough_runs_end_to_end(tmp_path, engine):
    """As written on Anvil; on Ganache (Shanghai, so `merit deploy` takes the Shanghai build) with
    only the chain command changed."""
    script = walkthrough_script().replace("8545", str(free_port())).replace("8000", str(free_port()))
    assert "--api http://127.0.0.1:" in script  # one trainer works through the REST API
    if engine == "ganache":
        assert script.count("merit chain up --port") == 1
        script = script.replace("merit chain up --port", "merit chain up --engine ganache --port")
    (tmp_path / "walkthrough.sh").write_text("set -euo pipefail\n" + script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MERIT_HOME", None)  # the script sets its own
    proc = subprocess.run(
        ["bash", "walkthrough.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert out.count("result posted") == 2, out[-6000:]
    assert "round 0: match" in out and "round 1: match" in out
    assert out.count("done: claimed") == 2 and out.count("stake returned 1 ETH") == 2
    assert "Traceback" not in out
    if engine == "anvil":
        assert (tmp_path / "walkthrough" / "anvil-state.json").exists()
    else:
        assert "shanghai build" in out and (tmp_path / "walkthrough" / "ganache-db").is_dir()

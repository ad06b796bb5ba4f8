"""`merit chain up`, `merit deploy` and the messages a user gets when the chain or market is wrong."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from backend.chain.anvil import free_port
from backend.chain.connection import connect, wait_for_rpc
from backend.chain.session import attach, parse_key
from backend.config import Settings
from backend.errors import ChainError, ConfigError

MERIT = [sys.executable, "-m", "backend.cli.main"]


def merit(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MERIT, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.mark.anvil
def test_chain_up_persists_state_and_deploy_records_the_market(tmp_path):
    port = free_port()
    state = tmp_path / "state.json"
    # Started as a script's background job is: with SIGINT inherited as ignored. Ctrl-C / kill -INT
    # must still stop Anvil and save its state.
    proc = subprocess.Popen(
        [*MERIT, "chain", "up", "--port", str(port), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_for_rpc(f"http://127.0.0.1:{port}", timeout=30)
        out = merit("deploy", "--chain", f"http://127.0.0.1:{port}", "--test-token")
        assert out.returncode == 0, out.stderr
        home = os.environ["MERIT_HOME"]
        chain_id = connect(f"http://127.0.0.1:{port}").chain_id
        record = json.loads(open(f"{home}/deployments/{chain_id}.json").read())
        assert record["marketplace"].startswith("0x") and record["test_token"].startswith("0x")
        market = attach(Settings(chain=f"http://127.0.0.1:{port}"))
        assert market.project_count() == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert state.exists() and state.stat().st_size > 0
    # the chain comes back with the market still deployed
    proc = subprocess.Popen(
        [*MERIT, "chain", "up", "--port", str(port), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_rpc(f"http://127.0.0.1:{port}", timeout=30)
        market = attach(Settings(chain=f"http://127.0.0.1:{port}"))
        assert market.project_count() == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_unreachable_rpc_says_what_to_do():
    port = free_port()
    with pytest.raises(ChainError) as err:
        connect(f"http://127.0.0.1:{port}", timeout=2)
    assert "merit chain up" in str(err.value)
    out = merit("deploy", "--chain", f"http://127.0.0.1:{port}")
    assert out.returncode == 1
    assert "cannot reach a JSON-RPC node" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


@pytest.mark.anvil
def test_missing_deployment_and_non_contract_address(anvil_node):
    with pytest.raises(ConfigError) as err:
        attach(Settings(chain=anvil_node.url))
    assert "merit deploy" in str(err.value)
    with pytest.raises(ChainError) as err:
        attach(Settings(chain=anvil_node.url, market="0x000000000000000000000000000000000000dEaD"))
    assert "is not a contract" in str(err.value)
    with pytest.raises(ConfigError):
        attach(Settings(chain=anvil_node.url, market="0x1234"))


def test_embedded_chain_cannot_be_deployed_to_from_the_cli():
    out = merit("deploy", "--chain", "embedded")
    assert out.returncode == 1 and "merit chain up" in out.stderr and "Traceback" not in out.stderr


def test_bad_keys_are_refused_clearly():
    assert parse_key("dev:3").address == "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    for bad in ("0x1234", "dev:x", "dev:-1", "not a key"):
        with pytest.raises(ConfigError):
            parse_key(bad)


def test_bad_chain_setting_is_refused():
    out = merit("deploy", env={"MERIT_CHAIN": "ftp://nope"})
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "http" in out.stderr


@pytest.mark.anvil
def test_chain_up_on_a_busy_port_says_why_and_anvil_dies_with_merit(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = merit("chain", "up", "--port", str(port), "--state", str(tmp_path / "s.json"), timeout=90)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "Anvil exited" in out.stderr and "--port" in out.stderr
    # killed outright, Merit still takes its Anvil down (Linux parent-death signal)
    port = free_port()
    proc = subprocess.Popen(
        [*MERIT, "chain", "up", "--port", str(port), "--state", str(tmp_path / "k.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_rpc(f"http://127.0.0.1:{port}", timeout=30)
    proc.kill()
    proc.wait(timeout=30)
    for _ in range(60):
        try:
            connect(f"http://127.0.0.1:{port}", timeout=1)
        except ChainError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("Anvil outlived the merit process that started it")

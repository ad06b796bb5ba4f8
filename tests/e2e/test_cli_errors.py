"""Bad input to the owner, trainer and aggregator commands gets one clear line, never a traceback,
and changes nothing on-chain. Exit codes follow click's conventions: 0 done, 1 a runtime error (one
red line that says what to do), 2 a usage error (the usage line, no traceback hint)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from backend.chain.anvil import AnvilProcess, free_port
from backend.chain.client import MarketClient, save_deployment
from backend.chain.connection import connect, dev_account
from backend.config import get_settings
from backend.project import write_example


def merit(*args):
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", *args], capture_output=True, text=True, timeout=300
    )


# Each usage error and the words its message must contain. Typer (which vendors click) exits 2 for them.
USAGE_ERRORS = {
    "unknown command": (["nosuchcommand"], "No such command 'nosuchcommand'"),
    "unknown sub-command": (["project", "nosuchcommand"], "No such command 'nosuchcommand'"),
    "argument not a number": (["project", "status", "notanumber"], "'project_id'"),
    "argument out of range": (["project", "status", "0"], "'project_id'"),
    "option not a number": (["demo", "--trainers", "many"], "--trainers"),
    "option out of range": (["demo", "--trainers", "0"], "--trainers"),
    "missing argument": (["trainer", "run"], "Missing argument 'project_id'"),
    "missing option": (["trainer", "run", "1"], "Missing option '--data'"),
    "unknown option": (["project", "list", "--nosuchoption"], "No such option: --nosuchoption"),
    "option without its value": (["project", "list", "--chain"], "Usage: merit project list"),
    "bad choice of number": (["ipfs", "add", "x", "--cid-version", "7"], "--cid-version"),
    "chain that is no URL": (["project", "list", "--chain", "nonsense"], "expected 'embedded' or an http(s):// URL"),
    "store that is no URL": (["demo", "--ipfs", "ftp://x"], "--ipfs"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_exit_2_with_the_usage_line(case):
    args, needle = USAGE_ERRORS[case]
    out = merit(*args)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Usage: " in out.stderr and needle in out.stderr, out.stderr
    assert "--debug" not in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_runtime_errors_exit_1_with_one_line_that_says_what_to_do(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    for args, needle, hint in (
        (["project", "list", "--chain", dead], "cannot reach a JSON-RPC node", "merit chain up"),
        (["ipfs", "add", str(tmp_path / "missing.bin")], "missing.bin", ""),
        (["deploy", "--chain", "embedded"], "embedded chain", "merit chain up"),
        (["demo", "--aggregators", "2"], "--aggregators must be odd", ""),
        (["demo", "--aggregators", "3", "--dishonest-aggregators", "2"], "at most 1, got 2", ""),
    ):
        out = merit(*args)
        assert out.returncode == 1, (args, out.returncode, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0] and hint in lines[0], (
            out.stderr
        )
        assert "Usage: " not in out.stderr


def test_success_and_help_exit_0(tmp_path):
    data = tmp_path / "hello.txt"
    data.write_bytes(b"hello world\n")
    out = merit("ipfs", "add", "--only-hash", str(data))
    assert out.returncode == 0 and out.stdout.strip().startswith("bafk"), out.stderr
    for args in (["--help"], ["project", "--help"], ["trainer", "run", "--help"]):
        out = merit(*args)
        assert out.returncode == 0 and "Usage: " in out.stdout, (args, out.stderr)


def test_shared_options_are_defined_once():
    """--chain, --ipfs, --market and --key come from one definition each (backend/cli/common.py):
    every command that takes one gives it the same help."""
    import typer

    from backend.cli.main import _register, app

    _register()
    helps: dict[str, set[str]] = {}

    def walk(command):
        for sub in getattr(command, "commands", {}).values():
            walk(sub)
        for param in command.params:
            for name in ("--chain", "--ipfs", "--market", "--key"):
                if name in getattr(param, "opts", ()):
                    helps.setdefault(name, set()).add(param.help)

    walk(typer.main.get_command(app))
    assert set(helps) == {"--chain", "--ipfs", "--market", "--key"}
    assert all(len(texts) == 1 for texts in helps.values()), helps


def one_clear_line(proc, needle):
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "Usage: " not in proc.stderr


@pytest.fixture(scope="module")
def market_env(tmp_path_factory):
    with AnvilProcess() as node:
        yield node, tmp_path_factory.mktemp("cli")


@pytest.fixture
def deployed(market_env, tmp_path):
    node, _ = market_env
    chain = connect(node.url)
    owner = MarketClient.deploy(chain, dev_account(0))
    save_deployment(get_settings().deployments_dir, owner.deployment())
    files = write_example(tmp_path / "data", trainers=2, rounds=1)
    return node, owner, files


@pytest.mark.anvil
def test_spec_file_names_every_problem_at_once(deployed, tmp_path):
    node, owner, files = deployed
    spec = yaml.safe_load(files[0].read_text())
    spec["rounds"] = 0
    spec["trainers"]["stake"] = "lots"
    del spec["arbiter"]
    spec["model"]["arch"] = "transformer-xl"
    bad = tmp_path / "data" / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    out = merit("project", "create", "--spec", str(bad), "--chain", node.url, "--key", "dev:0")
    one_clear_line(out, "problem(s)")
    for needle in ("rounds", "trainers.stake", "arbiter"):
        assert needle in out.stderr
    assert owner.project_count() == 0
    missing = merit("project", "create", "--spec", str(tmp_path / "nope.yaml"), "--chain", node.url)
    one_clear_line(missing, "cannot read spec file")


@pytest.mark.anvil
def test_trainer_errors_say_what_to_do(deployed, tmp_path):
    node, owner, files = deployed
    out = merit("project", "create", "--spec", str(files[0]), "--chain", node.url, "--key", "dev:0")
    assert out.returncode == 0, out.stderr
    not_joined = merit("trainer", "train", "1", "--data", str(files[2]), "--chain", node.url, "--key", "dev:5")
    one_clear_line(not_joined, "has not joined project 1")
    assert "merit trainer join 1" in not_joined.stderr
    assert merit("trainer", "join", "1", "--chain", node.url, "--key", "dev:5").returncode == 0
    pending = merit("trainer", "train", "1", "--data", str(files[2]), "--chain", node.url, "--key", "dev:5")
    one_clear_line(pending, "is pending, not running")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, X=np.zeros((5, 10), dtype=np.float32), y=np.zeros(5, dtype=np.int64))
    shape = merit("trainer", "train", "1", "--data", str(wrong), "--chain", node.url, "--key", "dev:5")
    one_clear_line(shape, "shape")
    twice = merit("trainer", "join", "1", "--chain", node.url, "--key", "dev:5")
    one_clear_line(twice, "AlreadyJoined")
    assert owner.project(1).trainer_count == 1


@pytest.mark.anvil
def test_services_down(deployed):
    node, owner, files = deployed
    dead = f"http://127.0.0.1:{free_port()}"
    chain_down = merit("project", "list", "--chain", dead)
    one_clear_line(chain_down, "cannot reach a JSON-RPC node")
    store_down = merit(
        "project", "create", "--spec", str(files[0]), "--chain", node.url, "--key", "dev:0", "--ipfs", dead
    )
    one_clear_line(store_down, dead.split("//")[1])
    assert owner.project_count() == 0
    unknown = merit("project", "status", "7", "--chain", node.url)
    one_clear_line(unknown, "project 7 does not exist")


@pytest.mark.anvil
def test_deploy_picks_the_build_the_chain_runs_and_refuses_an_older_evm(tmp_path):
    """A Shanghai chain gets the Shanghai build (and says so); a chain older than every build is
    refused before anything is sent, since the contract would deploy and then fail on its first call."""
    with AnvilProcess(hardfork="paris") as node:
        out = merit("deploy", "--chain", node.url)
        one_clear_line(out, "runs neither Cancun nor Shanghai opcodes")
        assert "merit chain up --engine ganache" in out.stderr
        assert connect(node.url).w3.eth.block_number == 0  # nothing was sent
    with AnvilProcess(hardfork="shanghai") as node:
        out = merit("deploy", "--chain", node.url)
        assert out.returncode == 0 and "shanghai build, storage reentrancy guard" in out.stdout, out.stdout + out.stderr
    with AnvilProcess() as node:
        market = MarketClient.deploy(connect(node.url), dev_account(0))
        assert market.deployment().evm == "cancun"

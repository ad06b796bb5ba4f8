"""Bad input to the owner, trainer and aggregator commands gets one clear line, never a traceback,
and changes nothing on-chain."""
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

pytestmark = pytest.mark.anvil


def merit(*args):
    return subprocess.run([sys.executable, "-m", "backend.cli.main", *args], capture_output=True, text=True, timeout=300)


def one_clear_line(proc, needle):
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


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


def test_services_down(deployed):
    node, owner, files = deployed
    dead = f"http://127.0.0.1:{free_port()}"
    chain_down = merit("project", "list", "--chain", dead)
    one_clear_line(chain_down, "cannot reach a JSON-RPC node")
    store_down = merit("project", "create", "--spec", str(files[0]), "--chain", node.url, "--key", "dev:0",
                       "--ipfs", dead)
    one_clear_line(store_down, dead.split("//")[1])
    assert owner.project_count() == 0
    unknown = merit("project", "status", "7", "--chain", node.url)
    one_clear_line(unknown, "project 7 does not exist")


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

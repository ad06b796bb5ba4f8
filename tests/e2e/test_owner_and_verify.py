"""Owner commands (cancel, withdraw, export, status) and `merit verify` catching a dishonest
aggregator, as real processes on Anvil."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aggregator.report import canonical_json
from backend.chain.connection import dev_account
from backend.data import load_trainer_data
from backend.models.spec import ModelSpec
from backend.project import create_project, write_example
from backend.storage import compute_cid
from backend.trainer.client import train_round
from tests.chain.helpers import committee_post, reveal_trainers

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def merit(*args):
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_owner_cancels_withdraws_and_exports(anvil_market, tmp_path):
    m = anvil_market
    url, chain, owner, store, settings = m.url, m.chain, m.owner, m.store, m.settings
    files = write_example(tmp_path / "data", trainers=2, rounds=3)
    pid, _ = create_project(owner, store, files[0], settings.home)
    out = merit("project", "export", str(pid), "--out", str(tmp_path / "model.safetensors"), "--chain", url)
    assert out.returncode == 0, out.stderr
    assert compute_cid((tmp_path / "model.safetensors").read_bytes()) == owner.config(pid).initialModelCid
    early = merit("project", "withdraw", str(pid), "--chain", url, "--key", "dev:0")
    assert early.returncode == 1 and "WrongStatus" in early.stderr and "Traceback" not in early.stderr
    not_owner = merit("project", "cancel", str(pid), "--chain", url, "--key", "dev:5")
    # before its start deadline only the owner may cancel a Pending project; the CLI says so
    assert not_owner.returncode == 1 and "StartPeriodNotOver" in not_owner.stderr
    assert "only the owner may cancel" in " ".join(not_owner.stderr.split())
    assert merit("project", "cancel", str(pid), "--chain", url, "--key", "dev:0").returncode == 0
    before = chain.w3.eth.get_balance(dev_account(0).address)
    out = merit("project", "withdraw", str(pid), "--chain", url, "--key", "dev:0")
    assert out.returncode == 0 and "withdrew 10 ETH" in out.stdout, out.stdout + out.stderr
    assert chain.w3.eth.get_balance(dev_account(0).address) > before + 9 * 10**18
    listing = merit("project", "list", "--chain", url)
    assert "Cancelled" in listing.stdout


def test_verify_catches_a_result_that_does_not_match_the_inputs(anvil_market, tmp_path):
    m = anvil_market
    url, chain, owner, store, settings = m.url, m.chain, m.owner, m.store, m.settings
    files = write_example(tmp_path / "data", trainers=2, rounds=1)
    pid, _ = create_project(owner, store, files[0], settings.home)
    aggregator = owner.as_account(dev_account(1))  # the committee's sole member (the owner bonded at creation)
    trainers = [owner.as_account(dev_account(3)), owner.as_account(dev_account(4))]
    spec = ModelSpec.from_json(store.get_bytes(owner.config(pid).specCid))
    for t in trainers:
        t.join(pid)
    owner.start(pid)
    for i, t in enumerate(trainers):
        X, y = load_trainer_data(files[2 + i], spec)
        train_round(t, pid, X[:200], y[:200], store=store, log=lambda m: None)
    reveal_trainers(chain, pid, 0, trainers)
    # A dishonest aggregator: all the reward to trainer 1, trainer 0 slashed as an "outlier",
    # the global model left as it was, and a report that agrees with all of that.
    base = owner.global_model_cid(pid)
    report = {"schema_version": "merit.round-report/1", "weights": [0, 10**9], "flags": 1, "trainers": []}
    report_cid = store.add_bytes(canonical_json(report))
    committee_post(aggregator, pid, 0, base, report_cid, [0, 10**9], 1)
    out = merit("verify", str(pid), "--validation", str(files[1]), "--chain", url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "round 0: MISMATCH" in out.stdout
    shown = " ".join(out.stdout.split())  # rich wraps long lines
    assert f"trainer 0 {trainers[0].account.address}: flag posted True, recomputed False" in shown
    assert "the posted model differs from the recomputed one" in shown
    # nothing was revealed yet: verify says how to proceed without --validation
    plain = merit("verify", str(pid), "--chain", url)
    assert plain.returncode == 1 and "merit project reveal" in plain.stderr and "Traceback" not in plain.stderr

"""`merit aggregator register / exit / withdraw` and `run` without a project, as a user runs them (Anvil)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backend.chain.committee import CommitteeClient
from backend.chain.connection import dev_account

pytestmark = [pytest.mark.anvil]


def merit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_register_exit_withdraw_and_their_errors(anvil_market):
    chain, owner = anvil_market.chain, anvil_market.owner
    base = ["--chain", anvil_market.url, "--key", "dev:7"]
    committee = CommitteeClient.of(owner)
    me = dev_account(7).address

    bad = merit("aggregator", "register", "--stake", "lots", *base)
    assert bad.returncode != 0 and "--stake 'lots'" in bad.stderr and "Traceback" not in bad.stderr
    small = merit("aggregator", "register", "--stake", "1 wei", *base)
    assert small.returncode == 1 and "StakeTooSmall" in small.stderr and "Traceback" not in small.stderr

    out = merit("aggregator", "register", "--stake", "0.1 ether", *base)
    assert out.returncode == 0, out.stderr
    assert committee.member(me).stake == 10**17
    more = merit("aggregator", "register", "--stake", "0.05 ether", *base)
    assert more.returncode == 0 and committee.member(me).stake == 15 * 10**16

    # not drawn for any project: `run` without a project says what to do
    run = merit("aggregator", "run", "--validation", "nowhere.npz", *base)
    assert run.returncode != 0 and "sits on 0 running committees" in run.stderr, run.stderr

    early = merit("aggregator", "withdraw", *base)
    assert (
        early.returncode == 1
        and "StakeLocked" in early.stderr
        and "merit aggregator exit" in " ".join(early.stderr.split())
    )
    assert merit("aggregator", "exit", *base).returncode == 0
    again = merit("aggregator", "register", "--stake", "0.1 ether", *base)
    assert again.returncode == 1 and "Exiting" in again.stderr
    still = merit("aggregator", "withdraw", *base)
    assert still.returncode == 1 and "StakeLocked" in still.stderr  # the cooling-off period runs
    chain.advance(committee.cooldown() + 1)
    before = chain.w3.eth.get_balance(me)
    out = merit("aggregator", "withdraw", *base)
    assert out.returncode == 0 and "withdrew 0.15 ETH" in out.stdout, out.stdout + out.stderr
    assert chain.w3.eth.get_balance(me) > before + 14 * 10**16
    assert committee.member(me).stake == 0

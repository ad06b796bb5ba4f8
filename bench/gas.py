"""Gas per transaction type, measured with the bytecode Merit ships (backend/chain/artifacts).

Writes bench/results/gas.json:
{"create_project", "join", "commit_update", "reveal_update", "commit_plus_reveal", "claim",
 "round": {"16": {"post_result", "finalize"}, ...},
 "committee": {"16": {"1": {"commit_scores", "reveal_scores", "settle", "finalize", "total"}, "3": ..., "5": ...,
               "3_with_fee": ..., "3_noisy": ...}, "64": ...}}
plus the targets from the issues, so a reader sees pass/fail at a glance.

Results reach the Marketplace only through the committee now: a round's ``post_result`` here is the
settle transaction of a committee of one (which makes the Marketplace's postResult call). The
Marketplace's own postResult + finalize budget (issue 11) is checked by forge, where the test posts as
the committee (contracts/test/MarketplaceGas.t.sol). A committee round's ``total`` is everything that
settles it: k commits, k reveals, settle and finalize.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from rich.progress import Progress

from backend.chain.client import MarketClient
from backend.chain.committee import CommitteeClient
from backend.chain.connection import connect, dev_account
from backend.chain.types import ETH, WEIGHT_SCALE, MemberPost, ProjectConfig

ETHER = 10**18
SIZES = (16, 64, 256)
ROOT = Path(__file__).resolve().parents[1]
# Issue 12's target: a k = 3 committee settles n = 16 for at most 2.5x what one aggregator's postResult +
# finalize cost before the committee (308,403 gas: bench/results/gas.json of commit 01e8dfc), read
# strictly: the members' commits and reveals count too (``total``).
SINGLE_AGGREGATOR_N16 = 308_403
COMMITTEE_TARGET_N16_K3 = int(2.5 * SINGLE_AGGREGATOR_N16)


def _config(arbiter: str, trainers: int) -> ProjectConfig:
    return ProjectConfig(
        asset=ETH,
        pool=100 * ETHER,
        stake=ETHER // 10,
        aggregatorBond=4 * ETHER,
        disputeBond=ETHER // 2,
        aggregator=ETH,  # the committee
        arbiter=arbiter,
        rounds=3,
        minTrainers=1,
        maxTrainers=trainers,
        slashBps=5000,
        submissionWindow=3600,
        aggregationWindow=3600,
        challengePeriod=600,
        specCid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        initialModelCid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        validationCommitment=b"\x01" * 32,
        revealWindow=600,
    )


def _open_round(chain, owner: MarketClient, n: int, progress: Progress, k: int = 1):
    """A project with ``n`` trainers and a committee of ``k``, started, every trainer committed and
    revealed: the round is Aggregating. Returns (pid, trainers, gas of the trainers' steps)."""
    arb = dev_account(2)
    pid = owner.create_project(_config(arb.address, n))
    create_gas = owner.last_receipt.gas_used
    if k > 1:
        CommitteeClient.of(owner).configure(pid, k, CommitteeClient.of(owner).minimum_stake(), 0)
    owner.post_aggregator_bond(pid)
    trainers = [owner.as_account(dev_account(100 + i)) for i in range(n)]
    task = progress.add_task(f"n={n}: fund, join, submit", total=3 * n)
    funder = dev_account(0)
    for t in trainers:
        if chain.w3.eth.get_balance(t.account.address) < ETHER:
            owner.tx.transfer(funder, t.account.address, 5 * ETHER)
        progress.advance(task)
    join_gas = []
    for t in trainers:
        join_gas.append(t.join(pid).gas_used)
        progress.advance(task)
    owner.start(pid)
    commit_gas, pending = [], []
    for i, t in enumerate(trainers):
        cid, salt = f"bafkreiupdate{i:04d}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", os.urandom(32)
        commit_gas.append(t.commit_update(pid, 0, cid, salt).gas_used)
        pending.append((t, cid, salt))
        progress.advance(task)
    info = owner.round(pid, 0)
    chain.advance(info.submission_deadline - chain.now() + 1)
    reveal_gas = [t.reveal_update(pid, 0, cid, salt).gas_used for t, cid, salt in pending]
    chain.advance(owner.round(pid, 0).reveal_deadline - chain.now() + 1)
    return pid, trainers, {"create_project": create_gas, "join": join_gas, "commit": commit_gas, "reveal": reveal_gas}


def _scores(member: str, n: int) -> MemberPost:
    """A realistic result: all weights nonzero but the offenders', one offender in eight."""
    flags = sum(1 << i for i in range(0, n, 8))
    weights = [0 if (flags >> i) & 1 else WEIGHT_SCALE // n + i for i in range(n)]
    return MemberPost(member, weights, flags, "bafkreimodel" + "a" * 48, "bafkreireport" + "b" * 47)


def _committee_settles(owner: MarketClient, pid: int, n: int) -> dict:
    """Every drawn member commits and reveals the same scores; then settle. Gas of each step."""
    members = CommitteeClient.of(owner).members_of(pid)
    keys = {dev_account(1).address: dev_account(1)}  # the registry's only member: committees of one
    clients = {m: CommitteeClient.of(owner.as_account(keys[m])) for m in members}
    salt = b"\x07" * 32
    commits = [c.commit_scores(pid, 0, _scores(m, n), salt).gas_used for m, c in clients.items()]
    reveals = [c.reveal_scores(pid, 0, _scores(m, n), salt).gas_used for m, c in clients.items()]
    settle = CommitteeClient.of(owner).settle(pid, 0).gas_used
    return {
        "commit_scores": max(commits),
        "reveal_scores": max(reveals),
        "settle": settle,
        "members_total": sum(commits) + sum(reveals) + settle,
    }


def _round(chain, owner: MarketClient, n: int, progress: Progress) -> dict:
    pid, trainers, steps = _open_round(chain, owner, n, progress)
    create_gas, join_gas, commit_gas, reveal_gas = (
        steps["create_project"],
        steps["join"],
        steps["commit"],
        steps["reveal"],
    )
    post = _committee_settles(owner, pid, n)["settle"]
    info = owner.round(pid, 0)
    chain.advance(info.challenge_deadline - chain.now() + 1)
    fin = owner.finalize(pid).gas_used
    claim = trainers[1].claim(pid).gas_used
    return {
        "settle": post,
        "finalize": fin,
        "sum": post + fin,
        "create_project": create_gas,
        "join": max(join_gas),
        "commit_update": max(commit_gas),
        "reveal_update": max(reveal_gas),
        "commit_plus_reveal": max(c + r for c, r in zip(commit_gas, reveal_gas)),
        "claim": claim,
    }


def run(out_dir: Path) -> dict:
    result = _measure("cancun")
    result["committee"] = measure_committee()
    # the Shanghai build (Ganache 7): the same code with a storage-slot reentrancy guard
    shanghai = _measure("shanghai", sizes=(16, 64))
    result["shanghai"] = {
        k: shanghai[k] for k in ("deploy", "create_project", "join", "commit_plus_reveal", "claim", "round", "ok")
    }
    return result


def _register_members(chain, owner: MarketClient) -> None:
    """dev:1 stakes in the registry: every committee of one draws it."""
    stake = CommitteeClient.of(owner).minimum_stake()
    for i in (1,):
        acct = dev_account(i)
        if chain.w3.eth.get_balance(acct.address) < ETHER:
            owner.tx.transfer(dev_account(0), acct.address, 5 * ETHER)
        CommitteeClient.of(owner.as_account(acct)).register(stake)


def measure_committee() -> dict:
    """Issue 12: a round settled by committees of k = 1, 3, 5 at n = 16 and 64, from the forge gas test
    (contracts/test/committee/CommitteeGas.t.sol: whole transactions, storage cooled, no fee), which is
    seconds where the same rounds through the embedded chain take many minutes on a loaded machine.
    Also k = 3 with a fee (settle credits each member's first fee share) and with members that agree
    only up to float noise (settle then sorts and scales every lane: its slow path)."""
    forge = ROOT / "node_modules" / ".bin" / "forge"
    env = {**os.environ, "FOUNDRY_SOLC": str(Path.home() / ".solcx" / "solc-v0.8.37"), "FOUNDRY_OFFLINE": "true"}
    out = subprocess.run(
        [str(forge), "test", "--mc", "CommitteeGasTest", "-vv"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"forge CommitteeGasTest failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    rows: dict[str, dict] = {}
    pattern = r"committee n=(\d+) k=(\d+)( fee)?( noisy)? (\w+) (\d+)"
    for n, k, fee, noisy, field, value in re.findall(pattern, out.stdout):
        key = k + ("_with_fee" if fee else "") + ("_noisy" if noisy else "")
        rows.setdefault(n, {}).setdefault(key, {})[field] = int(value)
    k3 = rows["16"]["3"]
    return {
        **rows,
        "single_aggregator_n16": SINGLE_AGGREGATOR_N16,
        "target_k3_n16": COMMITTEE_TARGET_N16_K3,
        "ratio_settle_plus_finalize_k3_n16": round(k3["settle_plus_finalize"] / SINGLE_AGGREGATOR_N16, 3),
        "ratio_total_k3_n16": round(k3["total"] / SINGLE_AGGREGATOR_N16, 3),
        "ok": k3["total"] <= COMMITTEE_TARGET_N16_K3,
        "measured": "forge, contracts/test/committee/CommitteeGas.t.sol: execution gas (cold storage) + 21,000 + "
        "calldata per transaction; settle_plus_finalize replaces postResult + finalize; total adds the "
        "members' commits and reveals; ok: total (the strict reading of the target) <= target_k3_n16",
    }


def _measure(evm: str, sizes: tuple[int, ...] = SIZES) -> dict:
    chain = connect("embedded")
    owner = MarketClient.deploy(chain, dev_account(0), evm=evm)
    _register_members(chain, owner)
    rounds = {}
    with Progress() as progress:
        for n in sizes:
            rounds[str(n)] = _round(chain, owner, n, progress)
    first = rounds[str(sizes[0])]
    result = {
        "create_project": first["create_project"],
        "join": max(r["join"] for r in rounds.values()),
        "commit_update": max(r["commit_update"] for r in rounds.values()),
        "reveal_update": max(r["reveal_update"] for r in rounds.values()),
        "commit_plus_reveal": max(r["commit_plus_reveal"] for r in rounds.values()),
        "claim": max(r["claim"] for r in rounds.values()),
        "deploy": owner.deploy_receipt.gas_used,
        "round": {
            k: {"settle_committee_of_one": v["settle"], "finalize": v["finalize"], "sum": v["sum"]}
            for k, v in rounds.items()
        },
        # The Marketplace's own postResult + finalize budget (80,000 + 15,000 n) is asserted by forge
        # (MarketplaceGas.t.sol); results reach it only through the committee's settle now.
        "targets": {"commit_plus_reveal": 100_000, "claim": 60_000},
        "chain": f"embedded (py-evm), {evm} build",
        "optimizer": {"enabled": True, "runs": 200},
    }
    result["ok"] = result["commit_plus_reveal"] <= 100_000 and result["claim"] <= 60_000
    return result

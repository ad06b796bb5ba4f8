"""The contract's committee settlement equals the replica (aggregator/committee.py): the consensus and
every penalty, on random posts of a committee of three, with a liar and with a member that never reveals;
on the embedded chain and on Anvil."""

from __future__ import annotations

import os
import random

import pytest

from aggregator import committee as rules
from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE
from backend.chain.committee import CommitteeClient
from backend.chain.connection import dev_account
from backend.chain.types import WEIGHT_SCALE, MemberPost
from tests.chain.helpers import advance_past, commit, make_market, reveal_all

MEMBERS = (1, 15, 16)  # dev accounts: the aggregator make_market registers, and two more
ROUNDS = 3


def _random_post(rng: random.Random, member: str, n: int, style: str) -> MemberPost:
    honest = [WEIGHT_SCALE // n + rng.randint(-5, 5) for _ in range(n)]
    if style == "liar":
        weights = [0] * n
        weights[rng.randrange(n)] = WEIGHT_SCALE
        return MemberPost(member, weights, rng.getrandbits(n), "bafy-lie", "bafy-lie-report")
    if style == "random":
        return MemberPost(member, [rng.randrange(2**32) for _ in range(n)], rng.getrandbits(n), "bafy-m", "bafy-r")
    return MemberPost(member, honest, 0, "bafy-m", "bafy-r")


@pytest.fixture
def project(chain):
    market = make_market(chain, trainers=4)
    for index in MEMBERS[1:]:
        CommitteeClient.of(market.owner.as_account(dev_account(index))).register(DEFAULT_MIN_MEMBER_STAKE)
    pid = market.owner.create_project(market.config(rounds=ROUNDS, minTrainers=4))
    CommitteeClient.of(market.owner).configure(pid, 3, DEFAULT_MIN_MEMBER_STAKE, 0)
    market.owner.post_aggregator_bond(pid)
    for t in market.trainers:
        t.join(pid)
    market.owner.start(pid)
    return market, pid


@pytest.mark.parametrize("seed", [1, 2])
def test_the_contract_settles_what_the_replica_computes(project, seed):
    market, pid = project
    rng = random.Random(seed)
    committee = CommitteeClient.of(market.owner)
    members = committee.members_of(pid)
    assert sorted(members) == sorted(dev_account(i).address for i in MEMBERS)
    scenarios = [("honest", "honest", "liar"), ("random", "random", "random"), ("honest", "liar", None)]
    previous = market.owner.config(pid).initialModelCid
    for r, styles in enumerate(scenarios):
        for t in market.trainers:
            commit(t, pid, r, f"bafy-update-{r}-{t.account.address[-6:]}")
        reveal_all(market.chain, pid, r)
        n = len(market.trainers)
        posted = []
        for member, style in zip(members, styles):
            if style is None:
                continue  # this member never reveals (nor commits)
            client = CommitteeClient.of(market.owner.as_account(_account(member)))
            post = _random_post(rng, member, n, style)
            salt = os.urandom(32)
            client.commit_scores(pid, r, post, salt)
            posted.append((client, post, salt))
        if len(posted) < len(members):
            advance_past(market.chain, committee.deadlines(pid, r)[1])
        for client, post, salt in posted:
            client.reveal_scores(pid, r, post, salt)
        if len(posted) < len(members):
            advance_past(market.chain, committee.deadlines(pid, r)[2])
        committee.settle(pid, r)

        revealed = committee.posts(pid, r)
        expected = rules.consensus(revealed, n, previous, seats=len(members))
        settled = committee.consensus(pid, r)
        assert (settled.weights, settled.flags, settled.model_cid) == (
            expected.weights,
            expected.flags,
            expected.model_cid,
        )
        judged = {d.member: d for d in rules.deviations(revealed, expected, members, n) if d.penalised}
        penalties = {p.member: p for p in committee.penalties(pid, r)}
        assert set(penalties) == set(judged), (r, styles)
        for member, p in penalties.items():
            assert (p.share_distance_bps, p.flag_disagreements) == (
                judged[member].share_distance_bps,
                judged[member].flag_disagreements,
            )
        _views_agree(committee, pid, r, members, penalties)
        advance_past(market.chain, market.owner.round(pid, r).challenge_deadline)
        market.owner.finalize(pid)
        previous = settled.model_cid


def _account(address: str):
    return next(dev_account(i) for i in MEMBERS if dev_account(i).address == address)


def _views_agree(committee, pid: int, r: int, members: list[str], penalties: dict) -> None:
    """`merit project status` and the API show the same members and penalties as the chain client."""
    from rich.console import Console

    from backend.api.chain_connect import committee_info
    from backend.cli.project import committee_table

    info = committee_info(committee, pid, r)
    assert [m.member for m in info.members] == members
    assert {m.member: m.penalty_wei for m in info.members if m.penalty_wei} == {
        a: p.amount for a, p in penalties.items()
    }
    console = Console(record=True, width=250)
    console.print(committee_table(committee, pid, r))
    text = console.export_text()
    for member in members:
        row = next(line for line in text.splitlines() if member in line)
        assert ("bps" in row) == (member in penalties)

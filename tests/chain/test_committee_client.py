"""CommitteeClient against the deployed committee: the commitment it computes is the contract's, a
project cannot name its own aggregator, and the owner's committee terms are checked (embedded chain)."""

from __future__ import annotations

import pytest

from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, pack_weights
from backend.chain.committee import CommitteeClient, scores_commitment
from backend.chain.connection import connect
from backend.chain.transactions import ContractRevert
from backend.chain.types import MemberPost
from backend.errors import ConfigError
from tests.chain.helpers import make_market


@pytest.fixture(scope="module")
def market():
    return make_market(connect("embedded"), trainers=2)


def test_scores_commitment_matches_the_contract(market):
    committee = CommitteeClient.of(market.owner)
    post = MemberPost(market.aggregator.account.address, [5, 0, 2**32 - 1, 7] * 3, 0b1001, "bafkreim", "bafkreir")
    salt = bytes(range(32))
    expected = committee._call(
        "scoresCommitment",
        post.member,
        3,
        9,
        pack_weights(post.weights),
        post.flags,
        post.model_cid,
        post.report_cid,
        salt,
    )
    assert scores_commitment(post.member, 3, 9, post, salt) == expected
    with pytest.raises(ConfigError, match="salt is 32 bytes"):
        scores_commitment(post.member, 3, 9, post, b"short")


def test_a_project_cannot_name_its_own_aggregator(market):
    with pytest.raises(ConfigError, match="projects no longer name their aggregator"):
        market.owner.create_project(market.config(aggregator=market.aggregator.account.address))
    pid = market.owner.create_project(market.config())  # the zero address: the committee
    assert market.owner.config(pid).aggregator == market.owner.committee_address()


def test_committee_terms_and_registry_reads(market):
    committee = CommitteeClient.of(market.owner)
    pid = market.owner.create_project(market.config())
    with pytest.raises(ContractRevert) as err:
        committee.configure(pid, 2, DEFAULT_MIN_MEMBER_STAKE)
    assert err.value.name == "BadCommittee" and "odd, 1 to 7" in str(err.value.hint)
    committee.configure(pid, 3, DEFAULT_MIN_MEMBER_STAKE, fee_per_round=10)
    assert committee.terms(pid) == {
        "size": 3,
        "min_stake": DEFAULT_MIN_MEMBER_STAKE,
        "fee_per_round": 10,
        "fee_left": 10 * market.owner.config(pid).rounds,
        "released": False,
    }
    member = committee.member(market.aggregator.account.address)
    assert member.stake == DEFAULT_MIN_MEMBER_STAKE and member.exit_at == 0 and member.registered
    # one registered aggregator cannot fill three seats: start names why
    market.owner.post_aggregator_bond(pid)
    for t in market.trainers:
        t.join(pid)
    with pytest.raises(ContractRevert) as err:
        market.owner.start(pid)
    assert err.value.name == "CommitteeUnavailable" and "merit aggregator register" in str(err.value.hint)

"""Three aggregator nodes on one committee, one of them dishonest through the behaviour hook: the
contract settles the honest consensus and takes the liar's stake (embedded chain, in-process)."""

from __future__ import annotations

from dataclasses import replace

from aggregator.node import AggregatorNode
from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, MarketClient
from backend.chain.committee import CommitteeClient, scores_commitment
from backend.chain.connection import connect, dev_account
from backend.chain.types import MemberPost, Phase, WEIGHT_SCALE
from backend.config import get_settings
from backend.data import load_trainer_data
from backend.data import load_validation
from backend.project import create_project, write_example
from backend.storage import open_store
from backend.trainer.client import load_round, make_update
from tests.chain.helpers import commit, reveal_all

MEMBERS = (1, 5, 6)  # dev accounts registered as aggregators


def liar_for(attacker: int):
    """Flag every trainer but ``attacker`` (only revealed ones can be flagged) and give it all the weight."""

    def lie(post: MemberPost) -> MemberPost:
        n = len(post.weights)
        weights = [0] * n
        weights[attacker] = WEIGHT_SCALE
        return replace(post, weights=weights, flags=((1 << n) - 1) & ~(1 << attacker))

    return lie


def test_a_dishonest_member_cannot_change_the_consensus_and_pays_for_it(tmp_path):
    settings = get_settings()
    chain = connect("embedded")
    owner = MarketClient.deploy(chain, dev_account(0))
    for i in MEMBERS:
        CommitteeClient.of(owner.as_account(dev_account(i))).register(DEFAULT_MIN_MEMBER_STAKE)
    store = open_store("embedded", home=settings.home)
    files = write_example(tmp_path / "data", trainers=3, rounds=1, submission_window=600, committee_size=3)
    pid, _ = create_project(owner, store, files[0], settings.home)
    trainers = [owner.as_account(dev_account(10 + i)) for i in range(3)]
    for t in trainers:
        t.join(pid)
    nodes = []
    for i in MEMBERS:
        behaviour = liar_for(2) if i == 6 else (lambda post: post)
        node = AggregatorNode(
            owner.as_account(dev_account(i)),
            store,
            pid,
            None,
            tmp_path / f"state-{i}",
            log=lambda m: None,
            behaviour=behaviour,
        )
        node.validation = load_validation(files[1], node.spec)
        nodes.append(node)
    assert nodes[0].step() == "started round 0"
    committee = CommitteeClient.of(owner)
    assert sorted(committee.members_of(pid)) == sorted(dev_account(i).address for i in MEMBERS)

    ctx = load_round(owner, pid, 0, store=store)
    for i, t in enumerate(trainers):
        X, y = load_trainer_data(files[2 + i], ctx.spec)
        commit(t, pid, 0, store.add_bytes(make_update(ctx, pid, t.account.address, X[:100], y[:100], seed=i)))
    reveal_all(chain, pid, 0)
    said = [node.step() for node in nodes]  # everyone commits; the last one also reveals
    said += [node.step() for node in nodes]  # the others reveal; the last to reveal settles
    assert any("consensus settled" in s for s in said), said
    assert owner.round(pid, 0).phase == Phase.CHALLENGE

    posts = {p.member: p for p in committee.posts(pid, 0)}
    honest = posts[dev_account(1).address]
    other = posts[dev_account(5).address]
    # honest members agree on the scores and publish the same model bytes (reports carry their own timings)
    assert (other.weights, other.flags, other.model_cid) == (honest.weights, honest.flags, honest.model_cid)
    consensus = committee.consensus(pid, 0)
    assert consensus.weights == honest.weights and consensus.flags == honest.flags
    assert consensus.model_cid == honest.model_cid
    assert owner.result(pid, 0) == (honest.weights, honest.flags)
    (penalty,) = committee.penalties(pid, 0)
    assert penalty.member == dev_account(6).address and penalty.amount > 0
    assert committee.member(dev_account(6).address).stake == DEFAULT_MIN_MEMBER_STAKE - penalty.amount
    # the liar's stake went to the trainers the consensus paid
    assert sum(committee.owed(t.account.address) for t in trainers) == penalty.amount
    # and the nodes recorded what they committed, with its salt, so a restart reveals the same
    liar_state = nodes[2].state["rounds"]["0"]["member"]
    salt = bytes.fromhex(liar_state["salt"])
    lie = MemberPost(**liar_state["post"])
    assert lie == posts[dev_account(6).address]
    assert len(scores_commitment(lie.member, pid, 0, lie, salt)) == 32

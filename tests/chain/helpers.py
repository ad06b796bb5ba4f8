"""Building blocks for chain tests: a deployed market with named participants and a project config."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from eth_abi import encode
from eth_utils import keccak

from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, MarketClient, TestToken
from backend.chain.committee import CommitteeClient
from backend.chain.connection import Chain, dev_account
from backend.chain.types import ETH, MemberPost, ProjectConfig

ETHER = 10**18
VALIDATION_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
SALT = b"\x11" * 32


def commitment(cid: str = VALIDATION_CID, salt: bytes = SALT) -> bytes:
    return keccak(encode(["string", "bytes32"], [cid, salt]))


@dataclass
class Market:
    chain: Chain
    owner: MarketClient
    aggregator: MarketClient
    arbiter: MarketClient
    trainers: list[MarketClient]
    outsider: MarketClient

    def config(self, **overrides) -> ProjectConfig:
        base = ProjectConfig(
            asset=ETH,
            pool=10 * ETHER,
            stake=ETHER,
            aggregatorBond=2 * ETHER,
            disputeBond=ETHER // 2,
            aggregator=ETH,  # the committee: a committee of one drawn from the registry (the aggregator)
            arbiter=self.arbiter.account.address,
            rounds=2,
            minTrainers=2,
            maxTrainers=8,
            slashBps=5000,
            submissionWindow=600,
            aggregationWindow=600,
            challengePeriod=300,
            revealWindow=300,
            specCid="bafkreispecspecspecspecspecspecspecspecspecspecspecspecspe",
            initialModelCid="bafkreiinitialinitialinitialinitialinitialinitialinitiali",
            validationCommitment=commitment(),
        )
        return replace(base, **overrides)


def make_market(chain: Chain, trainers: int = 4) -> Market:
    owner = MarketClient.deploy(chain, dev_account(0))
    # The aggregator is the registry's only member, so every committee of one draws it.
    CommitteeClient.of(owner.as_account(dev_account(1))).register(DEFAULT_MIN_MEMBER_STAKE)
    return Market(
        chain=chain,
        owner=owner,
        aggregator=owner.as_account(dev_account(1)),
        arbiter=owner.as_account(dev_account(2)),
        trainers=[owner.as_account(dev_account(3 + i)) for i in range(trainers)],
        outsider=owner.as_account(dev_account(19)),
    )


def fund_tokens(market: Market, token: TestToken, amount: int) -> None:
    for client in [market.owner, market.aggregator, market.arbiter, *market.trainers, market.outsider]:
        token.mint(client.account.address, amount)


def start_project(market: Market, cfg: ProjectConfig, joiners: int | None = None) -> int:
    pid = market.owner.create_project(cfg)
    market.owner.post_aggregator_bond(pid)
    for trainer in market.trainers[: joiners if joiners is not None else len(market.trainers)]:
        trainer.join(pid)
    market.owner.start(pid)
    return pid


_PENDING: dict[tuple[int, int, int], list[tuple[MarketClient, str, bytes]]] = {}


def commit(client: MarketClient, pid: int, round_: int, cid: str) -> bytes:
    """Commit ``cid`` for ``client``; ``reveal_all`` reveals it after the deadline. Returns the salt."""
    salt = os.urandom(32)
    client.commit_update(pid, round_, cid, salt)
    _PENDING.setdefault((id(client.chain), pid, round_), []).append((client, cid, salt))
    return salt


def reveal_all(chain: Chain, pid: int, round_: int, skip: set[str] = frozenset()) -> None:
    """Past the submission deadline, every pending commitment of the round is revealed (except the
    trainers in ``skip``); then past the reveal deadline, so the round is Aggregating."""
    pending = _PENDING.pop((id(chain), pid, round_), [])
    if not pending:
        return
    first = pending[0][0]
    advance_past(chain, first.round(pid, round_).submission_deadline)
    for client, cid, salt in pending:
        if client.account.address not in skip:
            client.reveal_update(pid, round_, cid, salt)
    advance_past(chain, first.round(pid, round_).reveal_deadline)


def advance_past(chain: Chain, deadline: int) -> None:
    now = chain.now()
    if now <= deadline:
        chain.advance(deadline - now + 1)


def reveal_trainers(chain: Chain, pid: int, round_: int, trainers: list[MarketClient]) -> None:
    """Past the submission deadline, each trainer reveals what the trainer client committed (the salt
    from its commit store on disk); then past the reveal deadline."""
    from backend.trainer.client import reveal

    advance_past(chain, trainers[0].round(pid, round_).submission_deadline)
    for t in trainers:
        reveal(t, pid, round_, log=lambda m: None)
    advance_past(chain, trainers[0].round(pid, round_).reveal_deadline)


def committee_post(
    member: MarketClient, pid: int, round_: int, model_cid: str, report_cid: str, weights: list[int], flags: int
):
    """What one aggregator's postResult was: the sole committee member commits, reveals and settles
    these scores (a committee of one settles its own post). Returns the settle receipt."""
    committee = CommitteeClient.of(member)
    post = MemberPost(member.account.address, list(weights), int(flags), model_cid, report_cid)
    salt = bytes(32 - len(str(round_))) + str(round_).encode()
    committee.commit_scores(pid, round_, post, salt)
    committee.reveal_scores(pid, round_, post, salt)
    return committee.settle(pid, round_)

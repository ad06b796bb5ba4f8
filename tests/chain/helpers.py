"""Building blocks for chain tests: a deployed market with named participants and a project config."""
from __future__ import annotations

from dataclasses import dataclass, replace

from eth_abi import encode
from eth_utils import keccak

from backend.chain.client import MarketClient, TestToken
from backend.chain.connection import Chain, dev_account
from backend.chain.types import ETH, ProjectConfig

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
            asset=ETH, pool=10 * ETHER, stake=ETHER, aggregatorBond=2 * ETHER, disputeBond=ETHER // 2,
            aggregator=self.aggregator.account.address, arbiter=self.arbiter.account.address,
            rounds=2, minTrainers=2, maxTrainers=8, slashBps=5000,
            submissionWindow=600, aggregationWindow=600, challengePeriod=300,
            specCid="bafkreispecspecspecspecspecspecspecspecspecspecspecspecspe",
            initialModelCid="bafkreiinitialinitialinitialinitialinitialinitialinitiali",
            validationCommitment=commitment(),
        )
        return replace(base, **overrides)


def make_market(chain: Chain, trainers: int = 4) -> Market:
    owner = MarketClient.deploy(chain, dev_account(0))
    return Market(chain=chain, owner=owner, aggregator=owner.as_account(dev_account(1)),
                  arbiter=owner.as_account(dev_account(2)),
                  trainers=[owner.as_account(dev_account(3 + i)) for i in range(trainers)],
                  outsider=owner.as_account(dev_account(19)))


def fund_tokens(market: Market, token: TestToken, amount: int) -> None:
    for client in [market.owner, market.aggregator, market.arbiter, *market.trainers, market.outsider]:
        token.mint(client.account.address, amount)


def start_project(market: Market, cfg: ProjectConfig, joiners: int | None = None) -> int:
    pid = market.owner.create_project(cfg)
    market.aggregator.post_aggregator_bond(pid)
    for trainer in market.trainers[: joiners if joiners is not None else len(market.trainers)]:
        trainer.join(pid)
    market.owner.start(pid)
    return pid


def advance_past(chain: Chain, deadline: int) -> None:
    now = chain.now()
    if now <= deadline:
        chain.advance(deadline - now + 1)

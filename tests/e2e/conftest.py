"""A Marketplace deployed on a fresh Anvil, recorded where the CLI finds it, plus the embedded store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backend.chain.anvil import AnvilProcess
from backend.chain.committee import CommitteeClient
from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, MarketClient, save_deployment
from backend.chain.connection import Chain, connect, dev_account
from backend.config import Settings, get_settings
from backend.storage import open_store


@dataclass
class AnvilMarket:
    url: str
    chain: Chain
    owner: MarketClient
    store: object
    settings: Settings


@pytest.fixture
def anvil_market():
    settings = get_settings()
    with AnvilProcess() as node:
        chain = connect(node.url)
        owner = MarketClient.deploy(chain, dev_account(0))
        # dev:1 is the registry's aggregator: every committee of one draws it
        CommitteeClient.of(owner.as_account(dev_account(1))).register(DEFAULT_MIN_MEMBER_STAKE)
        save_deployment(settings.deployments_dir, owner.deployment())
        yield AnvilMarket(node.url, chain, owner, open_store("embedded", home=settings.home), settings)

"""Attach to the configured chain and market, with the configured signer: what every CLI command and
service does first."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from backend.chain.client import MarketClient, load_deployment
from backend.chain.committee import CommitteeClient
from backend.chain.connection import Chain, connect, dev_account
from backend.config import Settings
from backend.errors import ConfigError


def parse_key(value: str | None) -> LocalAccount | None:
    """A hex private key, or ``dev:N`` for the N-th development account of the test mnemonic."""
    if value is None or value == "":
        return None
    value = value.strip()
    if value.startswith("dev:"):
        try:
            index = int(value[4:])
        except ValueError:
            raise ConfigError(f"bad key {value!r}", "use dev:N with N a number, e.g. dev:1") from None
        if not 0 <= index < 1000:
            raise ConfigError(f"bad key {value!r}", "dev:N takes N from 0 to 999")
        return dev_account(index)
    try:
        return Account.from_key(value)
    except Exception:
        raise ConfigError(
            "the private key is not a 32-byte hex string",
            "pass --key 0x<64 hex digits> or dev:N, or set MERIT_PRIVATE_KEY",
        ) from None


def attach(
    settings: Settings, chain: Chain | None = None, market: str | None = None, key: str | None = None
) -> MarketClient:
    """The MarketClient for the configured chain and market address (or recorded deployment)."""
    chain = chain or connect(settings.chain, timeout=settings.rpc_timeout)
    address = market or settings.market
    if address is None:
        if chain.kind == "embedded":
            raise ConfigError(
                "the embedded chain lives only inside one process and has no deployed market",
                "use `merit demo`, or start Anvil with `merit chain up` and pass --chain http://127.0.0.1:8545",
            )
        address = load_deployment(settings.deployments_dir, chain.chain_id).marketplace
    secret = key if key is not None else (settings.private_key.get_secret_value() if settings.private_key else None)
    client = MarketClient(chain, _checksum(address), parse_key(secret), retries=settings.rpc_retries)
    client.check_code()
    return client


def _checksum(address: str) -> str:
    if not Web3.is_address(address):
        raise ConfigError(f"{address!r} is not an Ethereum address", "pass a 0x-prefixed 40-hex-digit address")
    return Web3.to_checksum_address(address)


def committee_of(market: MarketClient):
    """The market's committee client, or None where the market was deployed without a committee."""
    return CommitteeClient.of(market) if getattr(market.deployment(), "committee", None) else None

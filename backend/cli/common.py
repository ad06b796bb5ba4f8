"""What every command that talks to the market shares: options and how they resolve."""
from __future__ import annotations

from dataclasses import dataclass

import typer

from backend.config import Settings, get_settings, load_settings

CHAIN = typer.Option(None, "--chain", help="'embedded' or a JSON-RPC URL (default: MERIT_CHAIN)")
IPFS = typer.Option(None, "--ipfs", help="'embedded' or a Kubo RPC URL (default: MERIT_IPFS)")
MARKET = typer.Option(None, "--market", help="Marketplace address (default: $MERIT_HOME/deployments/<chain_id>.json)")
KEY = typer.Option(None, "--key", help="signing key: 0x<64 hex> or dev:N (default: MERIT_PRIVATE_KEY)")


@dataclass
class Context:
    settings: Settings
    market: object
    store: object


def settings_with(chain: str | None = None, ipfs: str | None = None) -> Settings:
    base = get_settings()
    overrides = {k: v for k, v in (("chain", chain), ("ipfs", ipfs)) if v is not None}
    return load_settings(**{**base.model_dump(exclude={"private_key"}), "private_key": base.private_key, **overrides}) \
        if overrides else base


def open_context(chain: str | None = None, ipfs: str | None = None, market: str | None = None,
                 key: str | None = None, need_store: bool = True) -> Context:
    from backend.chain.session import attach

    settings = settings_with(chain, ipfs)
    client = attach(settings, market=market, key=key)
    store = None
    if need_store:
        from backend.storage import open_store

        store = open_store(settings.ipfs, home=settings.home)
    return Context(settings=settings, market=client, store=store)


def wei(amount: int) -> str:
    return f"{amount / 10**18:.6f}".rstrip("0").rstrip(".") + " ETH" if amount else "0"

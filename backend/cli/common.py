"""What every command that talks to the market shares: options and how they resolve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from backend.config import Settings, check_endpoint, get_settings, load_settings


def _endpoint(value: str | None) -> str | None:
    """A malformed --chain/--ipfs is a usage error (exit 2, with the usage line), found before any work."""
    if value is None:
        return None
    try:
        return check_endpoint(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


# The options every command that talks to the market shares, defined once. A command declares
# ``chain: ChainOption = None``; where a command has its own default (the demo runs on the embedded
# chain whatever MERIT_CHAIN says), Typer shows it.
ChainOption = Annotated[
    Optional[str],
    typer.Option(
        "--chain",
        metavar="embedded|URL",
        callback=_endpoint,
        help="'embedded' (in-process EVM) or a JSON-RPC URL such as http://127.0.0.1:8545; unset: MERIT_CHAIN",
    ),
]
IpfsOption = Annotated[
    Optional[str],
    typer.Option(
        "--ipfs",
        metavar="embedded|URL",
        callback=_endpoint,
        help="'embedded' or a Kubo RPC URL such as http://127.0.0.1:5001; unset: MERIT_IPFS",
    ),
]
MarketOption = Annotated[
    Optional[str],
    typer.Option(
        "--market",
        metavar="ADDRESS",
        help="Marketplace address; unset: MERIT_MARKET, else $MERIT_HOME/deployments/<chain_id>.json",
    ),
]
KeyOption = Annotated[
    Optional[str],
    typer.Option(
        "--key",
        metavar="0xHEX|dev:N",
        help="signing key: 0x<64 hex> or dev:N (a test-mnemonic account); unset: MERIT_PRIVATE_KEY",
    ),
]


@dataclass
class Context:
    settings: Settings
    market: object
    store: object


def settings_with(chain: str | None = None, ipfs: str | None = None) -> Settings:
    base = get_settings()
    overrides = {k: v for k, v in (("chain", chain), ("ipfs", ipfs)) if v is not None}
    return (
        load_settings(**{**base.model_dump(exclude={"private_key"}), "private_key": base.private_key, **overrides})
        if overrides
        else base
    )


def open_context(
    chain: str | None = None,
    ipfs: str | None = None,
    market: str | None = None,
    key: str | None = None,
    need_store: bool = True,
) -> Context:
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

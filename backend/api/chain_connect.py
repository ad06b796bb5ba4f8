"""Open the ChainView that settings name: the embedded chain or a JSON-RPC node."""
from __future__ import annotations

from backend.api.chain_view import ChainView
from backend.config import Settings
from backend.errors import ConfigError


def open_chain_view(settings: Settings) -> ChainView:
    try:
        from backend.chain.client import MarketClient  # noqa: F401
    except ImportError:
        raise ConfigError("the chain client (backend.chain.client) is not installed",
                          "pass a chain_view to create_app") from None
    raise ConfigError("connecting MarketClient is not wired yet")

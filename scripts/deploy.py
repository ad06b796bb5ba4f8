"""Deploy the Marketplace.

Under eth-brownie: ``brownie run scripts/deploy.py --network development``.
Under plain Python: ``python scripts/deploy.py [RPC_URL]`` (the same as ``merit deploy --chain RPC_URL``).
"""

from __future__ import annotations

import sys


def main() -> str:
    try:
        from brownie import Marketplace, accounts  # type: ignore[attr-defined]
    except ImportError:
        return _plain_python(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8545")
    market = Marketplace.deploy({"from": accounts[0]})
    print(f"Marketplace deployed at {market.address}")
    return market.address


def _plain_python(url: str) -> str:
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from backend.chain.client import MarketClient, save_deployment
    from backend.chain.connection import connect, dev_account
    from backend.config import get_settings

    market = MarketClient.deploy(connect(url), dev_account(0))
    path = save_deployment(get_settings().deployments_dir, market.deployment())
    print(f"Marketplace deployed at {market.address} (recorded in {path})")
    return market.address


if __name__ == "__main__":
    main()

"""Deploy the aggregator committee (with its staked registry) and the Marketplace it scores for.

Under eth-brownie: ``brownie run scripts/deploy.py --network development``.
Under plain Python: ``python scripts/deploy.py [RPC_URL]`` (the same as ``merit deploy --chain RPC_URL``).
"""

from __future__ import annotations

import sys


def main() -> str:
    try:
        from brownie import Committee, Marketplace, accounts  # type: ignore[attr-defined]
    except ImportError:
        return _plain_python(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8545")
    deployer = accounts[0]
    # The committee is built for the Marketplace's address: the deployer's next contract after it.
    market_address = _create_address(deployer.address, deployer.nonce + 1)
    committee = Committee.deploy(market_address, EXIT_COOLDOWN, MIN_MEMBER_STAKE, {"from": deployer})
    market = Marketplace.deploy(committee.address, {"from": deployer})
    print(f"Committee deployed at {committee.address}")
    print(f"Marketplace deployed at {market.address}")
    return market.address


# The same registry terms as backend.chain.client.DEFAULT_EXIT_COOLDOWN / DEFAULT_MIN_MEMBER_STAKE
# (brownie runs this file in its own environment, without Merit's packages).
EXIT_COOLDOWN = 86_400
MIN_MEMBER_STAKE = 10**17


def _create_address(deployer: str, nonce: int) -> str:
    import rlp
    from eth_utils import keccak, to_checksum_address

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(deployer[2:]), nonce]))[12:])


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

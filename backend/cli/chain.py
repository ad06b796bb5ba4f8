"""`merit chain ...` and `merit deploy`: run a development chain and put the Marketplace on a chain."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

import signal
import time
from pathlib import Path

import typer
from rich.console import Console

from backend.cli.common import ChainOption, KeyOption
from backend.config import get_settings
from backend.errors import ChainError

app = typer.Typer(help="Run a local development chain (Anvil or Ganache).", no_args_is_help=True)
console = Console()


@app.command("up")
def up(
    port: int = typer.Option(8545, "--port", "-p", min=1, max=65535, help="JSON-RPC port"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    engine: str = typer.Option(
        "anvil", "--engine", help="anvil (Cancun) or ganache (Shanghai; `merit deploy` then picks the Shanghai build)"
    ),
    state: Path = typer.Option(
        None,
        "--state",
        help="where the chain state is loaded from and saved to (default: "
        "$MERIT_HOME/anvil-state.json, or the directory "
        "$MERIT_HOME/ganache-db for Ganache)",
    ),
    block_time: float = typer.Option(
        1.0,
        "--block-time",
        min=0,
        help="seconds between blocks; 0 mines only on transactions, which stops the contract's clock between them",
    ),
) -> None:
    """Start Anvil (or Ganache) from node_modules with persisted state, until Ctrl-C.

    Example: merit chain up --port 8545 --engine ganache
    """
    from backend.chain.anvil import dev_node
    from backend.chain.connection import dev_account

    settings = get_settings()
    node = dev_node(engine, port=port, host=host, block_time=block_time or None)  # refuses an unknown engine
    state = state or settings.home / ("anvil-state.json" if engine == "anvil" else "ganache-db")
    (state if engine == "ganache" else state.parent).mkdir(parents=True, exist_ok=True)
    node.state = state
    # Both signals stop it cleanly, SIGINT too where it was inherited as ignored (a script's background
    # job). The handlers go in before Anvil starts: a signal that arrives while it boots must not kill
    # this process and leave Anvil running without its state saved.
    stop = {"now": False}
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(now=True))
    # Round deadlines are judged by block timestamps: without steady blocks, an idle chain's clock
    # stands still and a round would never leave Open (hence the default block time).
    try:
        node.start()
        console.print(f"[green]{node.name}[/green] ({node.hardfork}) on {node.url} (chain state: {state})")
        console.print(f"dev accounts: dev:0 = {dev_account(0).address} ... dev:19 (keys from the test mnemonic)")
        console.print(f"next: merit deploy --chain {node.url}")
        while not stop["now"] and node.proc is not None and node.proc.poll() is None:
            time.sleep(0.5)
        crashed = None if stop["now"] or node.proc is None else node.proc.poll()
    finally:
        node.stop()
    if crashed is not None:
        raise ChainError(
            f"{node.name} exited on its own with code {crashed}; its state may not be saved",
            f"check {state} and start it again with `merit chain up --engine {engine}`",
        )
    console.print(f"{node.name} stopped; state saved")


def deploy_command(
    chain: ChainOption = None,
    key: KeyOption = "dev:0",
    test_token: bool = typer.Option(False, "--test-token", help="also deploy the test ERC-20 (dev chains)"),
) -> None:
    """Deploy the Marketplace and record it in $MERIT_HOME/deployments/<chain_id>.json.

    Example: merit deploy --chain http://127.0.0.1:8545
    """
    from backend.chain.client import MarketClient, TestToken, save_deployment
    from backend.chain.connection import connect
    from backend.chain.session import parse_key
    from backend.errors import ConfigError

    settings = get_settings()
    spec = chain or settings.chain
    if spec == "embedded":
        raise ConfigError(
            "the embedded chain lives only inside one process, so a deployment there is lost at once",
            "start Anvil with `merit chain up`, then `merit deploy --chain http://127.0.0.1:8545`",
        )
    node = connect(spec, timeout=settings.rpc_timeout)
    account = parse_key(key)
    market = MarketClient.deploy(node, account)
    deployment = market.deployment()
    if test_token:
        deployment.test_token = TestToken.deploy(node, account).address
    path = save_deployment(settings.deployments_dir, deployment)
    console.print(
        f"Marketplace at [bold]{market.address}[/bold] on chain {deployment.chain_id} "
        f"(block {deployment.block}, gas {market.deploy_receipt.gas_used:,}; {deployment.evm} build"
        + (", storage reentrancy guard" if deployment.evm != "cancun" else "")
        + ")"
    )
    console.print(
        f"Committee (every project's aggregator) at {deployment.committee}, registry at {deployment.registry}"
    )
    if deployment.test_token:
        console.print(f"TestToken at {deployment.test_token}")
    console.print(f"recorded in {path}")


@app.command("wait")
def wait(
    chain: ChainOption = None,
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, max=86_400, help="seconds to wait"),
) -> None:
    """Wait until a JSON-RPC node answers (for scripts that just started one).

    Example: merit chain up & merit chain wait --chain http://127.0.0.1:8545
    """
    from backend.chain.connection import wait_for_rpc
    from backend.errors import ConfigError

    url = chain or get_settings().chain
    if url == "embedded":
        raise ConfigError("the embedded chain needs no waiting", "pass --chain http://HOST:PORT")
    wait_for_rpc(url, timeout=timeout)
    console.print(f"{url} is up")

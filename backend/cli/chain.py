"""`merit chain ...` and `merit deploy`: run a development chain and put the Marketplace on a chain."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import typer
from rich.console import Console

from backend.cli.common import ChainOption, KeyOption
from backend.config import get_settings
from backend.errors import ChainError

app = typer.Typer(help="Run a local development chain (Anvil).", no_args_is_help=True)
console = Console()


@app.command("up")
def up(
    port: int = typer.Option(8545, "--port", "-p", min=1, max=65535, help="JSON-RPC port"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    state: Path = typer.Option(None, "--state", help="file the chain state is loaded from and saved to "
                                                      "(default: $MERIT_HOME/anvil-state.json)"),
    block_time: float = typer.Option(1.0, "--block-time", min=0, help="seconds between blocks; 0 mines only on "
                                     "transactions, which stops the contract's clock between them"),
) -> None:
    """Start Anvil from node_modules with persisted state, until Ctrl-C.

    Example: merit chain up --port 8545
    """
    from backend.chain.anvil import AnvilProcess
    from backend.chain.connection import dev_account

    settings = get_settings()
    state = state or settings.home / "anvil-state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    # Both signals stop it cleanly, SIGINT too where it was inherited as ignored (a script's background
    # job). The handlers go in before Anvil starts: a signal that arrives while it boots must not kill
    # this process and leave Anvil running without its state saved.
    stop = {"now": False}
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(now=True))
    # Round deadlines are judged by block timestamps: without steady blocks, an idle chain's clock
    # stands still and a round would never leave Open.
    node = AnvilProcess(port=port, state=state, host=host, block_time=block_time or None)
    try:
        node.start()
        console.print(f"[green]Anvil[/green] on {node.url} (chain state: {state})")
        console.print(f"dev accounts: dev:0 = {dev_account(0).address} ... dev:19 (keys from the test mnemonic)")
        console.print(f"next: merit deploy --chain {node.url}")
        while not stop["now"] and node.proc is not None and node.proc.poll() is None:
            time.sleep(0.5)
        crashed = None if stop["now"] or node.proc is None else node.proc.poll()
    finally:
        node.stop()
    if crashed is not None:
        raise ChainError(f"Anvil exited on its own with code {crashed}; its state may not be saved",
                         f"check {state} and start it again with `merit chain up`")
    console.print("Anvil stopped; state saved")


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
        raise ConfigError("the embedded chain lives only inside one process, so a deployment there is lost at once",
                          "start Anvil with `merit chain up`, then `merit deploy --chain http://127.0.0.1:8545`")
    node = connect(spec, timeout=settings.rpc_timeout)
    account = parse_key(key)
    market = MarketClient.deploy(node, account)
    deployment = market.deployment()
    if test_token:
        deployment.test_token = TestToken.deploy(node, account).address
    path = save_deployment(settings.deployments_dir, deployment)
    console.print(f"Marketplace at [bold]{market.address}[/bold] on chain {deployment.chain_id} "
                  f"(block {deployment.block}, gas {market.deploy_receipt.gas_used:,})")
    if deployment.test_token:
        console.print(f"TestToken at {deployment.test_token}")
    console.print(f"recorded in {path}")


@app.command("wait")
def wait(
    chain: ChainOption = None,
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="seconds to wait"),
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

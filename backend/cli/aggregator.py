"""`merit aggregator run`: the operator's daemon."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

from pathlib import Path

import typer

from backend.cli.common import ChainOption, IpfsOption, KeyOption, MarketOption, open_context

app = typer.Typer(help="Aggregator operators: run the node that scores rounds and posts results.", no_args_is_help=True)


@app.command("run")
def run(
    project_id: int = typer.Argument(..., min=1),
    validation: Path = typer.Option(..., "--validation", help="the owner's validation set (.npz with X, y)"),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="seconds between looks at the chain"),
    once: bool = typer.Option(False, "--once", help="take one step and exit"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes for coalition evaluations"),
    fail_after: str = typer.Option(None, "--fail-after", hidden=True, help="fault injection for tests"),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Follow a project and run each round when its submission window closes, until the project ends.

    Restart-safe: state lives in $MERIT_HOME/aggregator; a restarted node resumes and never posts twice.

    Example: merit aggregator run 1 --validation validation.npz --key dev:1
    """
    from aggregator.node import AggregatorNode
    from backend.data import load_validation

    ctx = open_context(chain, ipfs, market, key)
    executor = None
    if workers > 1:
        from aggregator.executors import make_executor

        executor = make_executor("process", max_workers=workers)
    from rich.console import Console

    spinner = Console(stderr=True)
    node = AggregatorNode(
        ctx.market,
        ctx.store,
        project_id,
        validation=None,
        state_dir=ctx.settings.home / "aggregator",
        executor=executor,
        fail_after=fail_after,
        busy=lambda message: spinner.status(message),
    )
    node.validation = load_validation(validation, node.spec)
    if once:
        node.log(node.step())
        return
    node.log(f"aggregating project {project_id} as {ctx.market.account.address}")
    node.run(poll_seconds=poll)

"""`merit aggregator ...`: the operator's registry stake and daemon.

merit aggregator register --stake "0.1 ether"     # stake in the registry: committees may draw you
merit aggregator run [PROJECT] --validation FILE   # score the projects you were drawn for
merit aggregator exit / withdraw                   # leave after the cooling-off period
"""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

from pathlib import Path

import typer

from rich.console import Console

from backend.errors import shorten
from backend.cli.common import ChainOption, IpfsOption, KeyOption, MarketOption, open_context, wei

console = Console()

app = typer.Typer(
    help="Aggregator operators: stake in the registry, then run the node that scores the projects you are drawn for.",
    no_args_is_help=True,
)


def _committee(chain, market, key):
    from backend.chain.committee import CommitteeClient

    ctx = open_context(chain, None, market, key, need_store=False)
    return ctx, CommitteeClient.of(ctx.market)


@app.command("register")
def register(
    stake: str = typer.Option(..., "--stake", help='ETH to stake, e.g. "0.1 ether" (adds to an existing stake)'),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Stake ETH in the aggregator registry, so that project committees can draw you.

    Example: merit aggregator register --stake "0.1 ether" --key dev:1
    """
    from backend.errors import ConfigError
    from backend.project import parse_amount

    try:
        amount = parse_amount(stake)
    except ValueError as exc:
        raise ConfigError(f"--stake {shorten(stake, 40)!r}: {exc}", 'write an amount like "0.1 ether"') from None
    _, committee = _committee(chain, market, key)
    receipt = committee.register(amount)
    me = committee.member(committee.market.account.address)
    console.print(f"registered {me.address} with {wei(me.stake)} staked (gas {receipt.gas_used:,})")


@app.command("exit")
def exit_(chain: ChainOption = None, market: MarketOption = None, key: KeyOption = None) -> None:
    """Stop being drawn; your stake can be withdrawn after the cooling-off period.

    Example: merit aggregator exit --key dev:1
    """
    _, committee = _committee(chain, market, key)
    committee.request_exit()
    me = committee.member(committee.market.account.address)
    console.print(f"{me.address} leaves the registry: withdraw from {me.exit_at} (unix time) once no project holds it")


@app.command("withdraw")
def withdraw(chain: ChainOption = None, market: MarketOption = None, key: KeyOption = None) -> None:
    """Take your whole stake back (after `exit`, its cooling-off period, and your projects' end).

    Example: merit aggregator withdraw --key dev:1
    """
    _, committee = _committee(chain, market, key)
    before = committee.member(committee.market.account.address).stake
    committee.withdraw()
    console.print(f"withdrew {wei(before)}")


@app.command("run")
def run(
    project_id: int = typer.Argument(
        None, min=1, help="the project (default: the one running project you were drawn for)"
    ),
    validation: Path = typer.Option(..., "--validation", help="the owner's validation set (.npz with X, y)"),
    validation_salt: str = typer.Option(
        None,
        "--validation-salt",
        help="the owner's salt (0x + 64 hex), to check the validation set against its on-chain commitment",
    ),
    poll: float = typer.Option(2.0, "--poll", min=0.1, max=3_600, help="seconds between looks at the chain"),
    once: bool = typer.Option(False, "--once", help="take one step and exit"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes for coalition evaluations"),
    fail_after: str = typer.Option(None, "--fail-after", hidden=True, help="fault injection for tests"),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Score a project whose committee drew you: each round, commit, reveal and settle, until it ends.

    Without PROJECT, the node takes the one running project whose committee includes your address.
    Restart-safe: state lives in $MERIT_HOME/aggregator; a restarted node resumes and never posts twice.

    Example: merit aggregator run 1 --validation validation.npz --key dev:1
    """
    from aggregator.node import AggregatorNode
    from backend.data import load_validation

    ctx = open_context(chain, ipfs, market, key)
    if project_id is None:
        project_id = _drawn_project(ctx.market)
    console.print(_checked_validation(ctx.market, project_id, validation, validation_salt))
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


def _checked_validation(market, project_id: int, path: Path, salt_hex: str | None) -> str:
    """Checks the validation file against the project's on-chain commitment (or revealed CID); says what was checked."""
    from backend.errors import ConfigError
    from backend.project import check_validation_file

    salt = None
    if salt_hex is not None:
        try:
            salt = bytes.fromhex(salt_hex.removeprefix("0x"))
        except ValueError:
            raise ConfigError(f"--validation-salt {salt_hex!r} is not hex", "pass the owner's 0x… salt") from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the validation file {path}: {exc.strerror}", "check the path") from None
    committed = market.config(project_id).validationCommitment
    return check_validation_file(data, committed, market.project(project_id).validation_cid, salt)


def _drawn_project(market) -> int:
    """The one running project whose committee drew this key's address."""
    from backend.chain.committee import CommitteeClient
    from backend.chain.types import Status
    from backend.errors import ConfigError

    me = market.account.address
    running = [
        pid for pid in CommitteeClient.of(market).projects_of(me) if market.project(pid).status == Status.RUNNING
    ]
    if len(running) != 1:
        raise ConfigError(
            f"{me} sits on {len(running)} running committees ({', '.join(map(str, running)) or 'none'})",
            "name the project: `merit aggregator run PROJECT --validation FILE`"
            if running
            else "register with `merit aggregator register --stake AMOUNT` and wait to be drawn at a project's start",
        )
    return running[0]

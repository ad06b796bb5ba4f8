"""`merit trainer ...`: what a trainer does. The training data never leaves this machine."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from backend.cli.common import ChainOption, IpfsOption, KeyOption, MarketOption, open_context, wei
from backend.errors import MeritError

app = typer.Typer(help="Trainers: join, train on private data, submit updates, claim rewards.", no_args_is_help=True)
console = Console()

DATA = typer.Option(
    ..., "--data", help="your training data: .npz (X, y), .csv (label column + features) or an image folder"
)
API = typer.Option(None, "--api", help="use a Merit REST API at this URL (spec, model, uploads) instead of storage")
LABEL = typer.Option("label", "--label-column", help="CSV label column (name or index)")


def _api(url: str | None, key: str | None, settings):
    url = url or settings.api_url
    if not url:
        return None
    from backend.chain.session import parse_key
    from backend.trainer.api_client import ApiClient

    account = parse_key(
        key if key is not None else (settings.private_key.get_secret_value() if settings.private_key else None)
    )
    return ApiClient(url, private_key=account.key if account else None)


def _epoch_bar(progress: Progress, round_: int, total: int | None = None):
    task = progress.add_task(f"round {round_}: training", total=total)

    def update(epoch: int, epochs: int, loss: float) -> None:
        progress.update(
            task, total=epochs, completed=epoch, description=f"round {round_}: epoch {epoch}/{epochs} loss {loss:.3f}"
        )

    return update


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console)


def _open(chain, ipfs, market, key, api):
    """The trainer's context and API client. With an API (``--api`` or ``MERIT_API_URL``) no store
    is opened: the spec and the model come from the API, checked against the chain, and updates go
    to it."""
    from backend.cli.common import settings_with

    url = api or settings_with(chain, ipfs).api_url
    ctx = open_context(chain, ipfs, market, key, need_store=not url)
    return ctx, _api(url, key, ctx.settings)


def _load_data(ctx, client, project_id: int, data: Path, label_column: str):
    from backend.data import load_trainer_data
    from backend.trainer.client import fetch_spec

    spec = fetch_spec(ctx.market, project_id, ctx.store, client)
    column: str | int = int(label_column) if label_column.isdigit() else label_column
    return load_trainer_data(data, spec, label_column=column)


@app.command("join")
def join(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Join a project by paying its stake.

    Example: merit trainer join 1 --key dev:3
    """
    ctx = open_context(chain, None, market, key, need_store=False)
    stake = ctx.market.config(project_id).stake
    ctx.market.join(project_id)
    console.print(f"{ctx.market.account.address} joined project {project_id} (stake {wei(stake)})")


@app.command("train")
def train(
    project_id: int = typer.Argument(..., min=1),
    data: Path = DATA,
    seed: int = typer.Option(0, "--seed"),
    api: str = API,
    label_column: str = LABEL,
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Train on your data for the open round, upload the update and commit it on-chain.

    Example: merit trainer train 1 --data my-digits.npz --key dev:3
    """
    from backend.trainer.client import train_round

    ctx, client = _open(chain, ipfs, market, key, api)
    X, y = _load_data(ctx, client, project_id, data, label_column)
    round_ = ctx.market.project(project_id).current_round
    with _progress() as progress:
        train_round(
            ctx.market,
            project_id,
            X,
            y,
            store=ctx.store,
            api=client,
            seed=seed,
            progress=_epoch_bar(progress, round_),
            log=console.print,
        )


@app.command("reveal")
def reveal_cmd(
    project_id: int = typer.Argument(..., min=1),
    round_: int = typer.Option(None, "--round", min=0),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Reveal the update you committed for the current round (after its submission deadline).

    Example: merit trainer reveal 1 --key dev:3
    """
    from backend.trainer.client import reveal

    ctx = open_context(chain, None, market, key, need_store=False)
    r = ctx.market.project(project_id).current_round if round_ is None else round_
    if reveal(ctx.market, project_id, r, log=console.print) is None:
        raise MeritError(
            f"no pending commitment for round {r} of project {project_id} from {ctx.market.account.address}",
            "commit one first with `merit trainer train` during the round's Open phase",
        )


@app.command("run")
def run(
    project_id: int = typer.Argument(..., min=1),
    data: Path = DATA,
    seed: int = typer.Option(0, "--seed"),
    api: str = API,
    label_column: str = LABEL,
    poll: float = typer.Option(2.0, "--poll", min=0.1),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Take part in every round until the project ends, then claim rewards and withdraw the stake.

    Example: merit trainer run 1 --data my-digits.npz --key dev:3
    """
    from backend.trainer.client import run_trainer

    ctx, client = _open(chain, ipfs, market, key, api)
    X, y = _load_data(ctx, client, project_id, data, label_column)
    console.print(f"training for project {project_id} as {ctx.market.account.address} on {len(y)} examples")
    with _progress() as progress:
        result = run_trainer(
            ctx.market,
            project_id,
            X,
            y,
            store=ctx.store,
            api=client,
            seed=seed,
            poll_seconds=poll,
            log=console.print,
            progress_factory=lambda r: _epoch_bar(progress, r),
        )
    share = result.get("end_pot_share", 0)
    console.print(
        f"done: claimed {wei(result['claimed'])}, stake returned {wei(result['stake_returned'])}"
        + (f", end-pot share {wei(share)}" if share else "")
    )


@app.command("claim")
def claim(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Claim your credited rewards.

    Example: merit trainer claim 1 --key dev:3
    """
    from backend.errors import MeritError
    from backend.trainer.client import claim_and_withdraw

    ctx = open_context(chain, None, market, key, need_store=False)
    result = claim_and_withdraw(ctx.market, project_id, log=lambda m: None, withdraw=False)
    if not result["claimed"]:
        raise MeritError("nothing to claim yet", "rewards are credited when a round is finalized")
    console.print(f"claimed {wei(result['claimed'])}")


@app.command("withdraw")
def withdraw(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Withdraw your stake (minus slashes) after the project ended or was cancelled, with your share of
    what the project left for its trainers (the end pot), if any.

    Example: merit trainer withdraw 1 --key dev:3
    """
    ctx = open_context(chain, None, market, key, need_store=False)
    stake = ctx.market.trainer(project_id, ctx.market.account.address).stake
    paid = ctx.market.withdraw_stake_paid(project_id)
    share = paid - min(paid, stake)
    console.print(
        f"withdrew stake {wei(min(paid, stake))}" + (f" and an end-pot share of {wei(share)}" if share else "")
    )

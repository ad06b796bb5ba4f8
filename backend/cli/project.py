"""`merit project ...`: what a project owner does."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from backend.chain.session import committee_of
from backend.chain.types import WEIGHT_SCALE
from backend.cli.common import ChainOption, IpfsOption, KeyOption, MarketOption, open_context, wei
from backend.errors import MeritError

if TYPE_CHECKING:
    from aggregator.report import RoundReport

app = typer.Typer(help="Project owners: create, watch, cancel and close projects.", no_args_is_help=True)
console = Console()


@app.command("create")
def create(
    spec: Path = typer.Option(..., "--spec", help="project spec file (YAML or JSON); see README"),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Upload the model spec, initial weights and validation set, escrow the reward pool, create the project.

    Example: merit project create --spec project.yaml --chain http://127.0.0.1:8545 --key dev:0
    """
    from backend.project import create_project, load_spec_file

    load_spec_file(spec)  # every problem in the file, before touching the chain
    ctx = open_context(chain, ipfs, market, key)
    pid, record = create_project(ctx.market, ctx.store, spec, ctx.settings.home)
    console.print(f"created project [bold]{pid}[/bold] (gas {ctx.market.last_receipt.gas_used:,})")
    console.print(f"  model spec      {record['spec_cid']}")
    console.print(f"  initial weights {record['initial_model_cid']}")
    console.print(f"  validation set  committed; its CID and salt are kept in {ctx.settings.home / 'projects'}")
    console.print(f"next: the aggregator runs `merit aggregator run {pid}`; trainers `merit trainer join {pid}`")


@app.command("list")
def list_(chain: ChainOption = None, market: MarketOption = None) -> None:
    """List the market's projects.

    Example: merit project list --chain http://127.0.0.1:8545
    """
    ctx = open_context(chain, None, market, key="", need_store=False)
    table = Table(title=f"projects on {ctx.market.address}")
    for column in ("id", "status", "round", "trainers", "pool", "owner"):
        table.add_column(column)
    for pid in ctx.market.project_ids():
        cfg, info = ctx.market.config(pid), ctx.market.project(pid)
        table.add_row(
            str(pid),
            info.status.label,
            f"{info.current_round}/{cfg.rounds}",
            f"{info.trainer_count}/{cfg.maxTrainers}",
            wei(cfg.pool) if cfg.is_eth else str(cfg.pool),
            info.owner,
        )
    console.print(table)


def _report(store, cid: str | None) -> RoundReport | None:
    """A round report from storage, or None if it cannot be had (status still shows the chain's view)."""
    from aggregator.report import ReportError, fetch_report
    from backend.errors import StorageError

    if not cid or store is None:
        return None
    try:
        return fetch_report(store, cid)
    except (StorageError, ReportError):
        return None


@app.command("status")
def status(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
) -> None:
    """Show a project's rounds: state, submissions, scores, flags and rewards.

    Example: merit project status 1
    """
    from backend.chain.history import round_history

    ctx = open_context(chain, ipfs, market, key="")
    cfg, info = ctx.market.config(project_id), ctx.market.project(project_id)
    console.print(
        f"[bold]project {project_id}[/bold]: {info.status.label}, round {info.current_round} of {cfg.rounds}, "
        f"{info.trainer_count} trainers, pool {wei(cfg.pool)}, carry {wei(info.carry)}"
    )
    if info.status.label == "Running":
        r = ctx.market.round(project_id, info.current_round)
        now = ctx.market.chain.now()
        console.print(
            f"round {info.current_round}: {r.phase.label}; submissions close in "
            f"{max(0, r.submission_deadline - now)}s, aggregation deadline in {max(0, r.aggregation_deadline - now)}s"
        )
    committee = committee_of(ctx.market)
    for rec in round_history(ctx.market, project_id):
        report = _report(ctx.store, rec.report_cid)
        details = {t.index: t for t in report.trainers} if report else {}
        table = Table(
            title=f"round {rec.round}: {'final' if rec.finalized else 'in progress'}"
            + (f", model {rec.global_model_cid}" if rec.global_model_cid else "")
        )
        for column in ("#", "trainer", "score", "weight", "flagged", "reason", "reward", "slashed"):
            table.add_column(column)
        for i, (trainer, _cid) in enumerate(rec.submissions):
            flagged = bool(rec.flags >> i & 1) if rec.weights else None
            detail = details.get(i)
            score = detail.score if detail else None
            table.add_row(
                str(i),
                trainer,
                "-" if score is None else f"{score:.4f}",
                f"{rec.weights[i] / WEIGHT_SCALE:.4f}" if rec.weights else "-",
                "-" if flagged is None else ("[red]yes[/red]" if flagged else "no"),
                (detail.reason if detail else None) or "",
                wei(rec.rewards.get(trainer, 0)),
                wei(rec.slashes.get(trainer, 0)),
            )
        console.print(table)
        if rec.report_cid:
            console.print(f"  report {rec.report_cid}" + ("" if report else " (not in this store)"))
        if committee is not None:
            console.print(committee_table(committee, project_id, rec.round))


def committee_table(committee, pid: int, round_: int) -> Table:
    """The round's committee: each member's post (top share, flags) and penalty, then the consensus."""
    posts = {p.member.lower(): p for p in committee.posts(pid, round_)}
    lost = {p.member.lower(): p for p in committee.penalties(pid, round_)}
    table = Table(title=f"round {round_}: committee")
    for column in ("member", "revealed", "largest share", "flagged", "penalty", "distance"):
        table.add_column(column)
    rows = [(m, posts.get(m.lower())) for m in committee.members_of(pid)]
    settled = committee.consensus(pid, round_)
    if settled is not None:
        rows.append(("consensus", settled))
    for member, post in rows:
        penalty = lost.get(member.lower())
        table.add_row(
            member,
            "-" if member == "consensus" else ("yes" if post else "[red]no[/red]"),
            _largest_share(post.weights) if post else "-",
            ",".join(str(i) for i in range(len(post.weights)) if post.flags >> i & 1) or "none" if post else "-",
            f"[red]{wei(penalty.amount)}[/red]" if penalty else "0",
            f"{penalty.share_distance_bps} bps, {penalty.flag_disagreements} flags" if penalty else "",
        )
    return table


def _largest_share(weights: list[int]) -> str:
    total = sum(weights)
    if not total:
        return "nobody paid"
    top = max(range(len(weights)), key=lambda i: weights[i])
    return f"#{top}: {weights[top] / total:.0%}"


@app.command("cancel")
def cancel(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a project: budgets of rounds that never had a submission become withdrawable; a round
    with commitments still settles to its trainers, and the project closes after it.

    Example: merit project cancel 1 --key dev:0
    """
    ctx = open_context(chain, None, market, key, need_store=False)
    ctx.market.cancel(project_id)
    if ctx.market.project(project_id).status.name == "CANCELLED":
        console.print(
            f"project {project_id} cancelled; withdraw what is left with `merit project withdraw {project_id}`"
        )
    else:
        console.print(
            f"project {project_id} cancelled after its current round, which has submissions and still "
            f"settles to its trainers; then withdraw with `merit project withdraw {project_id}`"
        )


@app.command("evict")
def evict(
    project_id: int = typer.Argument(..., min=1),
    trainer: str = typer.Argument(..., help="the trainer's address"),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Free the slot of a trainer that missed two rounds in a row (anyone may do it).

    Example: merit project evict 1 0x90F79bf6EB2c4f870365E785982E1f101E93b906 --key dev:5
    """
    from web3 import Web3

    if not Web3.is_address(trainer):
        raise MeritError(f"{trainer!r} is not an Ethereum address", "pass a 0x-prefixed 40-hex-digit address")
    ctx = open_context(chain, None, market, key, need_store=False)
    ctx.market.evict(project_id, trainer)
    console.print(f"evicted {Web3.to_checksum_address(trainer)} from project {project_id}: its slot is free")


@app.command("withdraw")
def withdraw(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Withdraw the owner's remainder (budgets of rounds without a submission) after the project ended or was cancelled.

    Example: merit project withdraw 1 --key dev:0
    """
    ctx = open_context(chain, None, market, key, need_store=False)
    receipt = ctx.market.withdraw_remainder(project_id)
    amount = ctx.market.events("RemainderWithdrawn", project_id, from_block=receipt.block_number)[-1]["amount"]
    console.print(f"withdrew {wei(amount)}")


@app.command("reveal")
def reveal(
    project_id: int = typer.Argument(..., min=1),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
    key: KeyOption = None,
) -> None:
    """Publish the validation set (CID and salt), so anyone can `merit verify` every round.

    Example: merit project reveal 1 --key dev:0
    """
    from backend.project import load_secrets, secrets_path

    ctx = open_context(chain, ipfs, market, key)
    secret = load_secrets(secrets_path(ctx.settings.home, ctx.market.chain.chain_id, ctx.market.address, project_id))
    if not ctx.store.has(secret["validation_cid"]):
        ctx.store.add_path(secret["validation_file"])
    ctx.store.pin(secret["validation_cid"])
    ctx.market.reveal_validation(project_id, secret["validation_cid"], bytes.fromhex(secret["salt"][2:]))
    console.print(f"validation set {secret['validation_cid']} revealed")


@app.command("export")
def export(
    project_id: int = typer.Argument(..., min=1),
    out: Path = typer.Option(..., "--out", help="file to write"),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
) -> None:
    """Write the project's current global model (safetensors), verified against its on-chain CID.

    Example: merit project export 1 --out model.safetensors
    """
    ctx = open_context(chain, ipfs, market, key="")
    cid = ctx.market.global_model_cid(project_id)
    size = ctx.store.get_to_path(cid, out)
    console.print(f"wrote {out} ({size:,} bytes, CID {cid})")


@app.command("example")
def example(
    out: Path = typer.Argument(..., help="directory to write project.yaml, validation.npz and trainer data into"),
    trainers: int = typer.Option(2, "--trainers", min=1, max=16, help="how many trainer data files"),
    rounds: int = typer.Option(2, "--rounds", min=1, max=100),
    submission_window: int = typer.Option(30, "--submission-window", min=5, help="seconds a round is open"),
    challenge_period: int = typer.Option(10, "--challenge-period", min=0),
    committee: int = typer.Option(1, "--committee", min=1, max=7, help="committee size (odd): members drawn at start"),
    arbiter: str = typer.Option("dev:2", "--arbiter", help="arbiter address, or dev:N"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="numpy seed of the example data"),
) -> None:
    """Write a ready-to-use MNIST project: spec file, validation set and one data file per trainer.

    Example: merit project example walkthrough --trainers 2
    """
    from backend.project import write_example

    paths = write_example(
        out,
        trainers=trainers,
        rounds=rounds,
        submission_window=submission_window,
        challenge_period=challenge_period,
        arbiter=arbiter,
        seed=seed,
        committee_size=committee,
    )
    for path in paths:
        console.print(f"wrote {path}")

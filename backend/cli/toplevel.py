"""Top-level commands that belong to no group: deploy, verify, demo."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import ChainOption, IpfsOption, MarketOption


def register(app: typer.Typer) -> None:
    from backend.cli.chain import deploy_command

    app.command("deploy")(deploy_command)
    app.command("verify")(verify_command)
    app.command("demo")(demo_command)


def verify_command(
    project_id: int = typer.Argument(..., min=1),
    round_: list[int] = typer.Option(None, "--round", help="round(s) to verify (default: all with a result)"),
    validation: Path = typer.Option(
        None, "--validation", help="validation set (.npz), if the owner has not revealed it"
    ),
    chain: ChainOption = None,
    ipfs: IpfsOption = None,
    market: MarketOption = None,
) -> None:
    """Re-execute rounds from chain and IPFS data and check the posted weights, flags and model.

    Exits 0 only if every round matches within the stated tolerance.

    Example: merit verify 1 --chain http://127.0.0.1:8545
    """
    from rich.console import Console

    from aggregator.verify import MODEL_TOLERANCE, WEIGHT_TOLERANCE, verify_project
    from backend.chain.session import committee_of
    from backend.cli.common import open_context

    console = Console()
    ctx = open_context(chain, ipfs, market, key="")
    data = None
    if validation is not None:
        from backend.data import load_validation
        from backend.models.spec import fetch_model_spec

        spec = fetch_model_spec(ctx.store, ctx.market.config(project_id).specCid)
        data = load_validation(validation, spec)
    with console.status("re-executing rounds"):
        verdicts = verify_project(
            ctx.market,
            ctx.store,
            project_id,
            validation=data,
            rounds=round_ or None,
            progress=lambda r: console.print(f"round {r} re-executed"),
            committee=committee_of(ctx.market),
        )
    if not verdicts:
        console.print("no round has a posted result yet")
    for v in verdicts:
        _print_members(console, v.members)
        if v.ok:
            console.print(f"round {v.round}: [green]match[/green]")
            continue
        console.print(f"round {v.round}: [red]MISMATCH[/red]")
        for problem in v.problems:
            console.print(f"  {problem}")
        for d in v.differing:
            console.print(
                f"  trainer {d['index']} {d['address']}: {d['field']} posted {d['posted']}, recomputed {d['recomputed']}"
            )
    console.print(
        f"tolerance: weights ±{WEIGHT_TOLERANCE:g} of the round total, model ±{MODEL_TOLERANCE:g}; flags exact"
    )
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


def _print_members(console, members: list[dict]) -> None:
    """One line per committee member: its distance from the recomputed post and what the contract did."""
    for m in members:
        if not m["revealed"]:
            verdict = "never revealed"
        else:
            verdict = (
                f"{m.get('share_distance_bps', '?')} bps of shares and {m.get('flag_disagreements', '?')} flags "
                f"from the recomputed post ({'honest' if m.get('honest') else 'DEVIATES'})"
            )
        penalty = "penalised" if m["penalised"] else "not penalised"
        rule = "" if m["penalised"] == m["penalised_by_rule"] else " [red](the rule says otherwise)[/red]"
        console.print(f"  member {m['address']}: {verdict}; {penalty}{rule}")


def demo_command(
    trainers: int = typer.Option(8, "--trainers", min=1, max=64, help="number of trainers"),
    rounds: int = typer.Option(5, "--rounds", min=1, max=100),
    attackers: str = typer.Option(
        "sign_flip:1,free_rider:1,label_flip:1",
        "--attackers",
        help="comma-separated kind:count; kinds: label_flip, sign_flip, noise, scale, free_rider, copycat, "
        "alie, ipm, min_max, noisy_copycat, delta_free_rider, sybil, backdoor",
    ),
    seed: int = typer.Option(0, "--seed"),
    chain: ChainOption = "embedded",
    ipfs: IpfsOption = "embedded",
    out: Path = typer.Option(Path("merit-demo"), "--out", help="directory for report.json and the plots"),
    json_out: bool = typer.Option(False, "--json", help="print the report path last, for scripts"),
    sizes: Optional[str] = typer.Option(
        None, "--sizes", help="N1,N2,…: digits of each honest trainer, in order (one value: all of them)"
    ),
    label_noise: Optional[str] = typer.Option(
        None,
        "--label-noise",
        help="Q1,Q2,…: fraction of wrong labels of each honest trainer, in order (one value: all)",
    ),
    partition: str = typer.Option("iid", "--partition", help="iid, or dirichlet:ALPHA for label-skewed shards"),
    aggregators: int = typer.Option(1, "--aggregators", help="committee size K: odd, 1 to 7"),
    dishonest_aggregators: int = typer.Option(
        0,
        "--dishonest-aggregators",
        help="M < K/2 members that flag every honest trainer and pay one attacker's trainer",
    ),
) -> None:
    """Run a whole market in one process: owner, aggregator, honest and malicious trainers.

    Writes OUT/report.json, accuracy.png, rewards.png and scores.png, and prints a summary table.

    Example: merit demo --trainers 8 --rounds 5 --attackers sign_flip:1,free_rider:1,label_flip:1
    """
    from rich.console import Console

    from backend.config import load_settings
    from backend.simulate.demo import DemoConfig, run_demo, summary_table

    load_settings(chain=chain, ipfs=ipfs)  # refuse a bad --chain/--ipfs before any work
    console = Console(stderr=json_out)
    demo_config = DemoConfig(
        trainers=trainers,
        rounds=rounds,
        attackers=attackers,
        seed=seed,
        chain=chain,
        ipfs=ipfs,
        out=out,
        sizes=sizes,
        label_noise=label_noise,
        partition=partition,
        aggregators=aggregators,
        dishonest_aggregators=dishonest_aggregators,
    )
    demo_config.check()  # bad flags are refused before anything starts
    report = run_demo(demo_config, console=console)
    console.print(summary_table(report))
    final = report["final"]
    console.print(
        f"final accuracy on held-out test digits {final['accuracy']:.3f} (on the validation set the "
        f"aggregator scores with: {final['validation_accuracy']:.3f}); rewards {final['rewards_total_wei'] / 1e18:.4f} ETH, "
        f"slashed {final['slashed_total_wei'] / 1e18:.4f} ETH, refund {final['refund_wei'] / 1e18:.4f} ETH; "
        f"conservation {'ok' if final['conservation_ok'] else 'VIOLATED'}"
    )
    console.print("time per phase: " + ", ".join(f"{k} {v:.1f}s" for k, v in report["phases_seconds"].items()))
    console.print(f"plots: {', '.join(report['plots'])}")
    if json_out:
        print(report["path"])
    else:
        console.print(f"report: {report['path']}")

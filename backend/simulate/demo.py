"""`merit demo`: one process runs a whole market (owner, aggregator node, honest and malicious
trainers) on the embedded chain and store, or on Anvil / Kubo, then prints and plots what happened.

Every step goes through the product's own code paths: the owner's spec file and `create_project`,
the trainers' `backend.trainer.client`, the `AggregatorNode`, the `MarketClient`. Only the
attackers' updates come from `backend.simulate.attacks`.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.errors import ConfigError
from backend.limits import GLOBAL_MODEL_MAX_BYTES

DEFAULT_ATTACKERS = "sign_flip:1,free_rider:1,label_flip:1"
ETHER = 10**18


@dataclass
class DemoConfig:
    trainers: int = 8
    rounds: int = 5
    attackers: str = DEFAULT_ATTACKERS
    seed: int = 0
    chain: str = "embedded"
    ipfs: str = "embedded"
    out: Path = Path("merit-demo")
    samples_per_trainer: int = 500
    validation_samples: int = 1000
    epochs: int = 2

    def check(self) -> dict[str, int]:
        from backend.simulate.attacks import parse_attackers

        counts = parse_attackers(self.attackers)
        problems = []
        if not 1 <= self.trainers <= 64:
            problems.append(f"--trainers must be between 1 and 64, got {self.trainers}")
        if not 1 <= self.rounds <= 100:
            problems.append(f"--rounds must be between 1 and 100, got {self.rounds}")
        if sum(counts.values()) > self.trainers:
            problems.append(f"--attackers asks for {sum(counts.values())} attackers but there are only {self.trainers} trainers")
        need = self.trainers * self.samples_per_trainer + self.validation_samples
        if need > 5000:
            self.samples_per_trainer = (5000 - self.validation_samples) // self.trainers
        if problems:
            raise ConfigError("; ".join(problems))
        return counts


@dataclass
class Phases:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def _roles(cfg: DemoConfig, counts: dict[str, int]) -> list[str]:
    """Honest trainers first, attackers spread among them so copycats have someone to copy."""
    attackers = [kind for kind, n in counts.items() for _ in range(n)]
    honest = ["honest"] * (cfg.trainers - len(attackers))
    roles: list[str] = []
    while honest or attackers:
        if honest:
            roles.append(honest.pop())
        if attackers and (len(roles) % 2 == 1 or not honest):
            roles.append(attackers.pop(0))
    return roles


def _accounts(chain, market, n: int):
    """Owner dev:0, aggregator dev:1, arbiter dev:2, trainers dev:3..; beyond the 20 pre-funded dev
    accounts, more are derived from the same mnemonic and funded by dev:0."""
    from backend.chain.connection import DEV_ACCOUNTS, dev_account

    trainers = [dev_account(3 + i) for i in range(n)]
    for index, acct in enumerate(trainers, start=3):
        if index >= DEV_ACCOUNTS and chain.w3.eth.get_balance(acct.address) < 10 * ETHER:
            market.tx.transfer(dev_account(0), acct.address, 100 * ETHER)
    return dev_account(0), dev_account(1), dev_account(2), trainers


def run_demo(cfg: DemoConfig, console: Console | None = None, on_finish=None) -> dict[str, Any]:
    """Run the demo; ``on_finish(chain, market, store, project_id)`` is called at the end (tests audit it)."""
    from aggregator.node import AggregatorNode
    from backend.chain.client import MarketClient
    from backend.chain.connection import connect, dev_account
    from backend.config import get_settings
    from backend.data import load_mnist, partition_iid
    from backend.models.serialization import load_weights
    from backend.project import create_project, load_secrets, secrets_path, write_example
    from backend.simulate.attacks import AttackContext, make_update
    from backend.storage import open_store
    from backend.trainer.client import load_round, make_update as honest_update, serialize_update
    from backend.trainer.local import evaluate

    console = console or Console()
    counts = cfg.check()
    phases = Phases()
    started = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings()

    with phases("setup"):
        chain = connect(cfg.chain, timeout=settings.rpc_timeout)
        if not chain.supports_time_travel:
            raise ConfigError(f"{cfg.chain} cannot move its clock, so the demo's rounds would take real hours",
                              "run the demo on the embedded chain or Anvil")
        store = open_store(cfg.ipfs)
        X, y = load_mnist(seed=cfg.seed)
        X_val, y_val = X[: cfg.validation_samples], y[: cfg.validation_samples]
        X_tr, y_tr = X[cfg.validation_samples:], y[cfg.validation_samples:]
        shards = partition_iid(min(len(y_tr), cfg.trainers * cfg.samples_per_trainer), cfg.trainers, seed=cfg.seed)
        owner_market = MarketClient.deploy(chain, dev_account(0))
        owner, aggregator, arbiter, trainer_accounts = _accounts(chain, owner_market, cfg.trainers)
        roles = _roles(cfg, counts)
        spec_path = write_example(out, trainers=cfg.trainers, rounds=cfg.rounds, submission_window=3600,
                                  challenge_period=600, aggregator=aggregator.address, arbiter=arbiter.address,
                                  seed=cfg.seed, validation_samples=cfg.validation_samples, epochs=cfg.epochs,
                                  aggregation_window=3600, write_shards=False)[0]
        pid, _record = create_project(owner_market, store, spec_path, settings.home)
        gas: dict[str, list[int]] = {"create_project": [owner_market.last_receipt.gas_used]}
        agg_market = owner_market.as_account(aggregator)
        node = AggregatorNode(agg_market, store, pid, (X_val, y_val), out / "aggregator-state",
                              log=lambda m: None)
        trainers = [owner_market.as_account(a) for a in trainer_accounts]
        for t in trainers:
            gas.setdefault("join", []).append(t.join(pid).gas_used)
        node.step()  # bond
        node.step()  # start

    rounds_out = []
    addresses = [t.account.address for t in trainers]
    role_of = dict(zip(addresses, roles))
    spec = node.spec
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=console, transient=False)
    with progress:
        task = progress.add_task("rounds", total=cfg.rounds)
        for r in range(cfg.rounds):
            progress.update(task, description=f"round {r}: training")
            round_gas: dict[str, int] = {}
            pending: list[tuple] = []
            with phases("training"):
                ctx = load_round(owner_market, pid, r, store=store)
                previous = []
                for i, (t, role) in enumerate(zip(trainers, roles)):
                    Xi, yi = X_tr[shards[i]], y_tr[shards[i]]
                    seed = cfg.seed * 1000 + r * 100 + i
                    if role == "honest":
                        update = honest_update(ctx, pid, t.account.address, Xi, yi, seed=seed)
                        tensors, _ = load_weights(update)
                    else:
                        actx = AttackContext(spec=ctx.spec, global_weights=ctx.global_weights, X=Xi, y=yi, seed=seed,
                                             previous=previous)
                        tensors = make_update(role, actx)
                        update = serialize_update(tensors, pid, r, t.account.address, ctx.global_cid)
                    previous.append(tensors)
                    cid = store.add_bytes(update)
                    # Commit now, reveal after the deadline: nobody sees a CID while the round is open.
                    salt = os.urandom(32)
                    pending.append((t, cid, salt))
                    used = t.commit_update(pid, r, cid, salt).gas_used
                    round_gas["commit_update"] = max(round_gas.get("commit_update", 0), used)
            progress.update(task, description=f"round {r}: revealing")
            info = owner_market.round(pid, r)
            chain.advance(max(1, info.submission_deadline - chain.now() + 1))
            with phases("chain"):
                for t, cid, salt in pending:
                    used = t.reveal_update(pid, r, cid, salt).gas_used
                    round_gas["reveal_update"] = max(round_gas.get("reveal_update", 0), used)
                pending.clear()
            chain.advance(max(1, owner_market.round(pid, r).reveal_deadline - chain.now() + 1))
            progress.update(task, description=f"round {r}: aggregating")
            with phases("aggregation"):
                t0 = time.perf_counter()
                node.last_outcome = None
                node.step()
                aggregation_seconds = time.perf_counter() - t0
            round_gas["post_result"] = node.state["rounds"][str(r)].get("post_gas")
            info = owner_market.round(pid, r)
            chain.advance(max(1, info.challenge_deadline - chain.now() + 1))
            with phases("chain"):
                round_gas["finalize"] = owner_market.finalize(pid).gas_used
            rounds_out.append(_round_record(owner_market, store, pid, r, role_of, spec, (X_val, y_val),
                                            aggregation_seconds, round_gas, evaluate))
            progress.update(task, advance=1, description=f"round {r}: done, accuracy {rounds_out[-1]['accuracy']:.3f}")

    with phases("settlement"):
        settlement = _settle(owner_market, pid, trainers, aggregator, gas)
        secret = load_secrets(secrets_path(settings.home, chain.chain_id, owner_market.address, pid))
        owner_market.reveal_validation(pid, secret["validation_cid"], bytes.fromhex(secret["salt"][2:]))

    cfg_json = {"trainers": cfg.trainers, "rounds": cfg.rounds, "attackers": cfg.attackers, "seed": cfg.seed,
                "chain": cfg.chain, "ipfs": cfg.ipfs, "out": str(out), "samples_per_trainer": cfg.samples_per_trainer,
                "validation_samples": cfg.validation_samples, "epochs": cfg.epochs, "roles": roles}
    report = {
        "config": cfg_json,
        "chain": {"kind": chain.kind, "chain_id": chain.chain_id, "market": owner_market.address},
        "project_id": pid,
        "rounds": rounds_out,
        "final": {"accuracy": rounds_out[-1]["accuracy"], **settlement},
        "gas": {k: max(v) for k, v in gas.items()},
        "phases_seconds": {},
    }
    with phases("plots"):
        from backend.simulate.plots import write_plots

        report["plots"] = [str(p) for p in write_plots(report, out)]
    report["phases_seconds"] = {k: round(v, 2) for k, v in phases.seconds.items()}
    report["phases_seconds"]["total"] = round(time.perf_counter() - started, 2)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2))
    report["path"] = str(path)
    if on_finish is not None:
        on_finish(chain, owner_market, store, pid)
    return report


def _round_record(market, store, pid, r, role_of, spec, validation, aggregation_seconds, gas, evaluate) -> dict:
    info = market.round(pid, r)
    report = json.loads(store.get_bytes(info.report_cid, max_size=64 << 20))
    model = store.get_bytes(info.global_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
    accuracy, loss = evaluate(spec, model, *validation)
    from backend.chain.history import round_history

    record = round_history(market, pid)[r]
    rewards, slashes = record.rewards, record.slashes
    trainers = []
    for t in report["trainers"]:
        trainers.append({"address": t["address"], "role": role_of.get(t["address"], "unknown"), "cid": t["cid"],
                         "score": t["score"], "weight": t["weight"], "flagged": t["flagged"], "reason": t["reason"],
                         "reward_wei": rewards.get(t["address"], 0), "slashed_wei": slashes.get(t["address"], 0)})
    return {"round": r, "global_model_cid": info.global_model_cid, "report_cid": info.report_cid,
            "accuracy": round(float(accuracy), 4), "loss": round(float(loss), 4),
            "aggregation_seconds": round(aggregation_seconds, 2), "gas": gas, "trainers": trainers,
            "timings": report.get("timings", {})}


def _settle(market, pid, trainers, aggregator, gas) -> dict:
    """Everyone takes what is theirs; then check that every wei is accounted for."""
    cfg = market.config(pid)
    owner = market
    rewards = 0
    for t in trainers:
        amount = market.claimable(pid, t.account.address)
        if amount:
            gas.setdefault("claim", []).append(t.claim(pid).gas_used)
            rewards += amount
        t.withdraw_stake(pid)
    owner.as_account(aggregator).withdraw_bond(pid)
    try:
        owner.withdraw_remainder(pid)
    except Exception as exc:  # nothing left is fine
        if getattr(exc, "name", "") != "NothingToWithdraw":
            raise
    refund = sum(int(e["amount"]) for e in owner.events("RemainderWithdrawn", pid))
    slashed = sum(int(e["amount"]) for e in owner.events("TrainerSlashed", pid))
    stakes_back = sum(int(e["amount"]) for e in owner.events("StakeWithdrawn", pid))
    bond_slashed = (sum(int(e["bondSlashed"]) for e in owner.events("RoundExpired", pid))
                    + sum(int(e["amount"]) for e in owner.events("AggregatorSlashed", pid)))
    # What no round paid out (dust, slashes nobody earned) is the trainers' end pot, paid with the stakes.
    pot = sum(int(e["amount"]) for e in owner.events("EndPotSet", pid))
    contract_balance = market.chain.w3.eth.get_balance(market.address)
    ok = (rewards + refund + pot == cfg.pool + slashed + bond_slashed
          and stakes_back == cfg.stake * len(trainers) - slashed + pot
          and contract_balance == 0)
    return {"pool_wei": cfg.pool, "rewards_total_wei": rewards, "slashed_total_wei": slashed, "refund_wei": refund,
            "stakes_returned_wei": stakes_back, "contract_balance_wei": contract_balance, "conservation_ok": ok}


def summary_table(report: dict) -> Table:
    table = Table(title=f"Merit demo: project {report['project_id']} on {report['chain']['kind']} chain "
                        f"{report['chain']['chain_id']}")
    table.add_column("trainer")
    table.add_column("role")
    table.add_column("flagged", justify="right")
    table.add_column("mean score", justify="right")
    table.add_column("reward (ETH)", justify="right")
    table.add_column("slashed (ETH)", justify="right")
    rows: dict[str, dict] = {}
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            row = rows.setdefault(t["address"], {"role": t["role"], "flags": 0, "n": 0, "scores": [], "reward": 0, "slashed": 0})
            row["n"] += 1
            row["flags"] += int(t["flagged"])
            if t["score"] is not None:
                row["scores"].append(t["score"])
            row["reward"] += t["reward_wei"]
            row["slashed"] += t["slashed_wei"]
    for address, row in rows.items():
        style = "green" if row["role"] == "honest" else "red"
        score = f"{np.mean(row['scores']):.4f}" if row["scores"] else "-"
        table.add_row(address[:10] + "…", f"[{style}]{row['role']}[/{style}]", f"{row['flags']}/{row['n']}", score,
                      f"{row['reward'] / ETHER:.4f}", f"{row['slashed'] / ETHER:.4f}")
    return table

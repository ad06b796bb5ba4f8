"""The owner's side of a project: the spec file, creation (uploads and escrow), and local secrets.

A spec file (YAML or JSON) describes everything fixed at creation::

    model:
      arch: cnn                       # a registered architecture: cnn, mlp, logreg, ...
      input_shape: [1, 28, 28]
      num_classes: 10
      hyperparams: {lr: 0.05, momentum: 0.9, epochs: 1, batch_size: 32}
      init_seed: 0                    # initial weights from this seed, or:
      initial_weights: null           # a safetensors file with the initial weights
    aggregator_config: {}             # optional overrides: detectors, shapley_method, shapley_budget, ...
    validation: validation.npz        # the owner's validation set (X, y), committed now, revealed later
    reward: {asset: ETH, pool: "10 ether"}
    rounds: 5
    trainers: {min: 2, max: 8, stake: "1 ether", slash_bps: 5000}
    windows: {submission: 600, reveal: 300, aggregation: 600, challenge: 300}   # seconds; reveal defaults to submission
    aggregator: {bond: "2 ether"}     # the owner's bond that rounds get scored (to trainers if they are not)
    committee: {size: 3, min_stake: "0.1 ether", fee: "0.01 ether"}   # optional: default one member, no fee
    arbiter: {address: "0x...", dispute_bond: "0.5 ether"}

Nobody names the aggregator: the Marketplace's committee draws ``committee.size`` members holding at
least ``committee.min_stake`` from the staked registry when the project starts, and pays them ``fee``
per round (escrowed by the owner at creation).

Every problem in a spec file is reported at once. Amounts are wei (an integer) or "<number> ether|gwei|wei".
The aggregator configuration travels inside the on-chain model spec (``hyperparams.aggregator``), so
anyone who re-executes a round uses exactly the parameters the project fixed at creation.
"""

from __future__ import annotations

import json
import os
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from eth_abi import encode
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from web3 import Web3

from aggregator.config import AggregatorConfig
from backend import safe_json
from backend.chain.committee import CommitteeClient
from backend.chain.session import parse_key
from backend.chain.types import ETH, MAX_TRAINERS, MAX_WINDOW, ProjectConfig, min_bonds
from backend.data import load_mnist, load_validation, partition_iid
from backend.errors import ConfigError, shorten
from backend.files import atomic_output, read_capped
from backend.limits import GLOBAL_MODEL_MAX_BYTES, VALIDATION_MAX_BYTES
from backend.models.factory import build_model, initial_weights
from backend.models.registry import available_architectures
from backend.models.serialization import load_weights, save_weights
from backend.models.spec import Hyperparams, ModelSpec
from backend.models.update_validation import validate_update
from backend.models.vectors import Layout
from backend.storage import compute_cid, is_cid_of

UNITS = {"ether": 10**18, "eth": 10**18, "gwei": 10**9, "wei": 1}


def parse_amount(value: Any) -> int:
    """Wei from an int or "<number> ether|gwei|wei"."""
    if isinstance(value, bool):
        raise ValueError("an amount must be a number, not true/false")
    if isinstance(value, int):
        amount = value
    else:
        text = str(value).strip().lower()
        number, _, unit = text.partition(" ")
        unit = unit.strip() or "wei"
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r} in {value!r}; use ether, gwei or wei")
        try:
            scaled = Decimal(number) * UNITS[unit]
        except (InvalidOperation, ValueError):  # ValueError: more digits than Python converts
            raise ValueError(f"{shorten(str(value), 40)!r} is not an amount like '1.5 ether' or 1000") from None
        if not scaled.is_finite() or abs(scaled) >= 2**256:
            raise ValueError(f"{shorten(str(value), 40)!r} does not fit in a uint256 of wei")
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number of wei")
        amount = int(scaled)
    if amount < 0:
        raise ValueError("an amount cannot be negative")
    if amount >= 2**256:
        raise ValueError("an amount must fit in a uint256 of wei")
    return amount


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    arch: str
    input_shape: list[int]
    num_classes: int = Field(ge=2)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    init_seed: int = 0
    initial_weights: Path | None = None


class RewardSection(_Strict):
    asset: str = "ETH"
    pool: int

    _pool = field_validator("pool", mode="before")(parse_amount)

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        if value.upper() == "ETH":
            return ETH
        if not Web3.is_address(value):
            raise ValueError(f"{value!r} is neither ETH nor an ERC-20 address")
        return Web3.to_checksum_address(value)


class TrainersSection(_Strict):
    min: int = Field(ge=1, le=MAX_TRAINERS)
    max: int = Field(ge=1, le=MAX_TRAINERS)
    stake: int
    slash_bps: int = Field(5000, ge=0, le=10000)

    _stake = field_validator("stake", mode="before")(parse_amount)

    @model_validator(mode="after")
    def _order(self) -> "TrainersSection":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class WindowsSection(_Strict):
    # The contract keeps windows in 24 bits (194 days).
    submission: int = Field(ge=1, le=MAX_WINDOW)
    reveal: int | None = Field(
        default=None, ge=1, le=MAX_WINDOW, description="after the submission deadline, for revealing committed updates"
    )
    aggregation: int = Field(ge=1, le=MAX_WINDOW)
    challenge: int = Field(ge=0, le=MAX_WINDOW)


class PartySection(_Strict):
    address: str | None = None
    bond: int | None = None
    dispute_bond: int | None = None

    @field_validator("bond", "dispute_bond", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> int | None:
        return None if value is None else parse_amount(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not Web3.is_address(value):
            raise ValueError(f"{value!r} is not an Ethereum address")
        return Web3.to_checksum_address(value)


class CommitteeSection(_Strict):
    """Who scores: ``size`` members (odd, 1..7) drawn at start among registered aggregators holding at
    least ``min_stake`` (0 = the registry's minimum), each paid ``fee`` per round it scores honestly."""

    size: int = 1
    min_stake: int = 0
    fee: int = 0

    @field_validator("min_stake", "fee", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> int:
        return parse_amount(value)

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 1 or value > 7 or value % 2 == 0:
            raise ValueError("committee.size must be odd, 1 to 7")
        return value


class ProjectSpecFile(_Strict):
    model: ModelSection
    aggregator_config: dict[str, Any] = Field(default_factory=dict)
    validation: Path
    reward: RewardSection
    rounds: int = Field(ge=1, le=10_000)
    trainers: TrainersSection
    windows: WindowsSection
    aggregator: PartySection
    committee: CommitteeSection = Field(default_factory=lambda: CommitteeSection())
    arbiter: PartySection

    @model_validator(mode="after")
    def _bonds(self) -> "ProjectSpecFile":
        if self.arbiter.address is None:
            raise ValueError("arbiter.address is required")
        if self.aggregator.bond is None:
            raise ValueError("aggregator.bond is required")
        if self.arbiter.dispute_bond is None:
            raise ValueError("arbiter.dispute_bond is required")
        # The contract's floors: the aggregator risks a tenth of a round's budget, a dispute costs a hundredth.
        min_bond, min_dispute = min_bonds(self.reward.pool, self.rounds)
        if self.aggregator.bond < min_bond:
            raise ValueError(f"aggregator.bond must be at least a tenth of a round's budget: {min_bond} wei or more")
        if self.arbiter.dispute_bond < min_dispute:
            raise ValueError(
                f"arbiter.dispute_bond must be at least a hundredth of a round's budget: {min_dispute} wei or more"
            )
        return self


def _format_errors(path: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {msg}")
    return f"{path} has {len(lines)} problem(s):\n" + "\n".join(lines)


SPEC_FILE_MAX_BYTES = 1 << 20  # a project spec is a page of settings


def _bounded_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load``, once the document's events (read without recursion) show it nests no deeper
    than JSON from a stranger may and uses no aliases: the composer recurses once per level (past the
    C stack where the Ethereum libraries have raised the recursion limit), and nine lines of nested
    aliases expand to 43 million items once a model validates them. A spec needs neither."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"{path} uses YAML aliases (*name), which a project spec has no need of")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > safe_json.MAX_DEPTH:
                raise ConfigError(f"{path} nests too deeply to be a project spec")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return yaml.safe_load(text)


def load_spec_file(path: str | Path) -> ProjectSpecFile:
    """Parse and validate a spec file, naming every problem at once. Relative paths inside it are
    relative to the file."""
    path = Path(path)
    try:
        text = read_capped(path, SPEC_FILE_MAX_BYTES, "spec file").decode()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not a text file; the spec is YAML or JSON",
            "pass the project.yaml that `merit project example` wrote",
        ) from None
    try:
        data = safe_json.loads(text, what=str(path)) if path.suffix == ".json" else _bounded_yaml(text, path)
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a project spec") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings", "see README, 'Project owner'")
    try:
        spec = ProjectSpecFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(str(path), exc)) from None
    problems = _semantic_problems(spec, path.parent)
    if problems:
        raise ConfigError(f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
    return spec


def _semantic_problems(spec: ProjectSpecFile, base: Path) -> list[str]:
    problems = []
    if spec.model.arch not in available_architectures():
        problems.append(
            f"model.arch: unknown architecture {spec.model.arch!r}; known: {', '.join(available_architectures())}"
        )
    try:
        Hyperparams(**{k: v for k, v in spec.model.hyperparams.items() if k != "aggregator"})
    except ValidationError as exc:
        problems += [f"model.hyperparams.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    try:
        AggregatorConfig(**spec.aggregator_config)
    except ValidationError as exc:
        problems += [
            f"{'.'.join(['aggregator_config', *map(str, e['loc'])])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
    for label, rel in (("validation", spec.validation), ("model.initial_weights", spec.model.initial_weights)):
        if rel is not None and not (base / rel).is_file():
            problems.append(f"{label}: file {base / rel} does not exist")
    return problems


def model_spec_of(spec: ProjectSpecFile, initial_cid: str = ""):
    """The on-chain ModelSpec, with the aggregator configuration inside its hyper-parameters."""

    hyper = dict(spec.model.hyperparams)
    hyper["aggregator"] = json.loads(AggregatorConfig(**spec.aggregator_config).model_dump_json())
    return ModelSpec(
        arch=spec.model.arch,
        input_shape=tuple(spec.model.input_shape),
        num_classes=spec.model.num_classes,
        hyperparams=Hyperparams(**hyper),
        initial_weights=initial_cid,
    )


def commitment(validation_cid: str, salt: bytes) -> bytes:
    """keccak256(abi.encode(string cid, bytes32 salt)): what the contract checks at reveal."""
    return keccak(encode(["string", "bytes32"], [validation_cid, salt]))


def check_validation_file(data: bytes, committed: bytes, revealed_cid: str, salt: bytes | None) -> str:
    """Whether ``data`` is the validation set the owner committed to on-chain, as far as can be told:
    against the revealed CID once the owner has revealed it, else against the commitment given the
    owner's ``salt`` (the owner hands a drawn member the file and the salt). Returns what was checked;
    raises ``ConfigError`` on a mismatch, since scoring with another set would post other weights than
    the honest members' and cost the member its stake."""
    if revealed_cid:
        if not is_cid_of(data, revealed_cid):
            raise ConfigError(
                f"the validation file is not the set the owner revealed on-chain ({revealed_cid})",
                "fetch the revealed set: `merit ipfs get` that CID",
            )
        return f"the validation set matches the revealed CID {revealed_cid}"
    if salt is None:
        return "the validation set is unchecked: pass --validation-salt (the owner's salt) to check it"
    if len(salt) != 32:
        raise ConfigError(f"--validation-salt must be 32 bytes, got {len(salt)}", "pass the owner's 0x… salt")
    for version in (1, 0):  # the owner's store may have added it as CIDv1 (default) or CIDv0 (Kubo's)
        cid = compute_cid(data, version)
        if commitment(cid, salt) == bytes(committed):
            return f"the validation set matches the owner's on-chain commitment ({cid})"
    raise ConfigError(
        "the validation file and salt do not match the owner's on-chain commitment",
        "ask the owner for the file and salt it committed to (its secrets file under $MERIT_HOME/projects/)",
    )


def secrets_path(home: Path, chain_id: int, market: str, pid: int) -> Path:
    return home / "projects" / f"{chain_id}-{market.lower()}" / f"{pid}.json"


def save_secrets(path: Path, data: dict) -> None:
    with atomic_output(path) as out:  # created 0600: the salt stays the owner's
        os.chmod(out.fileno(), 0o600)
        out.write(json.dumps(data, indent=2).encode())


def load_secrets(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(
            f"no local record of this project's validation secret at {path}",
            "run this on the machine (and MERIT_HOME) that created the project",
        )
    return json.loads(path.read_text())


def _setup_scoring(market, pid: int, spec: ProjectSpecFile) -> None:
    """The owner's part in scoring: the committee's terms (when not the default) and the bond."""
    c = spec.committee
    if (c.size, c.min_stake, c.fee) != (1, 0, 0):
        committee = CommitteeClient.of(market)
        committee.configure(pid, c.size, c.min_stake or committee.minimum_stake(), c.fee)
    market.post_aggregator_bond(pid)


def create_project(market, store, spec_path: str | Path, home: Path) -> tuple[int, dict]:
    """Upload the spec, initial weights and validation set, escrow the pool, and record the secret.
    Returns (project id, record)."""

    spec_path = Path(spec_path)
    spec = load_spec_file(spec_path)
    base = spec_path.parent
    model_spec = model_spec_of(spec)
    if spec.model.initial_weights is not None:
        weights_bytes = read_capped(base / spec.model.initial_weights, GLOBAL_MODEL_MAX_BYTES, "model.initial_weights")
        tensors, _ = load_weights(weights_bytes)

        check = validate_update(weights_bytes, Layout.of(build_model(model_spec, seed=0).state_dict()))
        if not check.ok:
            raise ConfigError(f"model.initial_weights does not fit the model: {check.detail}")
    else:
        weights_bytes = save_weights(initial_weights(model_spec, seed=spec.model.init_seed), {"round": "0"})
    validation_bytes = read_capped(base / spec.validation, VALIDATION_MAX_BYTES, "validation set")
    load_validation(validation_bytes, model_spec)  # refuse a validation set that does not fit before paying
    initial_cid = store.add_bytes(weights_bytes)
    model_spec = model_spec_of(spec, initial_cid)
    spec_cid = store.add_bytes(model_spec.to_json().encode())
    validation_cid = store.add_bytes(validation_bytes)
    salt = secrets.token_bytes(32)
    cfg = ProjectConfig(
        asset=spec.reward.asset,
        pool=spec.reward.pool,
        stake=spec.trainers.stake,
        aggregatorBond=spec.aggregator.bond,
        disputeBond=spec.arbiter.dispute_bond,
        aggregator=spec.aggregator.address or ETH,  # the committee (an address other than it is refused)
        arbiter=spec.arbiter.address,
        rounds=spec.rounds,
        minTrainers=spec.trainers.min,
        maxTrainers=spec.trainers.max,
        slashBps=spec.trainers.slash_bps,
        submissionWindow=spec.windows.submission,
        aggregationWindow=spec.windows.aggregation,
        challengePeriod=spec.windows.challenge,
        specCid=spec_cid,
        initialModelCid=initial_cid,
        validationCommitment=commitment(validation_cid, salt),
        revealWindow=spec.windows.reveal or spec.windows.submission,
    )
    pid = market.create_project(cfg)
    _setup_scoring(market, pid, spec)
    record = {
        "project_id": pid,
        "spec_cid": spec_cid,
        "initial_model_cid": initial_cid,
        "validation_cid": validation_cid,
        "salt": "0x" + salt.hex(),
        "validation_file": str((base / spec.validation).resolve()),
    }
    save_secrets(secrets_path(home, market.chain.chain_id, market.address, pid), record)
    return pid, record


def _address_of(value: str) -> str:
    if value.startswith("dev:"):
        return parse_key(value).address
    if not Web3.is_address(value):
        raise ConfigError(f"{value!r} is not an address or dev:N")
    return Web3.to_checksum_address(value)


def write_example(
    out: str | Path,
    trainers: int = 2,
    rounds: int = 2,
    submission_window: int = 30,
    challenge_period: int = 10,
    arbiter: str = "dev:2",
    seed: int = 0,
    samples_per_trainer: int = 500,
    validation_samples: int = 1000,
    epochs: int = 1,
    aggregation_window: int = 600,
    write_shards: bool = True,
    committee_size: int = 1,
    committee_fee: str = "0 ether",
) -> list[Path]:
    """An MNIST project to try Merit with: project.yaml, validation.npz and (``write_shards``)
    trainer-<i>.npz. The validation set is the first ``validation_samples`` digits of
    ``load_mnist(seed)``; trainers share the rest."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist(seed=seed)
    X_val, y_val = X[:validation_samples], y[:validation_samples]
    X_tr, y_tr = X[validation_samples:], y[validation_samples:]
    shards = partition_iid(min(len(y_tr), trainers * samples_per_trainer), trainers, seed=seed)
    paths = [out / "validation.npz"]
    np.savez(paths[0], X=X_val, y=y_val)
    for i, shard in enumerate(shards if write_shards else []):
        path = out / f"trainer-{i}.npz"
        np.savez(path, X=X_tr[shard], y=y_tr[shard])
        paths.append(path)
    spec = {
        "model": {
            "arch": "cnn",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "hyperparams": {"lr": 0.05, "momentum": 0.9, "epochs": epochs, "batch_size": 32},
            "init_seed": seed,
        },
        "aggregator_config": {},
        "validation": "validation.npz",
        "reward": {"asset": "ETH", "pool": "10 ether"},
        "rounds": rounds,
        "trainers": {"min": trainers, "max": max(8, trainers), "stake": "1 ether", "slash_bps": 5000},
        "windows": {"submission": submission_window, "aggregation": aggregation_window, "challenge": challenge_period},
        "aggregator": {"bond": "2 ether"},
        "committee": {"size": committee_size, "min_stake": "0 ether", "fee": committee_fee},
        "arbiter": {"address": _address_of(arbiter), "dispute_bond": "0.5 ether"},
    }
    spec_path = out / "project.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return [spec_path, *paths]

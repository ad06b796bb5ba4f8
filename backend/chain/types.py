"""Typed views of the Marketplace contract's structs and enums (mirrors contracts/Marketplace.sol)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

ETH = "0x0000000000000000000000000000000000000000"
WEIGHT_SCALE = 10**9  # the aggregator's weights sum to this; the contract only uses ratios
MAX_TRAINERS = 256


class Phase(IntEnum):
    NONE = 0
    OPEN = 1
    AGGREGATING = 2
    CHALLENGE = 3
    DISPUTED = 4
    FINAL = 5
    EXPIRED = 6

    @property
    def label(self) -> str:
        return self.name.capitalize()


class Status(IntEnum):
    PENDING = 0
    RUNNING = 1
    ENDED = 2
    CANCELLED = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()


class ConfigErrorReason(IntEnum):
    """Why createProject refused a configuration (Marketplace.ConfigError)."""

    ZERO_ROUNDS = 0
    POOL_TOO_SMALL = 1
    AMOUNT_TOO_LARGE = 2
    MIN_TRAINERS = 3
    SLASH_BPS = 4
    ZERO_AGGREGATOR = 5
    ZERO_ARBITER = 6
    ZERO_WINDOW = 7
    EMPTY_SPEC = 8
    EMPTY_INITIAL_MODEL = 9
    TOO_MANY_ROUNDS = 10

    @property
    def label(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


# Solidity enum (by internalType in the ABI) -> Python enum, for readable revert arguments.
SOLIDITY_ENUMS = {"enum Marketplace.Phase": Phase, "enum Marketplace.Status": Status,
                  "enum Marketplace.ConfigError": ConfigErrorReason}


@dataclass(frozen=True)
class ProjectConfig:
    asset: str
    pool: int
    stake: int
    aggregatorBond: int
    disputeBond: int
    aggregator: str
    arbiter: str
    rounds: int
    minTrainers: int
    maxTrainers: int
    slashBps: int
    submissionWindow: int
    aggregationWindow: int
    challengePeriod: int
    specCid: str
    initialModelCid: str
    validationCommitment: bytes

    def as_tuple(self) -> tuple:
        return tuple(asdict(self).values())

    @classmethod
    def from_tuple(cls, values: tuple | list) -> "ProjectConfig":
        return cls(*values)

    @property
    def is_eth(self) -> bool:
        return int(self.asset, 16) == 0


@dataclass(frozen=True)
class ProjectInfo:
    owner: str
    status: Status
    current_round: int
    trainer_count: int
    carry: int
    bond_balance: int
    validation_cid: str


@dataclass(frozen=True)
class RoundInfo:
    phase: Phase
    opened_at: int
    submission_deadline: int
    aggregation_deadline: int
    challenge_deadline: int
    submissions: int
    budget: int
    global_model_cid: str
    report_cid: str


@dataclass(frozen=True)
class TrainerInfo:
    joined: bool
    stake: int
    slashed: int
    joined_round: int

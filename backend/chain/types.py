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
    REVEALING = 7  # commitments closed; committed updates are being revealed

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
    AGGREGATOR_BOND_TOO_SMALL = 11
    DISPUTE_BOND_TOO_SMALL = 12
    ARBITER_NOT_INDEPENDENT = 13
    WINDOW_TOO_LONG = 14
    NOT_COMMITTEE = 15  # the aggregator must be the Marketplace's committee

    @property
    def label(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


# Solidity enum (by internalType in the ABI) -> Python enum, for readable revert arguments.
SOLIDITY_ENUMS = {
    "enum MarketplaceStorage.Phase": Phase,
    "enum MarketplaceStorage.Status": Status,
    "enum MarketplaceStorage.ConfigError": ConfigErrorReason,
}

# The rules createProject enforces on bonds (Marketplace MIN_AGGREGATOR_BOND_BPS / MIN_DISPUTE_BOND_BPS):
# the aggregator risks at least a tenth of a round's budget, a dispute costs at least a hundredth.
MIN_AGGREGATOR_BOND_BPS = 1_000
MIN_DISPUTE_BOND_BPS = 100
MAX_WINDOW = 2**24 - 1  # seconds (194 days): windows are stored in 24 bits


def min_bonds(pool: int, rounds: int) -> tuple[int, int]:
    """The smallest aggregator and dispute bonds createProject accepts for this pool and round count."""
    per_round = pool // max(rounds, 1)
    return max(1, -(-per_round * MIN_AGGREGATOR_BOND_BPS // 10_000)), max(
        1, -(-per_round * MIN_DISPUTE_BOND_BPS // 10_000)
    )


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
    revealWindow: int  # seconds after the submission deadline for revealing committed updates

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
    submissions: int  # commitments, in commit order
    budget: int
    global_model_cid: str
    report_cid: str
    reveal_deadline: int = 0  # commitments are revealed from the submission deadline to this one
    revealed: int = 0  # bit i: the i-th committer (commit order) revealed

    @property
    def revealed_count(self) -> int:
        return bin(self.revealed).count("1")


@dataclass(frozen=True)
class TrainerInfo:
    joined: bool
    stake: int
    slashed: int
    joined_round: int


@dataclass(frozen=True)
class MemberPost:
    """One committee member's scores of a round (Committee.sol's `Scores`, unpacked): one weight per
    committed submitter in commit order (fixed point, WEIGHT_SCALE), the offender bitmap, and the CIDs of
    the model it aggregated and of its report. The consensus is reported the same way, with the committee's
    address as ``member``."""

    member: str
    weights: list[int]
    flags: int
    model_cid: str
    report_cid: str


@dataclass(frozen=True)
class MemberPenalty:
    """Stake a member lost in a round, and how far its post was from the consensus (an absent member
    counts as 20,000 bps and every trainer's flag)."""

    member: str
    amount: int
    share_distance_bps: int
    flag_disagreements: int


@dataclass(frozen=True)
class RegistryMember:
    """An aggregator's place in the registry: its stake, when it may withdraw (0 while active), and the
    number of projects whose committee holds it."""

    address: str
    stake: int
    exit_at: int
    locks: int

    @property
    def registered(self) -> bool:
        return self.stake > 0 or self.locks > 0 or self.exit_at > 0

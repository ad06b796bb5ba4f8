"""What the REST API reads from the chain: a small, read-only protocol.

The API never sends transactions: trainers join, commit updates and claim on-chain themselves.
It only needs the reads below. ``backend.api.chain_connect.MarketChainView`` implements them over
``backend.chain.client.MarketClient``; tests may pass any object that does.

Conventions for implementers:

- ids and rounds are non-negative ints; rounds count from 0;
- addresses come in checksummed or lower case; compare them case-insensitively;
- an unknown project or round is ``None`` from ``project``/``round``, never an exception;
- amounts are in wei (or the ERC-20's smallest unit), as ints;
- CIDs are strings (``bafy...``); an unset CID is ``None``;
- a failure to reach the chain raises ``backend.errors.ChainError``.

An implementation has ``chain_id`` and ``market_address`` attributes: signed requests name both
(scheme MERIT-API-2), so a signature made for one market is worthless at another. It may also have:

- ``market_key``: a stable name for the market, such as ``"<chain id>-<contract address>"``. The
  API keeps its records (accepted uploads, used nonces) per market key, so a server pointed at
  another market starts with a clean slate;
- ``head()``: the latest block number. With it, the API caches reads per block (see
  ``backend.api.chain_cache``); without it (or when it returns None) every read goes to the view;
- ``projects(ids)``: many projects in one go (a JSON-RPC batch), for the project list;
- ``upload_state(project_id, round, address)``: an upload's pre-checks in one go (see
  ``generic_upload_state`` for what it returns);
- ``committee(project_id, round)``: the round's aggregator committee (``CommitteeInfo``): its members,
  what each revealed, the consensus the contract settled and the penalties. Without it the API answers
  404 ``committee_unavailable`` for the committee route;
- ``lock``: a lock under which every call is made, for a backend that is not thread-safe (the
  embedded chain), shared with the other users of that chain in the process. Without one, the
  methods are called from several threads at once and must be thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable


class RoundPhase(str, Enum):
    """A round's state, as in DESIGN.md. ``Pending`` is a round that has not started yet."""

    PENDING = "Pending"
    OPEN = "Open"
    AGGREGATING = "Aggregating"
    CHALLENGE = "Challenge"
    DISPUTED = "Disputed"
    FINAL = "Final"
    EXPIRED = "Expired"
    REVEALING = "Revealing"


@dataclass(frozen=True)
class ProjectView:
    project_id: int
    owner: str
    status: str  # e.g. "Active", "Cancelled", "Finished": the contract's enum name
    current_round: int  # the round trainers work on now
    rounds: int  # number of rounds in total
    trainer_count: int
    min_trainers: int
    max_trainers: int
    stake_wei: int  # stake a trainer pays to join
    reward_pool_wei: int
    reward_asset: str  # "ETH" or the ERC-20 token's address
    spec_cid: str  # the model spec JSON, in storage
    global_model_cid: str | None  # current global weights (the initial weights before round 0 ends)


@dataclass(frozen=True)
class RoundView:
    project_id: int
    round: int
    phase: RoundPhase
    submission_deadline: int  # Unix seconds
    aggregation_deadline: int
    challenge_deadline: int | None  # set once a result is posted
    submissions: int
    budget_wei: int
    global_model_cid: str | None  # the model this round produced, once posted
    report_cid: str | None


@dataclass(frozen=True)
class MemberPostInfo:
    """One committee member in one round: what it revealed (None until it reveals) and what it lost."""

    member: str
    revealed: bool
    weights: list[int] | None  # fixed point, in submitter order
    flags: int | None  # bitmap of the trainers it flags
    model_cid: str | None
    report_cid: str | None
    penalty_wei: int  # stake it lost in this round (0 if none)
    share_distance_bps: int | None  # its distance from the consensus, as the contract measured it when penalised
    flag_disagreements: int | None


@dataclass(frozen=True)
class CommitteeInfo:
    """A round's committee: its members (in drawn order), their posts, and the settled consensus."""

    project_id: int
    round: int
    members: list[MemberPostInfo]
    consensus_weights: list[int] | None  # None until the round is settled
    consensus_flags: int | None
    consensus_model_cid: str | None


@runtime_checkable
class ChainView(Protocol):
    """The chain reads the REST API needs."""

    chain_id: int  # the chain's EIP-155 id
    market_address: str  # the Marketplace contract's address

    def project_ids(self) -> list[int]:
        """Every project id in the market, ascending."""

    def project(self, project_id: int) -> ProjectView | None:
        """One project, or None if there is no such project."""

    def round(self, project_id: int, round: int) -> RoundView | None:
        """One round of a project, or None if the project or round does not exist."""

    def is_joined(self, project_id: int, address: str) -> bool:
        """True when ``address`` has joined the project (paid its stake) and not withdrawn."""

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        """True when ``address`` has committed an update CID on-chain for that round."""

    def claimable(self, project_id: int, address: str) -> int:
        """Rewards credited to ``address`` in the project and not yet claimed, in wei."""

    def stake(self, project_id: int, address: str) -> int:
        """The stake ``address`` still holds in the project (after slashes), in wei; 0 if none."""


@dataclass(frozen=True)
class UploadState:
    """What an upload's pre-checks read: the project and round (None if unknown), joined, submitted."""

    project: ProjectView | None
    round: RoundView | None
    joined: bool
    submitted: bool


def generic_upload_state(view: "ChainView", project_id: int, round: int, address: str) -> UploadState:
    """``upload_state`` from a view's plain methods, for views without a faster one."""
    project = view.project(project_id)
    if project is None:
        return UploadState(None, None, False, False)
    info = view.round(project_id, round)
    joined = view.is_joined(project_id, address)
    submitted = info is not None and view.has_submitted(project_id, round, address)
    return UploadState(project, info, joined, submitted)


def upload_state(view: "ChainView", project_id: int, round: int, address: str) -> UploadState:
    fast = getattr(view, "upload_state", None)
    return (
        fast(project_id, round, address) if callable(fast) else generic_upload_state(view, project_id, round, address)
    )


class SerializedChainView:
    """Wraps a ChainView so that its calls are made under its ``lock``, one at a time."""

    def __init__(self, inner: ChainView, lock: threading.Lock | threading.RLock):
        self._inner = inner
        self._lock = lock

    def __getattr__(self, name: str):
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            with self._lock:
                return method(*args, **kwargs)

        return call


def serialized_if_needed(view: ChainView) -> ChainView:
    """The view itself, or the view behind its own lock when it has one (not thread-safe)."""
    lock = getattr(view, "lock", None)
    return SerializedChainView(view, lock) if lock is not None else view

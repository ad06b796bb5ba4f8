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

An implementation may also have a ``market_key`` attribute: a stable name for the market, such as
``"<chain id>-<contract address>"``. The API keeps its records (accepted uploads, used nonces) per
market key, so a server pointed at another market starts with a clean slate.

Every method may be called from a worker thread; the API serialises its calls (see
``SerializedChainView``), so an implementation need not be thread-safe. One that has a ``lock``
attribute gets its calls serialised under that lock, so that other users of the same chain
connection in the process (tests sending transactions, the demo) wait for them too.
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
class ProjectInfo:
    project_id: int
    owner: str
    status: str                    # e.g. "Active", "Cancelled", "Finished": the contract's enum name
    current_round: int             # the round trainers work on now
    rounds: int                    # number of rounds in total
    trainer_count: int
    min_trainers: int
    max_trainers: int
    stake_wei: int                 # stake a trainer pays to join
    reward_pool_wei: int
    reward_asset: str              # "ETH" or the ERC-20 token's address
    spec_cid: str                  # the model spec JSON, in storage
    global_model_cid: str | None   # current global weights (the initial weights before round 0 ends)


@dataclass(frozen=True)
class RoundInfo:
    project_id: int
    round: int
    phase: RoundPhase
    submission_deadline: int       # Unix seconds
    aggregation_deadline: int
    challenge_deadline: int | None  # set once a result is posted
    submissions: int
    budget_wei: int
    global_model_cid: str | None   # the model this round produced, once posted
    report_cid: str | None


@runtime_checkable
class ChainView(Protocol):
    """The chain reads the REST API needs."""

    def project_ids(self) -> list[int]:
        """Every project id in the market, ascending."""

    def project(self, project_id: int) -> ProjectInfo | None:
        """One project, or None if there is no such project."""

    def round(self, project_id: int, round: int) -> RoundInfo | None:
        """One round of a project, or None if the project or round does not exist."""

    def is_joined(self, project_id: int, address: str) -> bool:
        """True when ``address`` has joined the project (paid its stake) and not withdrawn."""

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        """True when ``address`` has committed an update CID on-chain for that round."""

    def claimable(self, project_id: int, address: str) -> int:
        """Rewards credited to ``address`` in the project and not yet claimed, in wei."""

    def stake(self, project_id: int, address: str) -> int:
        """The stake ``address`` still holds in the project (after slashes), in wei; 0 if none."""


class SerializedChainView:
    """Wraps a ChainView so that at most one call runs at a time.

    The embedded chain (py-evm) is not thread-safe and the API calls the chain from a thread
    pool; one lock is cheaper than proving every backend safe.
    """

    def __init__(self, inner: ChainView, lock: threading.Lock | threading.RLock | None = None):
        self._inner = inner
        # share the chain's own lock when it has one, so transactions sent by others in this process wait too
        self._lock = lock or getattr(inner, "lock", None) or threading.Lock()

    def __getattr__(self, name: str):
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            with self._lock:
                return method(*args, **kwargs)

        return call

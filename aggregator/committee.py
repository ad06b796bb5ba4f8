"""The committee's consensus and deviation rule, in Python, bit for bit what the contract computes.

`contracts/committee/Consensus.sol` settles a round from the k revealed member posts: per trainer the
median weight, each flag that a strict majority sets (a majority-flagged trainer gets weight 0), and
the model CID that a strict majority revealed (else the previous model carries forward). A member whose
post lies farther from that consensus than the tolerance is penalised. This module replicates those
rules on Python integers so that `merit verify`, the demo's report and the benches can say what the
contract must have settled without trusting it, and tests compare the two on random vectors.

Pure: integers and strings only, no torch, no chain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MAX_MEMBERS = 7
MAX_TRAINERS = 256
WEIGHT_SCALE = 10**9  # a member's weights of a round sum to this (or to 0); the contract uses ratios only
BPS = 10_000

# The tolerance a member's post must stay within. Re-executing a round on the same inputs gives
# identical weights and flags (bench/reexecution.py: share distance 0 across thread counts and BLAS
# kernels); the margin is for float noise between machines, far below what a liar moves: shifting one
# trainer's whole share elsewhere costs 2 * its share, e.g. 2,500 bps for an eighth of the budget.
SHARE_TOLERANCE_BPS = 100  # L1 distance of share vectors, in basis points of the whole (max 20,000)
FLAG_TOLERANCE = 1  # trainers whose flag may differ from the majority's
L1_PER_BPS = WEIGHT_SCALE // BPS  # L1 units (shares scaled to WEIGHT_SCALE) per basis point
ABSENT_DISTANCE_BPS = 2 * BPS  # a member that never revealed counts as maximally distant


class CommitteeError(ValueError):
    """A committee or post the contract would refuse (it reverts with the same situation)."""


@dataclass(frozen=True)
class Consensus:
    weights: list[int]  # per trainer, in submitter order: the median (0 where the majority flags)
    flags: int  # bitmap: trainers a strict majority of members flagged
    model_cid: str  # the CID a strict majority revealed, else the previous model
    report_cid: str = ""  # the report of the first member that revealed that CID; "" when the model carried


@dataclass(frozen=True)
class Deviation:
    member: str
    l1: int  # L1 distance of its shares from the consensus shares, both scaled to WEIGHT_SCALE
    flag_disagreements: int
    revealed: bool = True

    @property
    def share_distance_bps(self) -> int:
        """The distance in basis points, rounded up (as MemberPenalized reports it)."""
        return ABSENT_DISTANCE_BPS if not self.revealed else -(-self.l1 // L1_PER_BPS)

    @property
    def penalised(self) -> bool:
        return not self.revealed or deviates(self.l1, self.flag_disagreements)


def _check_committee(k: int, seats: int) -> None:
    if seats == 0 or seats % 2 == 0 or seats > MAX_MEMBERS:
        raise CommitteeError(f"a committee has an odd number of members from 1 to {MAX_MEMBERS}, got {seats}")
    if not 1 <= k <= seats:
        raise CommitteeError(f"{k} posts for a committee of {seats}: at least one and at most one per member")


def median_of(values: Sequence[int]) -> int:
    """The median; for an even count (members absent) the lower middle value (Consensus.medianOf)."""
    return sorted(values)[(len(values) - 1) // 2]


def settle(
    weights: Sequence[Sequence[int]], flags: Sequence[int], n: int, seats: int | None = None
) -> tuple[list[int], int]:
    """Consensus.settleAmong: ``weights[m][i]`` is the m-th revealed post's weight for trainer i,
    ``flags[m]`` its bitmap, ``seats`` the committee size (default: every member revealed).

    Returns the per-trainer median over the posts present (0 for a majority-flagged trainer) and the
    flags that more than half of the *seats* set: an absent member counts as not flagging."""
    k = len(weights)
    seats = k if seats is None else seats
    if len(flags) != k:
        raise CommitteeError(f"{k} weight vectors but {len(flags)} flag bitmaps")
    _check_committee(k, seats)
    for m, posted in enumerate(weights):
        if len(posted) != n:
            raise CommitteeError(f"member {m} posted {len(posted)} weights for a round with {n} submissions")
    median, majority = [0] * n, 0
    for i in range(n):
        votes = sum((f >> i) & 1 for f in flags)
        if votes * 2 > seats:
            majority |= 1 << i
        else:
            median[i] = median_of([w[i] for w in weights])
    return median, majority


def distance(
    posted: Sequence[int], posted_flags: int, median: Sequence[int], majority: int, scale: int = WEIGHT_SCALE
) -> tuple[int, int]:
    """Consensus.distance: the L1 distance of the two weight vectors, each first scaled to sum to
    ``scale`` (floor division per entry, as Solidity does), and the number of differing flags among the
    ``len(posted)`` trainers."""
    n = len(posted)
    posted_sum, median_sum = sum(posted), sum(median)
    l1 = 0
    for a_raw, b_raw in zip(posted, median):
        a = 0 if posted_sum == 0 else a_raw * scale // posted_sum
        b = 0 if median_sum == 0 else b_raw * scale // median_sum
        l1 += abs(a - b)
    differing = (posted_flags ^ majority) & ((1 << n) - 1)
    return l1, differing.bit_count()


def deviates(l1: int, flag_disagreements: int) -> bool:
    """The penalty rule (Committee._judge): shares farther than the tolerance (L1 at WEIGHT_SCALE, compared
    exactly, not rounded to basis points) or more flags than the tolerance differ from the consensus."""
    return l1 > SHARE_TOLERANCE_BPS * L1_PER_BPS or flag_disagreements > FLAG_TOLERANCE


def majority_cid(cids: Sequence[str], previous: str, seats: int | None = None) -> str:
    """The model CID more than half of the ``seats`` revealed; with no such CID the previous model stays."""
    seats = len(cids) if seats is None else seats
    if not cids:
        return previous
    cid, count = Counter(cids).most_common(1)[0]
    return cid if count * 2 > seats else previous


def majority_model(posts: Sequence, previous: str, seats: int | None = None) -> tuple[str, str]:
    """Committee._modelOf: the majority's model CID with the report of the first post that revealed it,
    else the previous model and no report."""
    model = majority_cid([p.model_cid for p in posts], previous, seats)
    if not posts or model == previous and all(p.model_cid != model for p in posts):
        return previous, ""
    return model, next(p.report_cid for p in posts if p.model_cid == model)


def consensus(posts: Sequence, n: int, previous_model: str, seats: int | None = None) -> Consensus:
    """The consensus of the revealed posts (objects with ``weights``, ``flags``, ``model_cid``) of a
    committee of ``seats`` members (default: all of them revealed)."""
    median, majority = settle([p.weights for p in posts], [p.flags for p in posts], n, seats)
    return Consensus(median, majority, *majority_model(posts, previous_model, seats))


def judged_weights(weights: Sequence[int], flags: int) -> list[int]:
    """Committee._judge: the weight a member gives a trainer it flags is never paid (the consensus zeroes
    flagged trainers too), so it is judged as 0 and flagging is not counted twice."""
    return [0 if flags >> i & 1 else w for i, w in enumerate(weights)]


def deviations(posts: Sequence, agreed: Consensus, members: Sequence[str] = (), n: int = 0) -> list[Deviation]:
    """Each revealed member's distance from the consensus, in post order, then each of ``members`` that
    posted nothing (penalised as maximally distant, with all ``n`` flags counted as disagreeing)."""
    out = []
    for p in posts:
        l1, flags = distance(judged_weights(p.weights, p.flags), p.flags, agreed.weights, agreed.flags)
        out.append(Deviation(p.member, l1, flags))
    posted = {p.member.lower() for p in posts}
    out += [Deviation(m, 0, n, revealed=False) for m in members if m.lower() not in posted]
    return out

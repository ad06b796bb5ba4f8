"""A project's rounds rebuilt from events alone, so that anyone can audit any round.

The contract keeps only the current and previous rounds in full; every state change is an event,
and this is the one place that folds them back into per-round records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.chain.client import MarketClient, compact_result, unpack_weights


@dataclass
class RoundRecord:
    round: int
    base_model_cid: str  # the global model the round started from
    submissions: list[tuple[str, str]] = field(default_factory=list)  # revealed (trainer, cid), commit order
    commits: list[str] = field(default_factory=list)  # every committer, in commit order
    indices: list[int] = field(default_factory=list)  # commit index of each revealed submission
    global_model_cid: str | None = None  # the result in force (the last one posted)
    report_cid: str | None = None
    weights: list[int] = field(default_factory=list)  # posted weights of the revealed submissions
    flags: int = 0  # posted flags, bit k for revealed submission k
    posts: int = 0  # results posted (more than one after an upheld dispute)
    finalized: bool = False
    distributed: int = 0
    carried: int = 0
    rewards: dict[str, int] = field(default_factory=dict)
    slashes: dict[str, int] = field(default_factory=dict)
    budget: int = 0


def round_history(market: MarketClient, pid: int) -> list[RoundRecord]:
    cfg = market.config(pid)
    opened = {int(e["round"]): e for e in market.events("RoundOpened", pid)}
    records: dict[int, RoundRecord] = {}
    for r in sorted(opened):
        records[r] = RoundRecord(round=r, base_model_cid="", budget=int(opened[r]["budget"]))
    for e in sorted(market.events("UpdateCommitted", pid), key=lambda e: (int(e["round"]), int(e["index"]))):
        records[int(e["round"])].commits.append(e["trainer"])
    for e in sorted(market.events("UpdateRevealed", pid), key=lambda e: (int(e["round"]), int(e["index"]))):
        rec = records[int(e["round"])]
        rec.submissions.append((e["trainer"], e["cid"]))
        rec.indices.append(int(e["index"]))
    # An upheld dispute voids a result; the round's next ResultPosted replaces it. Results cover every
    # committer; the record keeps those of the revealed submissions, which are the ones scored.
    for e in market.events("ResultPosted", pid):
        rec = records[int(e["round"])]
        rec.global_model_cid, rec.report_cid = e["globalModelCid"], e["reportCid"]
        posted = unpack_weights(list(e["weights"]), len(rec.commits))
        rec.weights, rec.flags = compact_result(posted, int(e["flags"]), rec.indices)
        rec.posts += 1
    for e in market.events("RoundFinalized", pid):
        rec = records[int(e["round"])]
        rec.finalized, rec.distributed, rec.carried = True, int(e["distributed"]), int(e["carried"])
    for e in market.events("RewardCredited", pid):
        rec = records[int(e["round"])]
        rec.rewards[e["trainer"]] = rec.rewards.get(e["trainer"], 0) + int(e["amount"])
    for e in market.events("TrainerSlashed", pid):
        rec = records[int(e["round"])]
        rec.slashes[e["trainer"]] = rec.slashes.get(e["trainer"], 0) + int(e["amount"])
    model = cfg.initialModelCid
    for r in sorted(records):
        rec = records[r]
        rec.base_model_cid = model
        if rec.finalized and rec.global_model_cid:
            model = rec.global_model_cid
        elif rec.finalized:
            rec.global_model_cid = model  # no submissions: the model carries forward
    return [records[r] for r in sorted(records)]

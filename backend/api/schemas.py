"""Request and response bodies. These pydantic models are the API's contract in /openapi.json."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from backend.api.chain_view import CommitteeInfo, MemberPostInfo, ProjectView, RoundPhase, RoundView

UINT64_MAX = 2**64 - 1
ProjectId = Annotated[int, Path(ge=0, le=UINT64_MAX, description="project id")]
RoundNo = Annotated[int, Path(ge=0, le=UINT64_MAX, description="round number, from 0")]
Address = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$", description="Ethereum address")]


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_joined, duplicate_update")
    detail: str = Field(description="what was wrong and what to do")


class HealthOut(BaseModel):
    status: str = Field(description="'ok'")
    version: str
    chain: str = Field(description="'embedded' or the JSON-RPC endpoint's kind")
    projects: int = Field(description="number of projects in the market")
    chain_id: int = Field(description="the chain's id; signed requests name it")
    market: str = Field(description="the Marketplace contract's address; signed requests name it")


class ProjectOut(BaseModel):
    project_id: int
    owner: str
    status: str
    current_round: int
    rounds: int
    trainer_count: int
    min_trainers: int
    max_trainers: int
    stake_wei: str = Field(description="decimal string: wei amounts exceed JSON's safe integers")
    reward_pool_wei: str
    reward_asset: str
    spec_cid: str
    global_model_cid: str | None

    @classmethod
    def of(cls, p: ProjectView) -> "ProjectOut":
        return cls(
            project_id=p.project_id,
            owner=p.owner,
            status=p.status,
            current_round=p.current_round,
            rounds=p.rounds,
            trainer_count=p.trainer_count,
            min_trainers=p.min_trainers,
            max_trainers=p.max_trainers,
            stake_wei=str(p.stake_wei),
            reward_pool_wei=str(p.reward_pool_wei),
            reward_asset=p.reward_asset,
            spec_cid=p.spec_cid,
            global_model_cid=p.global_model_cid,
        )


class ProjectList(BaseModel):
    projects: list[ProjectOut]
    total: int = Field(description="number of projects in the market")
    offset: int = Field(description="index of the first project of this page in the whole list")
    next_offset: int | None = Field(description="offset of the next page; null on the last page")


class RoundOut(BaseModel):
    project_id: int
    round: int
    phase: RoundPhase
    submission_deadline: int = Field(description="Unix seconds")
    aggregation_deadline: int
    challenge_deadline: int | None
    submissions: int
    budget_wei: str
    global_model_cid: str | None = Field(description="the model this round produced, once posted")
    report_cid: str | None

    @classmethod
    def of(cls, r: RoundView) -> "RoundOut":
        return cls(
            project_id=r.project_id,
            round=r.round,
            phase=r.phase,
            submission_deadline=r.submission_deadline,
            aggregation_deadline=r.aggregation_deadline,
            challenge_deadline=r.challenge_deadline,
            submissions=r.submissions,
            budget_wei=str(r.budget_wei),
            global_model_cid=r.global_model_cid,
            report_cid=r.report_cid,
        )


def _flag_indices(flags: int | None, n: int) -> list[int] | None:
    return None if flags is None else [i for i in range(n) if flags >> i & 1]


class MemberPostOut(BaseModel):
    member: str = Field(description="the member's address")
    revealed: bool = Field(description="whether it revealed a post for this round")
    weights: list[str] | None = Field(description="its weights per trainer in submitter order (decimal strings)")
    flagged: list[int] | None = Field(description="indices (submitter order) of the trainers it flagged")
    model_cid: str | None
    report_cid: str | None
    penalty_wei: str = Field(description="stake it lost for this round")
    share_distance_bps: int | None = Field(description="its L1 distance from the consensus shares, when penalised")
    flag_disagreements: int | None = Field(description="trainers whose flag it set otherwise than the majority")

    @classmethod
    def of(cls, m: MemberPostInfo, n: int) -> "MemberPostOut":
        return cls(
            member=m.member,
            revealed=m.revealed,
            weights=None if m.weights is None else [str(w) for w in m.weights],
            flagged=_flag_indices(m.flags, n),
            model_cid=m.model_cid,
            report_cid=m.report_cid,
            penalty_wei=str(m.penalty_wei),
            share_distance_bps=m.share_distance_bps,
            flag_disagreements=m.flag_disagreements,
        )


class ConsensusOut(BaseModel):
    weights: list[str] = Field(description="per trainer the median of the members' weights (decimal strings)")
    flagged: list[int] = Field(description="trainers a strict majority of members flagged")
    model_cid: str | None = Field(description="the model CID a strict majority revealed, else the previous model")


class CommitteeOut(BaseModel):
    project_id: int
    round: int
    members: list[MemberPostOut] = Field(description="at most 7 (the largest committee), in drawn order")
    consensus: ConsensusOut | None = Field(description="null until the round is settled")

    @classmethod
    def of(cls, c: CommitteeInfo, submissions: int) -> "CommitteeOut":
        n = min(256, max([submissions] + [len(m.weights or []) for m in c.members]))  # MAX_TRAINERS
        consensus = None
        if c.consensus_weights is not None:
            consensus = ConsensusOut(
                weights=[str(w) for w in c.consensus_weights],
                flagged=_flag_indices(c.consensus_flags or 0, n) or [],
                model_cid=c.consensus_model_cid,
            )
        return cls(
            project_id=c.project_id,
            round=c.round,
            members=[MemberPostOut.of(m, n) for m in c.members],
            consensus=consensus,
        )


class RewardsOut(BaseModel):
    project_id: int
    address: str
    joined: bool
    claimable_wei: str = Field(description="credited by finalized rounds and not yet claimed")
    stake_wei: str = Field(description="stake still held, after slashes")


class UploadOut(BaseModel):
    cid: str = Field(
        description="CID of the stored update; commit to it on-chain with commitUpdate while the round is Open, reveal it after the deadline"
    )
    size: int = Field(description="bytes stored")
    sha256: str


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {code: {"model": ErrorOut} for code in codes}

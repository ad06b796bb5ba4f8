"""Request and response bodies. These pydantic models are the API's contract in /openapi.json."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from backend.api.chain_view import ProjectView, RoundView, RoundPhase

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

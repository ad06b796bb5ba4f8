"""Rounds of a project."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api.chain_view import ProjectView, RoundView
from backend.api.context import ApiContext, get_context
from backend.api.errors import ApiError
from backend.api.routers.projects import existing_project
from backend.api.schemas import CommitteeOut, RoundNo, RoundOut, error_responses

router = APIRouter(prefix="/v1/projects/{project_id}/rounds", tags=["rounds"])


def existing_round(
    round: RoundNo, project: ProjectView = Depends(existing_project), ctx: ApiContext = Depends(get_context)
) -> RoundView:
    """The round named in the path; 404 if the project has no such round."""
    info = ctx.chain.round(project.project_id, round)
    if info is None:
        raise ApiError(404, "round_not_found", f"project {project.project_id} has rounds 0 to {project.rounds - 1}")
    return info


@router.get("/{round}", response_model=RoundOut, responses=error_responses(404))
def get_round(info: RoundView = Depends(existing_round)) -> RoundOut:
    """One round: its phase, deadlines, submissions, budget and results."""
    return RoundOut.of(info)


@router.get("/{round}/committee", response_model=CommitteeOut, responses=error_responses(404))
def get_committee(info: RoundView = Depends(existing_round), ctx: ApiContext = Depends(get_context)) -> CommitteeOut:
    """The round's aggregator committee: each member's revealed weights and flags and any penalty, and
    the consensus the contract settled. Bounded by the contract: at most 7 members of 256 weights each."""
    read = getattr(ctx.chain, "committee", None)
    committee = read(info.project_id, info.round) if callable(read) else None
    if committee is None:
        raise ApiError(
            404, "committee_unavailable", f"no committee is recorded for project {info.project_id} on this market"
        )
    return CommitteeOut.of(committee, info.submissions)

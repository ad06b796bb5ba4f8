"""A trainer's rewards in a project."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api.chain_view import ProjectView
from backend.api.context import ApiContext, get_context
from backend.api.routers.projects import existing_project
from backend.api.schemas import Address, RewardsOut, error_responses

router = APIRouter(prefix="/v1/projects/{project_id}/rewards", tags=["rewards"])


@router.get("/{address}", response_model=RewardsOut, responses=error_responses(404))
def get_rewards(
    address: Address, project: ProjectView = Depends(existing_project), ctx: ApiContext = Depends(get_context)
) -> RewardsOut:
    """What ``address`` can claim now, and the stake it still holds. Claiming is an on-chain call."""
    pid = project.project_id
    return RewardsOut(
        project_id=pid,
        address=address,
        joined=ctx.chain.is_joined(pid, address),
        claimable_wei=str(ctx.chain.claimable(pid, address)),
        stake_wei=str(ctx.chain.stake(pid, address)),
    )

"""GET /v1/health: is the server up, and can it reach the chain."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from backend.api.context import ApiContext, get_context
from backend.api.schemas import HealthOut
from backend.release import release

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(ctx: ApiContext = Depends(get_context)) -> HealthOut:
    """Liveness plus one chain read: 503 when the chain cannot be reached."""
    return HealthOut(
        status="ok",
        version=release(),
        chain=ctx.chain_kind,
        projects=len(ctx.chain.project_ids()),
        chain_id=ctx.chain.chain_id,
        market=ctx.chain.market_address,
    )


@router.head("/health", include_in_schema=False)
def health_probe(ctx: ApiContext = Depends(get_context)) -> Response:
    """HEAD for load balancers' probes: the same checks, no body."""
    health(ctx)
    return Response(status_code=200)

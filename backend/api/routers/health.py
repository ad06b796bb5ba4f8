"""GET /v1/health: is the server up, and can it reach the chain."""
from __future__ import annotations

from fastapi import APIRouter, Depends

import backend
from backend.api.context import ApiContext, get_context
from backend.api.schemas import HealthOut, error_responses

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=HealthOut, responses=error_responses(503))
def health(ctx: ApiContext = Depends(get_context)) -> HealthOut:
    """Liveness plus one chain read: 503 when the chain cannot be reached."""
    return HealthOut(status="ok", version=getattr(backend, "__version__", "0.1.0"), chain=ctx.chain_kind,
                     projects=len(ctx.chain.project_ids()))

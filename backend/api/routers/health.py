"""GET /v1/health: is the server up, and can it reach the chain."""

from __future__ import annotations

import functools
from importlib import metadata

from fastapi import APIRouter, Depends

from backend.api.context import ApiContext, get_context
from backend.api.schemas import HealthOut

router = APIRouter(prefix="/v1", tags=["health"])


@functools.cache  # reading the installed metadata stats site-packages: milliseconds a call
def _version() -> str:
    try:
        return metadata.version("merit")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


@router.get("/health", response_model=HealthOut)
def health(ctx: ApiContext = Depends(get_context)) -> HealthOut:
    """Liveness plus one chain read: 503 when the chain cannot be reached."""
    return HealthOut(
        status="ok",
        version=_version(),
        chain=ctx.chain_kind,
        projects=len(ctx.chain.project_ids()),
        chain_id=ctx.chain.chain_id,
        market=ctx.chain.market_address,
    )

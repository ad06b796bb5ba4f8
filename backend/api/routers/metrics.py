"""GET /metrics, in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.api.context import ApiContext, get_context

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
def metrics(ctx: ApiContext = Depends(get_context)) -> Response:
    """Request counts and latencies by route, uploads accepted and refused."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

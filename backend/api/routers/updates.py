"""Trainers' updates: POST one per round, as safetensors bytes, signed.

The server stores the bytes and answers with their CID; the trainer then commits that CID
on-chain with ``commitUpdate`` (and reveals it after the deadline with ``revealUpdate``). The signature is checked first, then the chain state (read fresh,
not from the cache), and only then is the body read; everything is checked before anything is
stored, and a refused upload leaves nothing behind but its spent nonce.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from backend.models.update_validation import validate_update
from backend import signing
from backend.api.auth import authenticated, signed_body
from backend.api.chain_view import ProjectView, RoundView, RoundPhase, upload_state
from backend.api.context import ApiContext, get_context
from backend.api.model_layout import global_layout
from backend.api.routers.projects import current_model_cid
from backend.api.schemas import ProjectId, RoundNo, UploadOut, error_responses

router = APIRouter(prefix="/v1/projects/{project_id}/rounds/{round}/updates", tags=["updates"])


def upload_allowed(
    project_id: ProjectId,
    round: RoundNo,
    headers: signing.SignedHeaders = Depends(authenticated),
    ctx: ApiContext = Depends(get_context),
) -> tuple[ProjectView, RoundView, signing.SignedHeaders]:
    """The chain-state checks, made after authentication (so that only the trainer learns whether
    it has uploaded) and before the body is read: project and round exist, joined, round Open, no
    earlier update. Read fresh from the chain: a trainer who has just joined is let in at once."""
    state = upload_state(ctx.chain.fresh, project_id, round, headers.address)
    project, info = state.project, state.round
    if project is None:
        raise ctx.refuse(404, "project_not_found", f"there is no project {project_id}; GET /v1/projects lists them")
    if info is None:
        raise ctx.refuse(404, "round_not_found", f"project {project_id} has rounds 0 to {project.rounds - 1}")
    pid, rnd, who = project.project_id, info.round, headers.address
    if not state.joined:
        raise ctx.refuse(403, "not_joined", f"{who} has not joined project {pid}; join on-chain with the stake first")
    if info.phase is not RoundPhase.OPEN:
        raise ctx.refuse(
            409,
            "round_not_open",
            f"round {rnd} of project {pid} is {info.phase.value}, "
            f"not Open; the current round is {project.current_round}",
        )
    if state.submitted or ctx.uploads.has_slot(pid, rnd, who):
        raise ctx.refuse(
            409,
            "duplicate_update",
            f"{who} already submitted an update for round {rnd} of project {pid}; one update per trainer per round",
        )
    return project, info, headers


def _metadata_mismatch(metadata: dict[str, str], project: int, round: int, trainer: str, base: str) -> str | None:
    """Metadata an update carries must describe this upload; absent or empty fields are not required."""
    expected = {"project": str(project), "round": str(round), "trainer": trainer, "base": base}
    for key, want in expected.items():
        got = metadata.get(key)
        if got and got.lower() != want.lower():
            return f"metadata {key}={got!r} does not match this upload ({want})"
    return None


def _validate(ctx: ApiContext, project: ProjectView, round: int, address: str, body: bytes) -> None:
    """The aggregator's own checks (safetensors, keys, shapes, dtypes, finite, size), so that an
    update the API accepts is one the aggregator will not flag as malformed."""
    base = current_model_cid(ctx, project)
    layout = global_layout(ctx.store, base, ctx.layouts)
    result = validate_update(body, layout, max_bytes=ctx.limits.max_body_bytes)
    if not result.ok:
        raise ctx.refuse(422, "invalid_update", result.detail or "malformed update")
    mismatch = _metadata_mismatch(result.metadata, project.project_id, round, address, base)
    if mismatch is not None:
        raise ctx.refuse(422, "invalid_update", mismatch)


_BODY = {
    "requestBody": {
        "required": True,
        "description": "the update (local weights minus global) as safetensors",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "",
    status_code=201,
    response_model=UploadOut,
    responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 429, 503),
    openapi_extra=_BODY,
)
async def upload_update(
    request: Request,
    target: tuple[ProjectView, RoundView, signing.SignedHeaders] = Depends(upload_allowed),
    ctx: ApiContext = Depends(get_context),
) -> UploadOut:
    """Store a trainer's update for an Open round and return its CID. Signed; one per trainer per round.

    Everything but the body is checked first; a refused request is answered without its body being read."""
    project, info, signed = target
    pid, round, address = project.project_id, info.round, signed.address
    if not await run_in_threadpool(ctx.uploads.reserve, pid, round, address):
        raise ctx.refuse(409, "duplicate_update", f"{address} already submitted an update for round {round}")
    try:
        async with signed_body(request, ctx, signed) as body:
            await run_in_threadpool(_validate, ctx, project, round, address, body)
            cid = await run_in_threadpool(ctx.store.add_bytes, body)
            await run_in_threadpool(ctx.uploads.accept, pid, round, address, cid, len(body), signed.body_sha256)
    except BaseException:
        await run_in_threadpool(ctx.uploads.release, pid, round, address)
        raise
    ctx.metrics.uploads_accepted.inc()
    ctx.metrics.upload_bytes.inc(len(body))
    return UploadOut(cid=cid, size=len(body), sha256=signed.body_sha256)

"""Trainers' updates: POST one per round, as safetensors bytes, signed.

The server stores the bytes and answers with their CID; the trainer then commits that CID
on-chain with ``commitUpdate`` (revealed after the deadline with ``revealUpdate``). Everything is checked before anything is stored, and a refused
upload leaves nothing behind but its spent nonce.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from aggregator.validation import validate_update
from backend.api import signing
from backend.api.auth import SignedWrite, signed_headers, signed_write
from backend.api.chain_view import ProjectInfo, RoundInfo, RoundPhase
from backend.api.context import ApiContext, get_context
from backend.api.model_layout import global_layout
from backend.api.routers.projects import current_model_cid, existing_project
from backend.api.routers.rounds import existing_round
from backend.api.schemas import UploadOut, error_responses

router = APIRouter(prefix="/v1/projects/{project_id}/rounds/{round}/updates", tags=["updates"])


def upload_allowed(headers: signing.SignedHeaders = Depends(signed_headers),
                   project: ProjectInfo = Depends(existing_project), info: RoundInfo = Depends(existing_round),
                   ctx: ApiContext = Depends(get_context)) -> tuple[ProjectInfo, RoundInfo]:
    """The chain-state checks, made before the body is read: joined, round Open, no earlier update."""
    pid, rnd, who = project.project_id, info.round, headers.address
    if not ctx.chain.is_joined(pid, who):
        raise ctx.refuse(403, "not_joined", f"{who} has not joined project {pid}; join on-chain with the stake first")
    if info.phase is not RoundPhase.OPEN:
        raise ctx.refuse(409, "round_not_open", f"round {rnd} of project {pid} is {info.phase.value}, "
                                                 f"not Open; the current round is {project.current_round}")
    if ctx.uploads.has_slot(pid, rnd, who) or ctx.chain.has_submitted(pid, rnd, who):
        raise ctx.refuse(409, "duplicate_update", f"{who} already submitted an update for round {rnd} "
                                                   f"of project {pid}; one update per trainer per round")
    return project, info


def _metadata_mismatch(metadata: dict[str, str], project: int, round: int, trainer: str, base: str) -> str | None:
    """Metadata an update carries must describe this upload; absent or empty fields are not required."""
    expected = {"project": str(project), "round": str(round), "trainer": trainer, "base": base}
    for key, want in expected.items():
        got = metadata.get(key)
        if got and got.lower() != want.lower():
            return f"metadata {key}={got!r} does not match this upload ({want})"
    return None


def _validate(ctx: ApiContext, project: ProjectInfo, round: int, write: SignedWrite) -> None:
    """The aggregator's own checks (safetensors, keys, shapes, dtypes, finite, size), so that an
    update the API accepts is one the aggregator will not flag as malformed."""
    base = current_model_cid(ctx, project)
    layout = global_layout(ctx.store, base, ctx.layouts)
    result = validate_update(write.body, layout, max_bytes=ctx.limits.max_body_bytes)
    if not result.ok:
        raise ctx.refuse(422, "invalid_update", result.detail or "malformed update")
    mismatch = _metadata_mismatch(result.metadata, project.project_id, round, write.address, base)
    if mismatch is not None:
        raise ctx.refuse(422, "invalid_update", mismatch)


_BODY = {"requestBody": {"required": True, "description": "the update (local weights minus global) as safetensors",
                         "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("", status_code=201, response_model=UploadOut,
             responses=error_responses(400, 401, 403, 404, 408, 409, 413, 422, 429),
             openapi_extra=_BODY)
async def upload_update(target: tuple[ProjectInfo, RoundInfo] = Depends(upload_allowed),
                        write: SignedWrite = Depends(signed_write), ctx: ApiContext = Depends(get_context)) -> UploadOut:
    """Store a trainer's update for an Open round and return its CID. Signed; one per trainer per round."""
    project, info = target
    pid, round = project.project_id, info.round
    if not await run_in_threadpool(ctx.uploads.reserve, pid, round, write.address):
        raise ctx.refuse(409, "duplicate_update", f"{write.address} already submitted an update for round {round}")
    try:
        await run_in_threadpool(_validate, ctx, project, round, write)
        cid = await run_in_threadpool(ctx.store.add_bytes, write.body)
        await run_in_threadpool(ctx.uploads.accept, pid, round, write.address, cid, len(write.body), write.sha256)
    except BaseException:
        await run_in_threadpool(ctx.uploads.release, pid, round, write.address)
        raise
    ctx.metrics.uploads_accepted.inc()
    ctx.metrics.upload_bytes.inc(len(write.body))
    return UploadOut(cid=cid, size=len(write.body), sha256=write.sha256)

"""Projects: the list, one project, its model spec and its current global model."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from backend import safe_json
from backend.api.chain_view import ProjectView
from backend.api.context import ApiContext, get_context
from backend.api.errors import ApiError
from backend.api.schemas import ProjectId, ProjectList, ProjectOut, error_responses
from backend.limits import SPEC_MAX_BYTES

router = APIRouter(prefix="/v1/projects", tags=["projects"])

CID_HEADER = "X-Merit-CID"


def existing_project(project_id: ProjectId, ctx: ApiContext = Depends(get_context)) -> ProjectView:
    """The project named in the path; 404 if there is none."""
    project = ctx.chain.project(project_id)
    if project is None:
        raise ApiError(404, "project_not_found", f"there is no project {project_id}; GET /v1/projects lists them")
    return project


def current_model_cid(ctx: ApiContext, project: ProjectView) -> str:
    """The global model trainers start from: the latest posted one, else the spec's initial weights."""
    if project.global_model_cid:
        return project.global_model_cid
    try:
        spec = safe_json.loads(ctx.store.get_bytes(project.spec_cid, max_size=SPEC_MAX_BYTES), what="model spec")
        return str(spec["initial_weights"])
    except (safe_json.UntrustedJSONError, KeyError, TypeError):
        raise ApiError(404, "model_not_found", f"project {project.project_id} has no global model yet") from None


MAX_PAGE = 1000


@router.get("", response_model=ProjectList)
async def list_projects(
    offset: int = Query(0, ge=0, le=2**32, description="skip this many projects (ids in ascending order)"),
    limit: int = Query(100, ge=1, le=MAX_PAGE, description=f"at most this many projects (1-{MAX_PAGE})"),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    """The market's projects, in id order, a page at a time: ``?offset=0&limit=100``, then
    ``?offset=<next_offset>`` until ``next_offset`` is null. Read in one batch per page and
    cached per block, rendered JSON included: a page asked for again costs no chain read and no
    serialisation."""
    key = ("projects page", offset, limit)
    found, body = ctx.chain.peek(key)  # served on the event loop: no thread hop for a cached page
    if not found:
        body = await run_in_threadpool(
            ctx.chain.memo,
            key,
            lambda: _page(ctx, offset, limit).model_dump_json().encode(),
            timeless=True,  # stored state only: a new block retires it
        )
    return Response(body, media_type="application/json")


def _page(ctx: ApiContext, offset: int, limit: int) -> ProjectList:
    ids = ctx.chain.project_ids()
    page = ids[offset : offset + limit]
    projects = ctx.chain.projects(page) if page else []
    end = offset + len(page)
    return ProjectList(
        projects=[ProjectOut.of(p) for p in projects if p is not None],
        total=len(ids),
        offset=offset,
        next_offset=end if end < len(ids) else None,
    )


@router.get("/{project_id}", response_model=ProjectOut, responses=error_responses(404))
def get_project(project: ProjectView = Depends(existing_project)) -> ProjectOut:
    """One project: parameters, current round, trainers, model spec and global model CIDs."""
    return ProjectOut.of(project)


@router.get(
    "/{project_id}/model",
    response_class=Response,
    responses={
        200: {
            "description": f"the global weights as safetensors; the {CID_HEADER} header is their CID",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {CID_HEADER: {"description": "CID of the weights", "schema": {"type": "string"}}},
        },
        **error_responses(404),
    },
)
def get_model(project: ProjectView = Depends(existing_project), ctx: ApiContext = Depends(get_context)) -> Response:
    """The current global model. Check the bytes against the CID on-chain before you use them."""
    cid = current_model_cid(ctx, project)
    return _content(ctx.store.get_bytes(cid), cid, "application/octet-stream")


def _content(data: bytes, cid: str, media_type: str) -> Response:
    """Stored bytes with their CID, for the client to check; revalidated on every use, since a
    project id can name another project after a dev chain restarts."""
    return Response(
        data, media_type=media_type, headers={CID_HEADER: cid, "ETag": f'"{cid}"', "Cache-Control": "no-cache"}
    )


@router.get(
    "/{project_id}/spec",
    response_class=Response,
    responses={
        200: {
            "description": f"the model spec as stored (JSON); the {CID_HEADER} header is its CID",
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": {CID_HEADER: {"description": "CID of the spec", "schema": {"type": "string"}}},
        },
        **error_responses(404),
    },
)
def get_spec(project: ProjectView = Depends(existing_project), ctx: ApiContext = Depends(get_context)) -> Response:
    """The project's model spec: architecture, input shape, classes, hyper-parameters and the
    aggregator's configuration. The bytes are served exactly as stored, so they hash to the spec
    CID on-chain: check them before you use them."""
    return _content(
        ctx.store.get_bytes(project.spec_cid, max_size=SPEC_MAX_BYTES), project.spec_cid, "application/json"
    )

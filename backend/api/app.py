"""The FastAPI application: ``create_app(settings)`` wires the chain, the store and the routers."""
from __future__ import annotations

import re
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from backend.api.chain_view import ChainView, SerializedChainView
from backend.api.context import ApiContext
from backend.api.errors import install_error_handlers
from backend.api.limits import ApiLimits, RateLimiter
from backend.api.metrics import ApiMetrics, MetricsMiddleware
from backend.api.records import NonceRegistry, UploadIndex
from backend.api.routers import health, metrics, projects, rewards, rounds, updates
from backend.api.schemas import error_responses
from backend.config import Settings, get_settings
from backend.storage import Store, open_store

API_VERSION = "1.0.0"


def records_dir(settings: Settings, chain_view: ChainView) -> Path | None:
    """Where the upload index and nonces live: one directory per market, so that records of one
    market never answer for another. None (in memory) on the embedded chain, whose market dies
    with the process and is redeployed at the same address on the next start."""
    if settings.chain == "embedded":
        return None
    key = getattr(chain_view, "market_key", None) or "default"
    return settings.home / "api" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))


def create_app(settings: Settings | None = None, chain_view: ChainView | None = None,
               store: Store | None = None, *, limits: ApiLimits | None = None) -> FastAPI:
    """The API app. Without a chain view or store it opens those that ``settings`` name."""
    settings = settings or get_settings()
    if chain_view is None:
        from backend.api.chain_connect import open_chain_view

        chain_view = open_chain_view(settings)
    owns_store = store is None
    if store is None:
        store = open_store(settings.ipfs, home=settings.home)
    limits = limits or ApiLimits(max_body_bytes=settings.max_update_bytes)
    records = records_dir(settings, chain_view)
    ctx = ApiContext(
        settings=settings,
        chain=SerializedChainView(chain_view),
        store=store,
        limits=limits,
        rate_limiter=RateLimiter(limits.writes_per_minute, limits.write_burst),
        uploads=UploadIndex(records / "uploads.sqlite3" if records else None),
        nonces=NonceRegistry(records / "nonces.sqlite3" if records else None),
        metrics=ApiMetrics(),
        chain_kind="embedded" if settings.chain == "embedded" else "json-rpc",
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        ctx.close()
        if owns_store:
            store.close()

    app = FastAPI(
        title="Merit API",
        version=API_VERSION,
        summary="Trainers read projects, rounds, models and rewards, and upload signed updates.",
        description="Writes are signed with the trainer's Ethereum key (EIP-191); see backend/api/signing.py. "
                    'Every error is JSON {"error": code, "detail": text}.',
        lifespan=lifespan,
        responses=error_responses(422, 503),  # our error body for FastAPI's 422; 503: chain or store unreachable
    )
    app.state.merit = ctx
    install_error_handlers(app)
    for module in (health, projects, rounds, rewards, updates, metrics):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    return app

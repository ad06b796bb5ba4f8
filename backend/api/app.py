"""The FastAPI application: ``create_app(settings)`` wires the chain, the store and the routers."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend import signing
from backend.api.chain_cache import CachedChainView
from backend.api.chain_connect import open_chain_view
from backend.api.chain_view import ChainView, serialized_if_needed
from backend.api.context import ApiContext
from backend.api.errors import install_error_handlers
from backend.api.http_guards import CloseUnreadBody, ReadRateLimit
from backend.api.limits import ApiLimits, InflightBytes, RateLimiter
from backend.api.metrics import ApiMetrics, MetricsMiddleware
from backend.api.records import NonceRegistry, UploadIndex
from backend.api.routers import health, metrics, projects, rewards, rounds, updates
from backend.api.schemas import error_responses
from backend.config import Settings, get_settings
from backend.errors import ConfigError
from backend.storage import Store, open_store

API_VERSION = "2.0.0"


def records_dir(settings: Settings, chain_view: ChainView) -> Path | None:
    """Where the upload index and nonces live: one directory per market, so that records of one
    market never answer for another. None (in memory) on the embedded chain, whose market dies
    with the process and is redeployed at the same address on the next start."""
    if settings.chain == "embedded":
        return None
    key = getattr(chain_view, "market_key", None) or "default"
    return settings.home / "api" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))


def configured_origins(settings: Settings) -> frozenset[str] | None:
    """The origins signatures must name (``MERIT_API_ORIGIN``, comma-separated), or None."""
    if not settings.api_origin:
        return None
    try:
        return frozenset(signing.canonical_origin(o) for o in settings.api_origin.split(",") if o.strip())
    except ValueError as exc:
        raise ConfigError(
            f"MERIT_API_ORIGIN: {exc}", "give the URL(s) trainers use, e.g. https://merit.example.org"
        ) from None


def create_app(
    settings: Settings | None = None,
    chain_view: ChainView | None = None,
    store: Store | None = None,
    *,
    limits: ApiLimits | None = None,
) -> FastAPI:
    """The API app. Without a chain view or store it opens those that ``settings`` name."""
    settings = settings or get_settings()
    origins = configured_origins(settings)
    if chain_view is None:
        chain_view = open_chain_view(settings)
    owns_store = store is None
    if store is None:
        store = open_store(settings.ipfs, home=settings.home)
    limits = limits or ApiLimits.from_settings(settings)
    records = records_dir(settings, chain_view)
    ctx = ApiContext(
        settings=settings,
        chain=CachedChainView(serialized_if_needed(chain_view), limits.chain_cache_s),
        store=store,
        limits=limits,
        rate_limiter=RateLimiter(limits.writes_per_minute, limits.write_burst),
        ip_write_limiter=RateLimiter(limits.ip_writes_per_minute, limits.ip_write_burst),
        read_limiter=RateLimiter(limits.reads_per_minute, limits.read_burst),
        inflight=InflightBytes(limits.max_inflight_upload_bytes),
        uploads=UploadIndex(records / "uploads.sqlite3" if records else None),
        nonces=NonceRegistry(records / "nonces.sqlite3" if records else None),
        metrics=ApiMetrics(),
        chain_kind="embedded" if settings.chain == "embedded" else "json-rpc",
        origins=origins,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        ctx.close()
        if owns_store:
            store.close()

    # FastAPIOffline serves /docs and /redoc with the Swagger UI and ReDoc assets its package ships:
    # the docs work on a machine with no internet.
    app = FastAPIOffline(
        title="Merit API",
        version=API_VERSION,
        summary="Trainers read projects, rounds, models and rewards, and upload signed updates.",
        description=f"Writes are signed with the trainer's Ethereum key (EIP-191, scheme {signing.SCHEME}); see "
        "backend/signing.py and the README. Reads are limited per client IP. "
        'Every error is JSON {"error": code, "detail": text}.',
        lifespan=lifespan,
        # our error body for FastAPI's 422; 429: read limit; 503: chain or store unreachable
        responses=error_responses(422, 429, 503),
    )
    app.state.merit = ctx
    install_error_handlers(app)
    for module in (health, projects, rounds, rewards, updates, metrics):
        app.include_router(module.router)
    app.add_middleware(ReadRateLimit, limiter=ctx.read_limiter)
    app.add_middleware(CloseUnreadBody)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    return app

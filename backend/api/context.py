"""What every request handler shares: the chain view, the store, limits and records."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request

from backend.api.chain_cache import CachedChainView
from backend.api.errors import ApiError
from backend.api.limits import ApiLimits, InflightBytes, RateLimiter
from backend.api.metrics import ApiMetrics
from backend.api.records import NonceRegistry, UploadIndex
from backend.config import Settings
from backend.storage import Store


@dataclass
class ApiContext:
    settings: Settings
    chain: CachedChainView  # reads, cached per block; ``chain.fresh`` for writes' checks
    store: Store
    limits: ApiLimits
    rate_limiter: RateLimiter  # signed writes per address, spent once the signature is verified
    ip_write_limiter: RateLimiter  # write attempts per client IP, spent before any crypto
    read_limiter: RateLimiter  # reads per client IP
    inflight: InflightBytes  # upload bytes held at once
    uploads: UploadIndex
    nonces: NonceRegistry
    metrics: ApiMetrics
    chain_kind: str
    # the origins a signature may name; None: the origin the request was addressed to (development)
    origins: frozenset[str] | None = None
    # model layouts by global-model CID, so that an upload does not load the global model again
    layouts: OrderedDict = field(default_factory=OrderedDict)

    def refuse(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> ApiError:
        """An upload refusal to raise, counted by its error code in the metrics."""
        self.metrics.uploads_rejected.labels(error).inc()
        return ApiError(status, error, detail, headers)

    def close(self) -> None:
        self.uploads.close()
        self.nonces.close()


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request
    return request.app.state.merit


def client_ip(request_or_scope) -> str:
    """The client's address as uvicorn saw it (after trusted proxies' X-Forwarded-For, if configured)."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    client = scope.get("client")
    return client[0] if client else "unknown"

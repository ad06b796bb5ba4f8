"""What every request handler shares: the chain view, the store, limits and records."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request

from backend.api.chain_view import ChainView
from backend.api.errors import ApiError
from backend.api.limits import ApiLimits, RateLimiter
from backend.api.metrics import ApiMetrics
from backend.api.records import NonceRegistry, UploadIndex
from backend.config import Settings
from backend.storage import Store


@dataclass
class ApiContext:
    settings: Settings
    chain: ChainView
    store: Store
    limits: ApiLimits
    rate_limiter: RateLimiter
    uploads: UploadIndex
    nonces: NonceRegistry
    metrics: ApiMetrics
    chain_kind: str
    # model layouts by global-model CID, so that an upload does not load the global model again
    layouts: OrderedDict = field(default_factory=OrderedDict)

    def refuse(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> ApiError:
        """An upload refusal to raise, counted by its error code in the metrics."""
        self.metrics.uploads_rejected.labels(error).inc()
        return ApiError(status, error, detail, headers)

    def close(self) -> None:
        self.uploads.close()
        self.nonces.close()


def get_context(request: Request) -> ApiContext:
    return request.app.state.merit

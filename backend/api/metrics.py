"""Prometheus metrics, one registry per app so that several apps can live in one process (tests)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "merit_api_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "merit_api_request_seconds",
            "time to answer a request",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge("merit_api_requests_in_flight", "requests being answered", registry=self.registry)
        self.uploads_accepted = Counter("merit_api_uploads_accepted_total", "updates stored", registry=self.registry)
        self.upload_bytes = Counter("merit_api_upload_bytes_total", "bytes of updates stored", registry=self.registry)
        self.uploads_rejected = Counter(
            "merit_api_uploads_rejected_total",
            "update uploads refused, by error code",
            ["error"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every request by its route template, never its raw path (bounded labels)."""

    def __init__(self, app, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or (scope["path"] if "endpoint" in scope else "unmatched")
            method = (
                scope["method"]
                if scope["method"] in ("GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
                else "OTHER"
            )
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)

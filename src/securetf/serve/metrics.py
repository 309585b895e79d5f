"""Prometheus metrics of one server: requests, latency, batch sizes (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["ServeMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """The server's counters and histograms; each server has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "securetf_serve_requests",
            "Requests by API (rest, grpc), method, model and status code.",
            ["api", "method", "model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "securetf_serve_request_seconds",
            "Request handling time by API and method.",
            ["api", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "securetf_serve_batch_size",
            "Rows per model call.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "securetf_serve_batch_requests",
            "Requests merged into one model call.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def on_batch(self, model: str, rows: int, requests: int) -> None:
        self.batch_rows.labels(model).observe(rows)
        self.batch_requests.labels(model).observe(requests)

    def observe(self, api: str, method: str, model: str, code: str, seconds: float) -> None:
        self.requests.labels(api, method, model, code).inc()
        self.latency.labels(api, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

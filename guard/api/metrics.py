"""Request metrics and the /metrics exposition, through ``prometheus_client``.

Each app owns a :class:`~prometheus_client.CollectorRegistry` (several apps may live in one
process, e.g. in tests). Counting happens in a plain ASGI middleware (no per-request task or
body buffering); the route *template* is the label, so ids in paths do not explode the series
count. Gauges read from the service are collected at scrape time by a :class:`ServiceCollector`.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Upper bounds (seconds) of the request latency histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: A gauge read at scrape time: name, help text and its labelled samples.
GaugeReading = tuple[str, str, list[tuple[dict[str, str], float]]]


class RequestMetrics:
    """Requests per (method, route, status) and a latency histogram per route, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("guard_http_requests", "HTTP requests answered, by method, route and status.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("guard_http_request_duration_seconds", "Time to answer HTTP requests.",
                                 ["method", "route"], buckets=BUCKETS, registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class ServiceCollector(Collector):
    """Gauges computed by ``read()`` at every scrape (references, queues, streams, outbox …)."""

    def __init__(self, read: Callable[[], Iterable[GaugeReading]]):
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, help_text, samples in self.read():
            labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for sample_labels, value in samples:
                family.add_metric([str(sample_labels[key]) for key in labels], float(value))
            yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # read at scrape time only: registering must not query the service


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry's samples in the Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware that times every HTTP request into a :class:`RequestMetrics`."""

    def __init__(self, app, metrics: RequestMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status["code"], time.perf_counter() - start)

"""Request counters and the Prometheus text exposition of /metrics.

Counting happens in a plain ASGI middleware (no per-request task or body buffering); the
route *template* is the label, so ids in paths do not explode the series count.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Iterable

#: Upper bounds (seconds) of the request latency histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Requests per (method, route, status) and a latency histogram per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        with self._lock:
            self.requests[(method, route, status)] += 1
            hist = self.latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += 1  # count (the +Inf bucket)
            hist[-1] += seconds

    def lines(self) -> Iterable[str]:
        """Prometheus text lines of the counters."""
        with self._lock:
            requests = dict(self.requests)
            latency = {k: list(v) for k, v in self.latency.items()}
        yield "# HELP guard_http_requests_total HTTP requests answered, by method, route and status."
        yield "# TYPE guard_http_requests_total counter"
        for (method, route, status), n in sorted(requests.items()):
            yield f'guard_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}'
        yield "# HELP guard_http_request_duration_seconds Time to answer HTTP requests."
        yield "# TYPE guard_http_request_duration_seconds histogram"
        for (method, route), hist in sorted(latency.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            for bound, n in zip(BUCKETS, hist):
                yield f'guard_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {int(n)}'
            yield f'guard_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {int(hist[-2])}'
            yield f"guard_http_request_duration_seconds_count{{{labels}}} {int(hist[-2])}"
            yield f"guard_http_request_duration_seconds_sum{{{labels}}} {hist[-1]:.6f}"


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


def gauge(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    """Prometheus text lines of one gauge with labelled samples."""
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        text = ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items())
        out.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

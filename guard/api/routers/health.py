"""Liveness (/healthz, no key) and Prometheus metrics (/metrics, admin key)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from guard import __version__
from guard.api.deps import AdminKey, GuardDep
from guard.api.metrics import gauge
from guard.api.schemas import Health
from guard.incidents import STATUSES as INCIDENT_STATUSES
from guard.jobs import STATUSES
from guard.service import Guard

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz(guard: GuardDep) -> dict:
    """200 while the service answers and its catalog can be read (no key needed)."""
    guard.catalog.generation()
    return {"status": "ok", "version": __version__}


@router.get(
    "/metrics", summary="Prometheus metrics", response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format 0.0.4."}},
)
def metrics(request: Request, guard: GuardDep, key: AdminKey) -> PlainTextResponse:
    """Counters and gauges in the Prometheus text format (scrape with an admin key)."""
    lines = list(request.app.state.metrics.lines())
    lines += service_gauges(guard)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8")


def service_gauges(guard: Guard) -> list[str]:
    """Gauges read from the service: references, index size, job queues, streams, incidents, webhooks."""
    refs = guard.catalog.query("SELECT COUNT(*) FROM refs")[0][0]
    lines = gauge("guard_references", "Registered references.", [({}, refs)])
    lines += gauge("guard_index_vectors", "Frame hashes in the search index.", [({}, len(guard.index))])
    counts = guard.jobs.counts()
    lines += gauge("guard_jobs", "Background jobs by kind and state (queued = queue depth).",
                   [({"kind": kind, "status": st}, counts.get((kind, st), 0))
                    for kind in sorted(guard.jobs.handlers) for st in STATUSES])
    lines += _issue5_gauges(guard)
    return lines


def _issue5_gauges(guard: Guard) -> list[str]:
    """Live streams, incidents and webhook outbox gauges."""
    now = time.time()
    active = guard.streams.list(active=True, limit=guard.streams.max_streams)
    fps = sum(s.frames / max(now - s.started, 1e-3) for s in active)
    lines = gauge("guard_streams_monitored", "Live streams being monitored.", [({}, len(active))])
    lines += gauge("guard_stream_frames_per_second", "Sampled frames per second over the monitored streams "
                   "(each stream's average since it started).", [({}, round(fps, 3))])
    lines += gauge("guard_stream_lag_seconds_max", "Worst lag behind real time of a monitored stream.",
                   [({}, max((s.lag for s in active), default=0.0))])
    lines += gauge("guard_incidents", "Incidents by review status.",
                   [({"status": st}, guard.incidents.count(status=st)) for st in INCIDENT_STATUSES])
    outbox = dict(guard.catalog.query("SELECT status, COUNT(*) FROM outbox GROUP BY status"))
    lines += gauge("guard_webhook_outbox", "Webhook outbox rows by state (pending = queue depth, "
                   "failed = given up after the last retry).",
                   [({"status": st}, outbox.get(st, 0)) for st in ("pending", "delivered", "failed")])
    failed = guard.catalog.query("SELECT COUNT(*) FROM webhook_deliveries WHERE status_code IS NULL"
                                 " OR status_code < 200 OR status_code >= 300")[0][0]
    lines += gauge("guard_webhook_failed_attempts", "Webhook delivery attempts that failed (all time).",
                   [({}, failed)])
    return lines

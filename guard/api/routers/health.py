"""Liveness (/healthz, no key) and Prometheus metrics (/metrics, admin key)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from guard import __version__
from guard.api.deps import AdminKey, GuardDep
from guard.api.metrics import GaugeReading, exposition
from guard.api.schemas import Health
from guard.incidents import STATUSES as INCIDENT_STATUSES
from guard.jobs import STATUSES
from guard.service import Guard

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz(guard: GuardDep) -> dict:
    """200 while the service answers and its catalog can be read (no key needed).

    A plain ``def``: FastAPI runs it in its thread pool, so reading the catalog never blocks
    the event loop."""
    guard.catalog.generation()
    return {"status": "ok", "version": __version__}


@router.get(
    "/metrics", summary="Prometheus metrics", response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format."}},
)
def metrics(request: Request, guard: GuardDep, key: AdminKey) -> Response:
    """Counters and gauges in the Prometheus text format (scrape with an admin key)."""
    body, content_type = exposition(request.app.state.registry)
    return Response(body, media_type=content_type)


def service_gauges(guard: Guard) -> list[GaugeReading]:
    """Gauges read from the service: references, index size, job queues, streams, incidents, webhooks."""
    refs = len(guard.references())
    counts = guard.jobs.counts()
    return [
        ("guard_references", "Registered references.", [({}, refs)]),
        ("guard_index_vectors", "Frame hashes in the search index.", [({}, len(guard.index))]),
        ("guard_jobs", "Background jobs by kind and state (queued = queue depth).",
         [({"kind": kind, "status": st}, counts.get((kind, st), 0))
          for kind in sorted(guard.jobs.handlers) for st in STATUSES]),
        *_live_gauges(guard),
    ]


def _live_gauges(guard: Guard) -> list[GaugeReading]:
    """Live streams, incidents and webhook outbox gauges."""
    now = time.time()
    active = guard.streams.list(active=True, limit=guard.streams.max_streams)
    fps = sum(s.frames / max(now - s.started, 1e-3) for s in active)
    outbox = guard.actions.outbox_counts()
    failed = guard.actions.failed_attempts()
    return [
        ("guard_streams_monitored", "Live streams being monitored.", [({}, len(active))]),
        ("guard_stream_frames_per_second", "Sampled frames per second over the monitored streams "
         "(each stream's average since it started).", [({}, round(fps, 3))]),
        ("guard_stream_lag_seconds_max", "Worst lag behind real time of a monitored stream.",
         [({}, max((s.lag for s in active), default=0.0))]),
        ("guard_incidents", "Incidents by review status.",
         [({"status": st}, guard.incidents.count(status=st)) for st in INCIDENT_STATUSES]),
        ("guard_webhook_outbox", "Webhook outbox rows by state (pending = queue depth, "
         "failed = given up after the last retry).",
         [({"status": st}, outbox.get(st, 0)) for st in ("pending", "delivered", "failed")]),
        ("guard_webhook_failed_attempts", "Webhook delivery attempts that failed (all time).", [({}, failed)]),
    ]

"""The FastAPI application: ``create_app(settings)`` wires routers, auth, errors and metrics.

The app is a thin shell over one :class:`guard.service.Guard`; ``guard serve`` runs it with
uvicorn. OpenAPI is at ``/openapi.json``, interactive docs at ``/docs``.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import Any, Iterable

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from guard import __version__
from guard.api import errors
from guard.api.deps import known_query_only
from guard.api.metrics import MetricsMiddleware, RequestMetrics, ServiceCollector
from guard.api.routers import health, incidents, references, scans, streams, ui, webhooks
from guard.api.schemas import ErrorBody
from guard.config import PROCESS_ROLES, Settings
from guard.service import Guard

log = logging.getLogger(__name__)

#: Error responses every authenticated route can give, documented once for all of them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad request (e.g. a URL the policy refuses)",
        401: "Missing, unknown or revoked API key",
        403: "The key's role may not use this route",
        404: "No such object, or it belongs to another tenant",
        409: "Conflicts with the current state",
        413: "Upload over the size limit",
        422: "Invalid parameters, body or media",
        503: "The store cannot be used right now",
        507: "Not enough disk space for the upload",
    }.items()
}

DESCRIPTION = """Find unauthorized rebroadcasts of registered reference videos.

Every route except `/healthz` needs `Authorization: Bearer <key>`; keys are made with
`guard keys create --role admin|rights_holder|platform --owner NAME`. Rights holders manage
their references and read incidents on them; platforms submit scans and live streams and
read their results; admins see everything. Another tenant's object answers 404.
Errors always have the body `{"error": {"status", "code", "message", "details"}}`.
"""


def create_app(settings: Settings | None = None, roles: Iterable[str] = PROCESS_ROLES) -> FastAPI:
    """Build the API over a new :class:`Guard` for ``settings`` (closed when the app stops).

    ``roles`` (:data:`guard.config.PROCESS_ROLES`; ``api`` is implied) say what else this
    process runs: job workers, live monitors, the webhook dispatcher. Work of a role it lacks
    waits in the catalog for another ``guard serve`` over the same store.
    """
    guard = Guard(settings or Settings.from_env(), roles=roles)
    try:
        guard.start()
        _remove_stale_uploads(guard)
    except BaseException:
        guard.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            guard.close()

    app = FastAPI(title="guard", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.guard = guard
    app.state.registry = CollectorRegistry()
    app.state.metrics = RequestMetrics(app.state.registry)
    app.state.registry.register(ServiceCollector(lambda: health.service_gauges(guard)))
    errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    strict = [Depends(known_query_only)]
    app.include_router(health.router, responses={k: ERROR_RESPONSES[k] for k in (401, 403, 422, 503)},
                       dependencies=strict)
    for area in (references, scans, streams, incidents, webhooks):
        app.include_router(area.router, responses=ERROR_RESPONSES, dependencies=strict)
    app.include_router(ui.api, responses={k: ERROR_RESPONSES[k] for k in (401, 422, 503)}, dependencies=strict)
    app.include_router(ui.page)
    return app


def _remove_stale_uploads(guard: Guard) -> None:
    """Delete upload files no unfinished job needs: orphans of a crash in the middle of an
    upload, and files of finished jobs left by a crash while their job ended.

    Runs after :meth:`JobQueue.recover`, which may already have handed a queued job to a
    worker: that job is running, and its upload is kept like a queued one's.
    """
    folder = guard.settings.uploads
    if not folder.is_dir():
        return
    needed = {os.path.realpath(name) for name in guard.jobs.files_in_use()}
    for path in folder.glob("upload-*"):
        if os.path.realpath(path) not in needed:
            path.unlink(missing_ok=True)
            log.info("removed stale upload %s", path.name)

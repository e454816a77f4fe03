"""One JSON error shape for every failure the API reports.

Every error body is ``{"error": {"status": 404, "code": "not_found", "message": "...",
"details": [...] | null}}``. Guard's own errors carry their HTTP status; validation errors
answer 422 with the offending fields in ``details``; anything unexpected answers 500 with a
generic message (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard.errors import AuthError, GuardError, StoreError

log = logging.getLogger(__name__)


#: Stable machine-readable codes of the statuses the API uses; others follow the reason phrase.
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid", 429: "too_many_requests", 500: "internal_error", 503: "unavailable",
    507: "insufficient_storage",
}


def _code(status: int) -> str:
    if status in CODES:
        return CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(status: int, message: str, details: list | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every failure uses."""
    body = {"error": {"status": status, "code": _code(status), "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _guard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GuardError)
    status = exc.http_status
    if isinstance(exc, StoreError):
        log.error("store error on %s %s: %s", request.method, request.url.path, exc)
        status = 503
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
    return error_response(status, str(exc), headers=headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")),
         "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]
    first: dict[str, Any] = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    return error_response(422, f"invalid request: {where}: {first['msg']}" if where else first["msg"], details)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else _code(exc.status_code).replace("_", " ")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, message, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API documents at this path (Starlette names only the first route's).

    A literal path (``/v1/references/import``) wins over a template (``/v1/references/{ref_id}``).
    """
    matches: list[tuple[int, set[str]]] = []
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            matches.append((template.count("{"), {m.upper() for m in operations}))
    if not matches:
        return []
    fewest = min(params for params, _ in matches)
    methods = set().union(*(m for params, m in matches if params == fewest))
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error shape."""
    app.add_exception_handler(GuardError, _guard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

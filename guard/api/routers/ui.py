"""The review console: a static page at ``/ui`` (HTML, CSS and JS served by guard, no build step)
and ``GET /v1/me``, which tells the page the caller's role.

The page holds no privilege of its own: it keeps the API key in the browser's session storage
and calls the same ``/v1`` routes as any client, with ``Authorization: Bearer``. See docs/ui.md.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from guard.api.deps import AnyKey
from guard.api.schemas import KeyInfo
from guard.errors import NotFoundError

#: The page's files, shipped as package data (see ``[tool.setuptools.package-data]``).
STATIC = resources.files("guard.api") / "static"
#: Files the page is made of, and their types (nothing else is served from the folder).
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
#: The page loads only what guard serves: no CDN, font or analytics request can leave the browser.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

page = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", tags=["keys"])


@page.get("/ui")
def ui_root() -> Response:
    """The console lives under ``/ui/`` so that its files resolve relatively."""
    return RedirectResponse("/ui/", status_code=307)


@page.get("/ui/")
def ui_index() -> Response:
    """The console's page."""
    return _asset("index.html")


@page.get("/ui/{name}")
def ui_asset(name: str) -> Response:
    """One of the console's files (404 for any other name)."""
    if name not in ASSETS:
        raise NotFoundError(f"no such file: {name}")
    return _asset(name)


def _asset(name: str) -> Response:
    with resources.as_file(STATIC / name) as path:
        return FileResponse(path, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@api.get("/me", response_model=KeyInfo, summary="Who am I")
async def who_am_i(key: AnyKey) -> dict:
    """The caller's key: role and owner (the console shows only what they may see and do)."""
    return {k: v for k, v in key.to_dict().items() if k in KeyInfo.model_fields}

"""Request dependencies: the service object, the caller's API key and role checks.

Routes declare what they need with ``Annotated`` types, e.g. ``key: RightsHolderKey``;
the dependency answers 401 for a missing or bad key and 403 for a role that may not use
the route. Ownership of a single object is checked in the route with :func:`visible`,
which answers 404 (never 403) so that other tenants' ids reveal nothing.
"""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from guard.api.schemas import MAX_ID
from guard.errors import AuthError, ForbiddenError, InputError, NotFoundError
from guard.keys import ApiKey
from guard.service import Guard

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="An API key made by `guard keys create`, sent as `Authorization: Bearer <key>`.")


async def get_guard(request: Request) -> Guard:
    """The service object the app was built around (async: no thread hop for a lookup)."""
    return request.app.state.guard


GuardDep = Annotated[Guard, Depends(get_guard)]


async def current_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    """The authenticated caller; 401 without a valid ``Authorization: Bearer`` key.

    A key accepted in the last seconds is answered from memory on the event loop; otherwise
    the catalog is read in the thread pool (it must never block the loop). A hop to the
    pool per request would cost more than the lookup (see scripts/bench_api.py)."""
    if credentials is None:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
    keys = request.app.state.guard.keys
    key = keys.recently_authenticated(credentials.credentials)
    if key is None:
        key = await run_in_threadpool(keys.authenticate, credentials.credentials)
    request.state.key = key
    return key


AnyKey = Annotated[ApiKey, Depends(current_key)]


def role_key(*roles: str) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency that lets only keys with one of ``roles`` through (403 otherwise)."""

    async def check(key: AnyKey) -> ApiKey:
        if key.role not in roles:
            raise ForbiddenError(f"a {key.role} key cannot use this route (needs {' or '.join(roles)})")
        return key

    return check


AdminKey = Annotated[ApiKey, Depends(role_key("admin"))]
RightsHolderKey = Annotated[ApiKey, Depends(role_key("admin", "rights_holder"))]
PlatformKey = Annotated[ApiKey, Depends(role_key("admin", "platform"))]

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip.")]


def owner_scope(key: ApiKey) -> str | None:
    """The owner a key's listings are restricted to (None: an admin sees every owner)."""
    return None if key.is_admin else key.owner


def visible(key: ApiKey, owner: str, what: str) -> None:
    """404 unless ``key`` may see an object owned by ``owner``."""
    if not key.is_admin and owner != key.owner:
        raise NotFoundError(f"{what} not found")


async def known_query_only(request: Request) -> None:
    """422 for a query parameter the route does not take (a typo would otherwise be ignored)
    or one given twice (which value was meant?)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        raise InputError(f"unknown query parameter {unknown[0]!r}"
                         + (f"; this route takes {', '.join(sorted(known))}" if known else ""))
    repeated = sorted(k for k in set(request.query_params.keys()) if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise InputError(f"query parameter {repeated[0]!r} given more than once")


def _query_names(dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for child in dependant.dependencies:
        names |= _query_names(child)
    return names

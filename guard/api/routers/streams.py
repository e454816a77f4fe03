"""Live streams: start monitoring a URL, list, get status, stop (platforms and admins)."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from guard.api.deps import GuardDep, Limit, PlatformKey, owner_scope, visible
from guard.api.schemas import Name, StreamOut, StreamPage, StreamStart
from guard.errors import NotFoundError
from guard.incidents import encode_jpeg
from guard.keys import ApiKey
from guard.monitor import StreamInfo
from guard.service import Guard

router = APIRouter(prefix="/v1/streams", tags=["streams"])

StreamPathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
                                   description="guard's id of the stream (the `id` field).")]


def namespace(platform: str) -> str:
    """A stream-id prefix unique to a platform, so two platforms' stream ids never collide."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "", platform).lstrip("._-")[:24] or "p"
    return f"{clean}-{hashlib.sha256(platform.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def stream_out(info: StreamInfo) -> dict:
    """A stream as the API shows it: guard's id plus the platform's own id."""
    out = info.to_dict()
    prefix = namespace(info.platform) + ":"
    out["stream_id"] = info.id[len(prefix):] if info.id.startswith(prefix) else info.id
    return out


def visible_stream(guard: Guard, key: ApiKey, stream_id: str) -> StreamInfo:
    """The stream if the key may see it (404 otherwise)."""
    info = guard.streams.get(stream_id)
    visible(key, info.platform, f"stream {stream_id}")
    return info


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StreamOut, summary="Monitor a live stream")
def start_stream(body: StreamStart, response: Response, guard: GuardDep, key: PlatformKey) -> dict:
    """Start monitoring a live URL (same URL policy as scans); incidents and takedowns follow."""
    own_id = body.stream_id or "s-" + secrets.token_hex(6)
    stream_id = f"{namespace(key.owner)}:{own_id}"
    info = guard.monitor(body.url, stream_id=stream_id, account=body.account, platform=key.owner)
    response.headers["Location"] = f"/v1/streams/{info.id}"
    return stream_out(info)


@router.get("", response_model=StreamPage, summary="List streams")
def list_streams(
    guard: GuardDep, key: PlatformKey, limit: Limit = 50,
    status: Annotated[str | None, Query(pattern="^(starting|live|reconnecting|ended|cut|stopped|failed)$")] = None,
    active: bool | None = None,
    platform: Annotated[Name | None, Query(description="Only this platform's (admins).")] = None,
) -> dict:
    """The caller's streams (admins: every platform's), newest first."""
    scope = owner_scope(key)
    if scope is not None:
        if platform is not None and platform != scope:
            return {"items": [], "limit": limit}
        platform = scope
    infos = guard.streams.list(platform=platform, status=status, active=active, limit=limit)
    return {"items": [stream_out(i) for i in infos], "limit": limit}


@router.get("/{stream_id}", response_model=StreamOut, summary="Get a stream's status")
def get_stream(stream_id: StreamPathId, guard: GuardDep, key: PlatformKey) -> dict:
    """Live state, lag behind real time, frames seen, incidents."""
    return stream_out(visible_stream(guard, key, stream_id))


@router.get(
    "/{stream_id}/frame", response_class=Response, summary="Get a stream's latest frame",
    responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "A JPEG thumbnail of the latest frame read."}},
)
def get_stream_frame(stream_id: StreamPathId, guard: GuardDep, key: PlatformKey) -> Response:
    """The latest frame read from a stream being monitored (404 once it has ended, or when it is
    monitored by another process)."""
    visible_stream(guard, key, stream_id)
    frame = guard.streams.recent_frame(stream_id)
    if frame is None:
        raise NotFoundError(f"stream {stream_id} has no recent frame here (not being monitored by this process)")
    return Response(encode_jpeg(frame[1]), media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/{stream_id}/stop", response_model=StreamOut, summary="Stop monitoring a stream")
def stop_stream(stream_id: StreamPathId, guard: GuardDep, key: PlatformKey) -> dict:
    """Stop monitoring (idempotent); the stream's record and incidents stay."""
    visible_stream(guard, key, stream_id)
    return stream_out(guard.streams.stop(stream_id))

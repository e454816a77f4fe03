"""References: upload (a background ingest job), hash-only import, list, get, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from guard import exchange
from guard.api.deps import GuardDep, Id, Limit, Offset, RightsHolderKey, owner_scope, visible
from guard.api.schemas import (
    IngestForm,
    JobOut,
    LiveReferenceStart,
    Name,
    Policy,
    ReferenceOut,
    ReferencePage,
    ReferenceUpdate,
    form_schema,
)
from guard.api.uploads import UploadForm, receive_upload
from guard.errors import ForbiddenError, InputError
from guard.keys import ApiKey
from guard.models import Reference
from guard.service import Guard

router = APIRouter(prefix="/v1/references", tags=["references"])


def _ingest_form(form: UploadForm, key: ApiKey) -> IngestForm:
    """Validate the form fields; the reference owner is the key's unless an admin names one."""
    fields = form.validate(IngestForm, list_fields=("allowlist",))
    if fields.owner and fields.owner != key.owner and not key.is_admin:
        raise ForbiddenError("a rights holder registers references for itself only (leave 'owner' out)")
    fields.owner = fields.owner or key.owner
    return fields


def _import(guard: Guard, form: UploadForm, fields: IngestForm) -> Reference:
    name = form.filename or "upload"
    assert form.file_path is not None and fields.owner is not None  # the route and _ingest_form saw to both
    document = exchange.load_document(form.file_path, name)
    return guard.register(
        document.tracks, title=fields.title or document.title or name, owner=fields.owner, policy=fields.policy,
        min_seconds=fields.min_seconds, source=f"import:{name}", allowlist=fields.allowlist,
        match=fields.match or document.match,
    )


def _get_visible(guard: Guard, key: ApiKey, ref_id: int) -> Reference:
    ref = guard.reference(ref_id)
    visible(key, ref.owner, f"reference {ref_id}")
    return ref


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
    openapi_extra=form_schema(True, "The reference video."),
    summary="Upload a reference video (ingested by a background job)",
)
async def upload_reference(request: Request, response: Response, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Stream a video to the server and queue its ingest; poll ``GET /v1/jobs/{id}``.

    Uploads over the size limit are refused with 413 as soon as that is known.
    """
    form = await receive_upload(request, guard.settings.uploads, guard.settings.upload_max_bytes)
    try:
        if form.file_path is None:
            raise InputError("missing the 'file' part (the reference video)")
        if form.size == 0:
            raise InputError("the uploaded file is empty")
        fields = _ingest_form(form, key)
    except BaseException:
        form.discard()
        raise
    params = {**fields.model_dump(), "filename": form.filename, "size": form.size,
              "_path": str(form.file_path), "_files": [str(form.file_path)]}
    job = await run_in_threadpool(guard.jobs.submit, "ingest", owner=key.owner, role=key.role, params=params)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.to_dict()


@router.post(
    "/import", status_code=status.HTTP_201_CREATED, response_model=ReferenceOut,
    openapi_extra=form_schema(True, "A fingerprint file made by `guard export` (JSON, optionally gzip)."),
    summary="Import a hash-only reference",
)
async def import_reference(request: Request, response: Response, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Register a reference from its exported fingerprint: no video leaves the rights holder.

    Files over 256 MiB (or decompressing past that) are refused with 413;
    anything but a valid exchange file with 422.
    """
    max_bytes = min(guard.settings.upload_max_bytes, exchange.MAX_FILE_BYTES)
    form = await receive_upload(request, guard.settings.uploads, max_bytes)
    try:
        if form.file_path is None:
            raise InputError("missing the 'file' part (the fingerprint file)")
        fields = _ingest_form(form, key)
        ref = await run_in_threadpool(_import, guard, form, fields)
    finally:
        form.discard()
    response.headers["Location"] = f"/v1/references/{ref.id}"
    return ref.to_dict()


@router.post("/live", status_code=status.HTTP_201_CREATED, response_model=ReferenceOut,
             summary="Fingerprint a live feed as it airs (a live reference)")
def start_live_reference(body: LiveReferenceStart, response: Response, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Pull the caller's broadcast feed and make every aired second matchable within about a
    second; monitored restreams are matched against it at any delay. It stays ``live`` until
    the feed ends, ``max_seconds`` or ``POST /v1/references/{id}/end``; the server process runs
    the ingest."""
    ingest = guard.start_live_reference(
        body.url, title=body.title, owner=key.owner, policy=body.policy, min_seconds=body.min_seconds,
        match=body.match, retain_hours=body.retain_hours, max_seconds=body.max_seconds)
    response.headers["Location"] = f"/v1/references/{ingest.reference.id}"
    return ingest.reference.to_dict()


@router.post("/{ref_id:int}/end", response_model=ReferenceOut, summary="End a live reference")
def end_live_reference(ref_id: Id, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Stop fingerprinting a live reference's feed: it becomes an ordinary reference (409 if it
    is not live)."""
    _get_visible(guard, key, ref_id)
    return guard.end_live_reference(ref_id).to_dict()


@router.get("", response_model=ReferencePage, summary="List references")
def list_references(
    guard: GuardDep, key: RightsHolderKey, limit: Limit = 50, offset: Offset = 0,
    owner: Annotated[Name | None, Query(description="Only this owner's (admins).")] = None,
    title: Annotated[Name | None, Query(description="Title contains (case-insensitive).")] = None,
    policy: Policy | None = None,
) -> dict:
    """References the key may see, by id, filtered and paginated."""
    scope = owner_scope(key)
    if scope is not None:
        if owner is not None and owner != scope:
            return {"items": [], "total": 0, "limit": limit, "offset": offset}
        owner = scope
    refs = guard.references(owner)
    if title:
        refs = [r for r in refs if title.casefold() in r.title.casefold()]
    if policy:
        refs = [r for r in refs if r.policy == policy]
    page = refs[offset : offset + limit]
    return {"items": [r.to_dict() for r in page], "total": len(refs), "limit": limit, "offset": offset}


@router.get("/{ref_id:int}", response_model=ReferenceOut, summary="Get a reference")
def get_reference(ref_id: Id, guard: GuardDep, key: RightsHolderKey) -> dict:
    """One reference (404 if it is not the caller's)."""
    return _get_visible(guard, key, ref_id).to_dict()


@router.patch("/{ref_id:int}", response_model=ReferenceOut, summary="Update a reference")
def update_reference(ref_id: Id, changes: ReferenceUpdate, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Change title, policy (flag/cut), minimum match length, allowlisted accounts or match policy
    (video/audio/any)."""
    _get_visible(guard, key, ref_id)
    return guard.update_reference(ref_id, **changes.model_dump(exclude_none=True)).to_dict()


@router.delete("/{ref_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a reference")
def delete_reference(ref_id: Id, guard: GuardDep, key: RightsHolderKey) -> Response:
    """Remove a reference; its fingerprints leave the index at once."""
    _get_visible(guard, key, ref_id)
    guard.remove_reference(ref_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{ref_id:int}/export", response_class=Response, summary="Export a reference's hash-only fingerprint",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                     "description": "The `guard-fingerprint` exchange file (format version 2), as `guard export` "
                                    "writes it: hashes only, no picture."}},
)
def export_reference(ref_id: Id, guard: GuardDep, key: RightsHolderKey) -> Response:
    """The fingerprint tracks of one of the caller's references in the exchange format, to import
    elsewhere (``POST /v1/references/import``, ``guard import``)."""
    ref = _get_visible(guard, key, ref_id)
    body = exchange.dumps(guard.tracks(ref_id), ref.title, ref.match)
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="reference-{ref_id}.gfp.json"'})

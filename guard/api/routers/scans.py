"""Scans (uploaded files or URLs) and the job resources of scans and ingests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from guard import urlpolicy
from guard.api.deps import AnyKey, GuardDep, Id, Limit, Offset, PlatformKey, owner_scope
from guard.api.schemas import JobOut, JobPage, ScanForm, ScanURL, form_schema
from guard.api.uploads import receive_upload
from guard.errors import InputError, NotFoundError
from guard.jobs import Job
from guard.keys import ApiKey
from guard.service import Guard

router = APIRouter(tags=["scans"])

JobStatus = Annotated[str | None, Query(pattern="^(queued|running|done|failed)$", description="Only jobs in this state.")]


def _visible_job(guard: Guard, key: ApiKey, job_id: int, kind: str | None = None) -> Job:
    """The job if the key submitted it (or is an admin) and it is of ``kind``; 404 otherwise,
    worded as for an id that does not exist."""
    missing = NotFoundError(f"{kind or 'job'} {job_id} not found")
    try:
        job = guard.jobs.get(job_id)
    except NotFoundError:
        raise missing from None
    foreign = not key.is_admin and (job.owner, job.role) != (key.owner, key.role)
    if foreign or (kind is not None and job.kind != kind):
        raise missing
    return job


def check_url(guard: Guard, url: str) -> str:
    """Apply the URL policy of monitored streams to a URL to scan (400 when refused)."""
    return urlpolicy.check_url(url, allow_private_addresses=guard.settings.allow_private_addresses).url


@router.post(
    "/v1/scans", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
    openapi_extra=form_schema(False, "The video to scan."), summary="Scan an uploaded file",
)
async def scan_upload(request: Request, response: Response, guard: GuardDep, key: PlatformKey) -> dict:
    """Stream a file to the server and queue its scan; poll ``GET /v1/scans/{id}`` for the matches."""
    form = await receive_upload(request, guard.settings.uploads, guard.settings.upload_max_bytes)
    try:
        if form.file_path is None or form.size == 0:
            raise InputError("missing or empty 'file' part (the video to scan)")
        fields = form.validate(ScanForm)
    except BaseException:
        form.discard()
        raise
    params = {"filename": form.filename, "size": form.size, "account": fields.account,
              "_path": str(form.file_path), "_files": [str(form.file_path)]}
    job = await run_in_threadpool(guard.jobs.submit, "scan", owner=key.owner, role=key.role, params=params)
    response.headers["Location"] = f"/v1/scans/{job.id}"
    return job.to_dict()


@router.post("/v1/scans/url", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             summary="Scan a media URL")
def scan_url(body: ScanURL, response: Response, guard: GuardDep, key: PlatformKey) -> dict:
    """Queue a scan of a media URL (only the protocols and hosts allowed for streams)."""
    url = check_url(guard, body.url)
    job = guard.jobs.submit("scan", owner=key.owner, role=key.role,
                            params={"url": urlpolicy.redact(url), "account": body.account, "_url": url})
    response.headers["Location"] = f"/v1/scans/{job.id}"
    return job.to_dict()


@router.get("/v1/scans", response_model=JobPage, summary="List scans")
def list_scans(guard: GuardDep, key: PlatformKey, status: JobStatus = None,
               limit: Limit = 50, offset: Offset = 0) -> dict:
    """The caller's scans, newest first."""
    return _page(guard, key, "scan", status, limit, offset)


@router.get("/v1/scans/{scan_id:int}", response_model=JobOut, summary="Get a scan")
def get_scan(scan_id: Id, guard: GuardDep, key: PlatformKey) -> dict:
    """A scan's status, progress and, once done, its localized matches."""
    return _visible_job(guard, key, scan_id, "scan").to_dict()


@router.get("/v1/jobs", response_model=JobPage, tags=["jobs"], summary="List jobs")
def list_jobs(guard: GuardDep, key: AnyKey, status: JobStatus = None,
              kind: Annotated[str | None, Query(pattern="^(ingest|scan)$")] = None,
              limit: Limit = 50, offset: Offset = 0) -> dict:
    """The caller's ingest and scan jobs, newest first."""
    return _page(guard, key, kind, status, limit, offset)


@router.get("/v1/jobs/{job_id:int}", response_model=JobOut, tags=["jobs"], summary="Get a job")
def get_job(job_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """An ingest or scan job: status, progress, result or error."""
    return _visible_job(guard, key, job_id).to_dict()


def _page(guard: Guard, key: ApiKey, kind: str | None, status: str | None, limit: int, offset: int) -> dict:
    jobs, total = guard.jobs.list(owner=owner_scope(key), role=None if key.is_admin else key.role,
                                  kind=kind, status=status, limit=limit, offset=offset)
    return {"items": [j.to_dict() for j in jobs], "total": total, "limit": limit, "offset": offset}

"""Background jobs (ingests, scans) persisted in the catalog and run by a small thread pool.

A job row moves ``queued → running → done | failed`` and carries its progress (0..1), its
result (JSON) or its error. The row is the truth, so a job survives its worker: when a
service starts, :meth:`JobQueue.recover` marks jobs that were running in a previous process
``failed`` (their work is lost, their record is not) and queues the ones that never started
again. One process runs the jobs of a store at a time (``guard serve``); the CLI reads them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


from guard import decode, urlpolicy
from guard.errors import GuardError, InputError, NotFoundError
from guard.actions import action_for
from guard.models import ScanResult, Segment
from guard.store import Catalog, utc_now

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")
FINAL = ("done", "failed")

#: Minimum time between two progress writes of one job, in seconds.
PROGRESS_INTERVAL = 0.25

Progress = Callable[[float], None]


@dataclass
class Job:
    """One background job as stored. ``params`` keys starting with ``_`` are internal."""

    id: int
    kind: str
    role: str
    owner: str
    status: str
    progress: float
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None

    @property
    def public_params(self) -> dict[str, Any]:
        """The parameters a client may see (no server paths)."""
        return {k: v for k, v in self.params.items() if not k.startswith("_")}

    def to_dict(self) -> dict:
        """JSON-ready form without internal parameters."""
        return {
            "id": self.id, "kind": self.kind, "owner": self.owner, "status": self.status,
            "progress": round(self.progress, 4), "params": self.public_params, "result": self.result,
            "error": self.error, "created": self.created, "started": self.started, "finished": self.finished,
        }


Handler = Callable[[Job, Progress], dict]


class Interrupted(GuardError):
    """Raised inside a job (by its progress callback) when the queue shuts down."""


INTERRUPTED = "interrupted: guard stopped while this job was running"


class JobQueue:
    """Persisted jobs plus the worker threads that run them."""

    def __init__(self, catalog: Catalog, handlers: dict[str, Handler] | None = None, workers: int = 2,
                 nice: int = 0):
        self.catalog = catalog
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.workers = max(1, int(workers))
        self.nice = int(nice)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._finished = threading.Condition()
        self._closed = False

    # -- submitting and reading ---------------------------------------------------------------

    def submit(self, kind: str, *, owner: str, role: str, params: dict[str, Any]) -> Job:
        """Record a queued job and hand it to a worker. Files listed in ``params["_files"]``
        are deleted once the job is final."""
        if kind not in self.handlers:
            raise InputError(f"unknown job kind {kind!r}")
        with self.catalog.transaction() as db:
            cursor = db.execute(
                "INSERT INTO jobs (kind, role, owner, status, params, created) VALUES (?, ?, ?, 'queued', ?, ?)",
                (kind, role, owner, json.dumps(params), utc_now()),
            )
            job_id = int(cursor.lastrowid)
        self._dispatch(job_id)
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        """One job by id."""
        rows = self.catalog.query("SELECT * FROM jobs WHERE id = ?", (int(job_id),))
        if not rows:
            raise NotFoundError(f"job {job_id} not found")
        return _job(rows[0])

    def list(self, *, owner: str | None = None, role: str | None = None, kind: str | None = None,
             status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
        """A page of jobs (newest first) and the number matching the filters."""
        where, args = [], []
        for column, value in (("owner", owner), ("role", role), ("kind", kind), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = int(self.catalog.query("SELECT COUNT(*) FROM jobs" + clause, tuple(args))[0][0])
        rows = self.catalog.query(
            "SELECT * FROM jobs" + clause + " ORDER BY id DESC LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return [_job(r) for r in rows], total

    def files_in_use(self) -> set[str]:
        """Every file (``params["_files"]``) of a job that has not finished, queued or running.

        Such a file must survive a restart: its job still needs it, and :meth:`_finish` deletes
        it once the job is final.
        """
        rows = self.catalog.query("SELECT params FROM jobs WHERE status NOT IN (?, ?)", FINAL)
        return {str(name) for (params,) in rows for name in json.loads(params).get("_files", [])}

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of jobs per (kind, status), for metrics."""
        rows = self.catalog.query("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")
        return {(kind, status): int(n) for kind, status, n in rows}

    def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """Block until the job is final or ``timeout`` passes; return it as it then is."""
        deadline = time.monotonic() + timeout
        with self._finished:
            while True:
                job = self.get(job_id)
                left = deadline - time.monotonic()
                if job.status in FINAL or left <= 0:
                    return job
                self._finished.wait(min(left, 0.5))

    # -- lifecycle ----------------------------------------------------------------------------

    def recover(self) -> int:
        """After a restart: fail jobs a previous process left running, requeue queued ones.

        A requeued job may be running by the time this returns, so whoever cleans files up
        after it must keep :meth:`files_in_use` (not only the queued jobs' files).
        Returns how many jobs were marked failed.
        """
        interrupted = [_job(r) for r in self.catalog.query("SELECT * FROM jobs WHERE status = 'running'")]
        for job in interrupted:
            self._finish(job.id, "failed", None, INTERRUPTED)
        for (job_id,) in self.catalog.query("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id"):
            self._dispatch(int(job_id))
        if interrupted:
            log.warning("marked %d interrupted job(s) failed", len(interrupted))
        return len(interrupted)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers; queued jobs that did not start stay queued for the next start.

        A running job stops at its next progress report and is marked failed (interrupted),
        so shutting down does not wait for a long ingest to finish.
        """
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def _dispatch(self, job_id: int) -> None:
        with self._lock:
            if self._closed:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="guard-job",
                                                    initializer=self._lower_priority)
            self._executor.submit(self._run, job_id)

    # -- running ------------------------------------------------------------------------------

    def _lower_priority(self) -> None:
        """Renice this worker thread (and the decoder threads it starts), so that heavy jobs
        leave the CPU to the API's requests first. Linux applies niceness per thread."""
        if self.nice <= 0 or not hasattr(os, "setpriority"):
            return
        try:
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + self.nice)
        except OSError as exc:
            log.debug("cannot renice job thread: %s", exc)

    def _run(self, job_id: int) -> None:
        with self.catalog.transaction() as db:
            claimed = db.execute(
                "UPDATE jobs SET status = 'running', started = ? WHERE id = ? AND status = 'queued'",
                (utc_now(), job_id),
            ).rowcount
        if not claimed:
            return
        job = self.get(job_id)
        try:
            result = self.handlers[job.kind](job, self._progress_writer(job_id))
        except Interrupted:
            self._finish(job_id, "failed", None, INTERRUPTED)
        except GuardError as exc:
            self._finish(job_id, "failed", None, str(exc))
        except Exception as exc:  # noqa: BLE001 — a job must end failed, never stay running
            log.exception("job %d (%s) crashed", job_id, job.kind)
            self._finish(job_id, "failed", None, f"internal error ({type(exc).__name__})")
        else:
            self._finish(job_id, "done", result, None)

    def _progress_writer(self, job_id: int) -> Progress:
        last = {"time": 0.0, "value": 0.0}

        def write(fraction: float) -> None:
            if self._closed:
                raise Interrupted(INTERRUPTED)
            fraction = min(max(float(fraction), 0.0), 0.99)
            now = time.monotonic()
            if fraction - last["value"] < 0.01 or now - last["time"] < PROGRESS_INTERVAL:
                return
            last.update(time=now, value=fraction)
            with self.catalog.transaction() as db:
                db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'", (fraction, job_id))

        return write

    def _finish(self, job_id: int, status: str, result: dict | None, error: str | None) -> None:
        job = self.get(job_id)
        for name in job.params.get("_files", []):  # gone before anyone sees the job final
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("job %d: cannot delete %s (%s)", job_id, name, exc)
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, progress = ?, result = ?, error = ?, finished = ? WHERE id = ?",
                (status, 1.0 if status == "done" else job.progress,
                 None if result is None else json.dumps(result), error, utc_now(), job_id),
            )
        with self._finished:
            self._finished.notify_all()


def _job(row) -> Job:
    (job_id, kind, role, owner, status, progress, params, result, error,
     created, started, finished) = tuple(row)
    return Job(
        id=job_id, kind=kind, role=role, owner=owner, status=status, progress=progress,
        params=json.loads(params), result=None if result is None else json.loads(result),
        error=error, created=created, started=started, finished=finished,
    )


# -- the service's job kinds ------------------------------------------------------------------


def seconds_to_fraction(path: str | os.PathLike, progress: Progress) -> Callable[[float], None]:
    """Turn media-seconds progress into a 0..1 fraction using the file's probed duration."""
    try:
        total = decode.probe(path).duration
    except GuardError:
        total = 0.0
    if total <= 0:  # unknown length: report nothing, but still let a shutdown interrupt
        return lambda seconds: progress(0.0)
    return lambda seconds: progress(seconds / total)


def service_handlers(guard) -> dict[str, Handler]:
    """The ``ingest`` and ``scan`` job kinds of a :class:`guard.service.Guard`.

    ``ingest`` params: ``_path``, ``title``, ``owner``, ``policy``, ``min_seconds``,
    ``allowlist``. ``scan`` params: ``_path`` (an upload) or ``_url`` (shown redacted as
    ``url``), plus a display ``filename`` and the uploader's ``account``. A scan's result is
    the :class:`guard.models.ScanResult` with its matches and the ids of the incidents made.
    """

    def ingest(job: Job, progress: Progress) -> dict:
        with _upload_named(job):
            return _ingest(job, progress)

    def scan(job: Job, progress: Progress) -> dict:
        with _upload_named(job):
            return _scan(job, progress)

    def _ingest(job: Job, progress: Progress) -> dict:
        p = job.params
        filename = p.get("filename") or "upload"
        fp = guard.fingerprint(Path(p["_path"]), seconds_to_fraction(p["_path"], progress))
        ref = guard.register(
            fp, title=p.get("title") or Path(filename).stem, owner=p["owner"],
            policy=p.get("policy", "flag"), min_seconds=p.get("min_seconds"),
            source=f"upload:{filename}", allowlist=p.get("allowlist") or [],
        )
        return {"reference": ref.to_dict(), "warnings": ref.warnings}

    def _scan(job: Job, progress: Progress) -> dict:
        p = job.params
        if "_url" in p:
            result, truncated = scan_url(guard, p["_url"], progress)
            out = {**result.to_dict(), "path": urlpolicy.redact(p["_url"]), "truncated": truncated}
        else:
            result = guard.scan(p["_path"], progress=seconds_to_fraction(p["_path"], progress))
            out = {**result.to_dict(), "path": p.get("filename") or "upload"}
        incidents = record_scan_incidents(guard, job, result.segments, p.get("_path"))
        return {**out, "incidents": [i.id for i in incidents]}

    return {"ingest": ingest, "scan": scan}


@contextmanager
def _upload_named(job: Job) -> Iterator[None]:
    """Errors name an upload by its client-side file name, never by its path on the server."""
    try:
        yield
    except GuardError as exc:
        path = job.params.get("_path")
        if path:
            exc.args = (str(exc).replace(path, job.params.get("filename") or "upload"),)
        raise


def scan_url(guard, url: str, progress: Progress | None = None) -> tuple[ScanResult, bool]:
    """Scan a media URL under the stream URL policy, reading at most ``scan_url_max_seconds``.

    The policy is checked again here (the address may have changed since the request) and
    FFmpeg gets the scheme's protocol whitelist. Returns the result and whether the media
    was cut at the limit (a live stream, or a very long file).
    """
    try:
        return _scan_url(guard, url, progress or (lambda fraction: None))
    except GuardError as exc:  # messages name the URL: keep its credentials and query out
        exc.args = (str(exc).replace(url, urlpolicy.redact(url)),)
        raise


def _scan_url(guard, url: str, progress: Progress) -> tuple[ScanResult, bool]:
    checked = urlpolicy.check_url(url, allow_private_addresses=guard.settings.allow_private_addresses)
    limit = guard.settings.scan_url_max_seconds
    options = guard.fingerprinter.decode_options
    batches = decode.sample_frames(url, options, {"protocol_whitelist": checked.whitelist})
    with closing(batches):
        # progress is a lower bound: the media's length is not known
        fp = guard.fingerprinter.fingerprint_batches(
            batches, lambda seconds: progress(seconds / limit), max_seconds=limit, overlays=True)
    segments = guard.match(fp.times, fp.codes, fp.masked) if len(fp) else []
    truncated = fp.duration >= limit
    return ScanResult(path=url, duration=fp.duration, frames=len(fp), segments=segments), truncated


def record_scan_incidents(guard, job: Job, segments: list[Segment], media_path: str | None) -> list:
    """Turn a scan's matches into incidents, one per matched reference, and send their events.

    The scanned file plays the part of a stream: ``stream_id`` is ``scan:<job id>``, the
    platform is the job's owner and the account is the uploader's (``params["account"]``),
    so a reference's allowlist exempts licensed accounts. Policy ``flag`` sends
    ``incident.flagged``; ``cut`` sends ``stream.cut``, the platform's takedown signal.
    """
    account = job.params.get("account") or ""
    by_reference: dict[int, list[Segment]] = {}
    for segment in segments:
        by_reference.setdefault(segment.reference_id, []).append(segment)
    incidents = []
    for ref_id, found in sorted(by_reference.items()):
        try:
            reference = guard.reference(ref_id)
        except NotFoundError:  # deleted while the scan ran
            continue
        if action_for(reference, account) is None:
            continue
        now = time.time()
        incident = guard.incidents.create(
            stream_id=f"scan:{job.id}", account=account, platform=job.owner, reference=reference,
            segments=found, first_seen=now, decided=now,
        )
        _scan_evidence(guard, incident.id, media_path, min(s.query_start for s in found))
        incident = guard.incidents.close(incident.id, when=now)
        guard.actions.publish(
            "stream.cut" if reference.policy == "cut" else "incident.flagged",
            owner=reference.owner, platform=job.owner, incident=incident.to_dict(),
            stream={"id": f"scan:{job.id}", "kind": "scan", "job_id": job.id, "account": account,
                    "path": job.params.get("filename") or job.params.get("url")},
        )
        incidents.append(incident)
    return incidents


def _scan_evidence(guard, incident_id: int, media_path: str | None, t: float) -> None:
    if media_path is None:
        return
    try:
        image = decode.thumbnail_at(media_path, t + 0.5, guard.settings.live.thumbnail_width)
        if image is not None:
            guard.incidents.add_evidence(incident_id, "query", t + 0.5, image)
    except GuardError as exc:
        log.warning("incident %d: no evidence (%s)", incident_id, exc)

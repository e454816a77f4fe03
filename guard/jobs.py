"""Background jobs (ingests, scans) persisted in the catalog and run by a small thread pool.

A job row moves ``queued → running → done | failed`` and carries its progress (0..1), its
result (JSON) or its error. The row is the truth, so a job survives its worker: when a
service starts, :meth:`JobQueue.recover` marks jobs that were running in a previous process
``failed`` (their work is lost, their record is not) and queues the ones that never started
again. One process runs the jobs of a store at a time (``guard serve``); the CLI reads them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from guard import decode, urlpolicy
from guard.act import Act, FrameAt
from guard.audio_fingerprint import AudioFingerprinter, fingerprint_media
from guard.config import Settings
from guard.errors import GuardError, InputError
from guard.fingerprint import Fingerprinter
from guard.models import Fingerprint, Reference, ScanResult, Segment
from guard.signals.audio import Landmarks
from guard.storage.jobs import FINAL, JobRepository
from guard.storage.protocols import Database
from guard.storage.records import Job
from guard.store import utc_now

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")

#: Minimum time between two progress writes of one job, in seconds.
PROGRESS_INTERVAL = 0.25

Progress = Callable[[float], None]
Handler = Callable[[Job, Progress], dict]


class Interrupted(GuardError):
    """Raised inside a job (by its progress callback) when the queue shuts down."""


INTERRUPTED = "interrupted: guard stopped while this job was running"


class JobQueue:
    """Persisted jobs plus the worker threads that run them."""

    def __init__(self, database: Database, handlers: dict[str, Handler] | None = None, workers: int = 2,
                 nice: int = 0, *, run: bool = True):
        self.repository = JobRepository(database)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.workers = max(1, int(workers))
        self.nice = int(nice)
        #: Whether this process runs jobs (the ``jobs`` role); without it, submitted jobs stay
        #: queued in the catalog for a process that does.
        self.runs_jobs = run
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._finished = threading.Condition()
        self._closed = False
        self._handed_out: set[int] = set()  # jobs given to this process's workers, not yet over
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    # -- submitting and reading ---------------------------------------------------------------

    def submit(self, kind: str, *, owner: str, role: str, params: dict[str, Any]) -> Job:
        """Record a queued job and hand it to a worker. Files listed in ``params["_files"]``
        are deleted once the job is final."""
        if kind not in self.handlers:
            raise InputError(f"unknown job kind {kind!r}")
        job_id = self.repository.create(kind=kind, role=role, owner=owner, params=params, created=utc_now())
        self._dispatch(job_id)
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        """One job by id."""
        return self.repository.get(job_id)

    def list(self, *, owner: str | None = None, role: str | None = None, kind: str | None = None,
             status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
        """A page of jobs (newest first) and the number matching the filters."""
        return self.repository.list(owner=owner, role=role, kind=kind, status=status, limit=limit, offset=offset)

    def files_in_use(self) -> set[str]:
        """Every file (``params["_files"]``) of a job that has not finished, queued or running.

        Such a file must survive a restart: its job still needs it, and :meth:`_finish` deletes
        it once the job is final.
        """
        return {str(name) for job in self.repository.unfinished() for name in job.params.get("_files", [])}

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of jobs per (kind, status), for metrics."""
        return self.repository.counts_by_status()

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
        Returns how many jobs were marked failed. Does nothing without the ``jobs`` role: the
        running jobs are another process's.
        """
        if not self.runs_jobs:
            return 0
        interrupted = self.repository.with_status("running")
        for job in interrupted:
            self._finish(job.id, "failed", None, INTERRUPTED)
        for job in self.repository.with_status("queued"):
            self._dispatch(job.id)
        if interrupted:
            log.warning("marked %d interrupted job(s) failed", len(interrupted))
        return len(interrupted)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers; queued jobs that did not start stay queued for the next start.

        A running job stops at its next progress report and is marked failed (interrupted),
        so shutting down does not wait for a long ingest to finish.
        """
        self._stop_polling.set()
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.join()
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def start(self, poll_interval: float = 1.0) -> None:
        """The ``jobs`` role: :meth:`recover`, then run the jobs other processes queue (an API
        without the role), looking for them every ``poll_interval`` seconds until :meth:`shutdown`.
        Does nothing without the role. One process per store should have it (see :meth:`recover`).
        """
        if not self.runs_jobs:
            return
        self.recover()
        with self._lock:
            if self._poller is not None or self._closed:
                return
            self._poller = threading.Thread(target=self._poll, args=(poll_interval,), name="guard-job-poller",
                                            daemon=True)
            self._poller.start()

    def _poll(self, interval: float) -> None:
        while not self._stop_polling.wait(interval):
            try:
                for job in self.repository.with_status("queued"):
                    self._dispatch(job.id)
            except Exception:  # noqa: BLE001 — a busy catalog: look again next time
                log.exception("cannot look for queued jobs")

    def _dispatch(self, job_id: int) -> None:
        with self._lock:
            if self._closed or not self.runs_jobs or job_id in self._handed_out:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="guard-job",
                                                    initializer=self._lower_priority)
            self._handed_out.add(job_id)
            self._executor.submit(self._run_handed_out, job_id)

    def _run_handed_out(self, job_id: int) -> None:
        try:
            self._run(job_id)
        finally:
            with self._lock:
                self._handed_out.discard(job_id)

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
        if not self.repository.claim(job_id, started=utc_now()):
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
            self.repository.set_progress(job_id, fraction)

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
        self.repository.finish(job_id, status=status, progress=1.0 if status == "done" else job.progress,
                               result=result, error=error, finished=utc_now())
        with self._finished:
            self._finished.notify_all()


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


@dataclass(frozen=True)
class JobPorts:
    """What the ``ingest`` and ``scan`` jobs need, wired by the composition root
    (:class:`guard.service.Guard`): nothing here knows the service."""

    settings: Settings
    #: Files and URL media → fingerprints (with the masked readings scans use).
    fingerprinter: Fingerprinter
    #: Query readings → copied segments (:meth:`guard.search.Searcher.match`: times, codes and
    #: masked readings; window readings by keyword).
    match: Callable[..., list[Segment]]
    #: Fingerprint a reference file, keep its keyframes and register it (:meth:`guard.service.Guard.ingest`).
    ingest: Callable[..., Reference]
    #: Incidents, evidence, policy and events for what a scan found.
    act: Act
    #: A file's audio → landmarks (None: files are matched by their picture only).
    audio: AudioFingerprinter | None = None
    #: A file's picture track and audio landmarks → copied segments, fused and filtered by each
    #: reference's match policy (:meth:`guard.search.Searcher.match_file`); None: ``match``.
    match_file: Callable[[Fingerprint, Landmarks | None], list[Segment]] | None = None


def service_handlers(ports: JobPorts) -> dict[str, Handler]:
    """The ``ingest`` and ``scan`` job kinds.

    ``ingest`` params: ``_path``, ``title``, ``owner``, ``policy``, ``min_seconds``,
    ``allowlist``, ``match`` (the match policy, default ``any``). ``scan`` params: ``_path`` (an upload) or ``_url`` (shown redacted as
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
        ref = ports.ingest(
            Path(p["_path"]), title=p.get("title") or Path(filename).stem, owner=p["owner"],
            policy=p.get("policy", "flag"), min_seconds=p.get("min_seconds"),
            allowlist=p.get("allowlist") or [], progress=seconds_to_fraction(p["_path"], progress),
            source=f"upload:{filename}", match=p.get("match") or "any",
        )
        return {"reference": ref.to_dict(), "warnings": ref.warnings, "overlaps": ref.overlaps}

    def _scan(job: Job, progress: Progress) -> dict:
        p = job.params
        if "_url" in p:
            result, truncated = scan_url(ports, p["_url"], progress)
            out = {**result.to_dict(), "path": urlpolicy.redact(p["_url"]), "truncated": truncated}
        else:
            result = scan_file(ports, p["_path"], seconds_to_fraction(p["_path"], progress))
            out = {**result.to_dict(), "path": p.get("filename") or "upload"}
        incidents = record_scan_incidents(ports, job, result.segments, p.get("_path"))
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


def scan_file(ports: JobPorts, path: str | os.PathLike, progress: Progress | None = None) -> ScanResult:
    """Fingerprint a file (its picture with its overlay readings, and its audio when
    ``ports.audio``) and report every copied segment in it (see :attr:`JobPorts.match_file`)."""
    if ports.match_file is None:
        fp = ports.fingerprinter.fingerprint_file(path, progress, overlays=True)
        segments = _segments_of(ports, fp) if len(fp) else []
        return ScanResult(path=os.fspath(path), duration=fp.duration, frames=len(fp), segments=segments)
    fp, landmarks, audio_end = fingerprint_media(ports.fingerprinter, ports.audio, path, progress, query=True)
    segments = ports.match_file(fp, landmarks)
    return ScanResult(path=os.fspath(path), duration=max(fp.duration, round(audio_end, 3)), frames=len(fp),
                      segments=segments)


def _segments_of(ports: JobPorts, fp: Fingerprint) -> list[Segment]:
    """A scanned picture's copied segments, its window readings included, decided as a file's
    are (each reference's match policy, calibration) when the ports can."""
    if ports.match_file is not None:
        return ports.match_file(fp, None)
    return ports.match(fp.times, fp.codes, fp.masked, regions=fp.regions)


def scan_url(ports: JobPorts, url: str, progress: Progress | None = None) -> tuple[ScanResult, bool]:
    """Scan a media URL under the stream URL policy, reading at most ``scan_url_max_seconds``.

    The policy is checked again here (the address may have changed since the request) and
    FFmpeg gets the scheme's protocol whitelist. Returns the result and whether the media
    was cut at the limit (a live stream, or a very long file).
    """
    try:
        return _scan_url(ports, url, progress or (lambda fraction: None))
    except GuardError as exc:  # messages name the URL: keep its credentials and query out
        exc.args = (str(exc).replace(url, urlpolicy.redact(url)),)
        raise


def _scan_url(ports: JobPorts, url: str, progress: Progress) -> tuple[ScanResult, bool]:
    checked = urlpolicy.check_url(url, allow_private_addresses=ports.settings.allow_private_addresses)
    limit = ports.settings.scan_url_max_seconds
    options = ports.fingerprinter.decode_options
    batches = decode.sample_frames(url, options, {"protocol_whitelist": checked.whitelist})
    with closing(batches):
        # progress is a lower bound: the media's length is not known
        fp = ports.fingerprinter.fingerprint_batches(
            batches, lambda seconds: progress(seconds / limit), max_seconds=limit, overlays=True)
    segments = _segments_of(ports, fp) if len(fp) else []
    truncated = fp.duration >= limit
    return ScanResult(path=url, duration=fp.duration, frames=len(fp), segments=segments), truncated


def record_scan_incidents(ports: JobPorts, job: Job, segments: list[Segment], media_path: str | None) -> list:
    """Hand a scan's matches to :meth:`guard.act.Act.record_scan` (one incident per matched
    reference, with its event).

    The scanned file plays the part of a stream: ``stream_id`` is ``scan:<job id>``, the
    platform is the job's owner and the account is the uploader's (``params["account"]``),
    so a reference's allowlist exempts licensed accounts. An uploaded file lends its frames
    as evidence (a URL's media is not read twice).
    """
    account = job.params.get("account") or ""
    stream = {"id": f"scan:{job.id}", "kind": "scan", "job_id": job.id, "account": account,
              "path": job.params.get("filename") or job.params.get("url")}
    frame_at = None if media_path is None else _file_frames(media_path, ports.settings.live.thumbnail_width)
    return ports.act.record_scan(stream=stream, account=account, platform=job.owner, segments=segments,
                                 frame_at=frame_at)


def _file_frames(media_path: str, width: int) -> FrameAt:
    """Frames of a scanned file for evidence: half a second into the copy, past a cut's
    blended frames."""

    def frame_at(t: float) -> tuple[float, np.ndarray] | None:
        image = decode.thumbnail_at(media_path, t + 0.5, width)
        return None if image is None else (t + 0.5, image)

    return frame_at

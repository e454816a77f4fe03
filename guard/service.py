"""The one object guard's shells call: ingest, scan, references, export/import.

The CLI and the API are thin layers over :class:`Guard`; nothing here imports them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from guard import exchange
from guard.config import Settings
from guard.errors import FormatError, InputError, NotFoundError
from guard.fingerprint import Fingerprinter, reference_warnings
from guard.jobs import JobQueue, service_handlers
from guard.keys import KeyStore
from guard.index.base import merge_hits
from guard.match import find_segments, with_mirrored
from guard.models import Fingerprint, MaskedCodes, Reference, ScanResult, Segment
from guard.refindex import ReferenceIndex
from guard.store import Catalog
from guard.actions import ActionCenter
from guard.incidents import Incident, IncidentStore
from guard.monitor import EventCallback, MonitorManager, StreamInfo

log = logging.getLogger(__name__)

#: File name endings a folder scan picks up.
MEDIA_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv",
    ".mpg", ".mpeg", ".wmv", ".3gp", ".ogv", ".y4m",
}

Progress = Callable[[float], None]


class Guard:
    """A guard installation: its catalog, index and fingerprinter over one store folder."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.home = Path(self.settings.home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.home / "catalog.sqlite")
        self.fingerprinter = Fingerprinter(
            self.settings.signal, self.settings.sample_fps, self.settings.fast_decode
        )
        self.index = ReferenceIndex(self.catalog, self.home, self.fingerprinter.signal)
        self.keys = KeyStore(self.catalog)
        # Live monitoring: incidents, the webhook outbox (its dispatcher starts with the first
        # event, monitor or an explicit ``actions.start()``) and the running streams.
        self.incidents = IncidentStore(self.catalog)
        self.actions = ActionCenter(self.catalog, self.settings.webhook,
                                    allow_private_addresses=self.settings.allow_private_addresses)
        self.outbox = self.actions
        self.actions.add_listener(self._delivered)
        self.streams = MonitorManager(self)
        self.jobs = JobQueue(self.catalog, service_handlers(self), self.settings.job_workers,
                             self.settings.job_nice)

    def close(self) -> None:
        """Stop the job workers (running jobs finish first) and release the catalog."""
        self.streams.shutdown()
        self.actions.stop()
        self.jobs.shutdown(wait=True)
        self.catalog.close()

    def __enter__(self) -> "Guard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- references ---------------------------------------------------------------------------

    def fingerprint(
        self, path: str | os.PathLike, progress: Progress | None = None, overlays: bool = False
    ) -> Fingerprint:
        """Fingerprint a media file (no storage); ``overlays`` adds the masked readings scans use."""
        return self.fingerprinter.fingerprint_file(path, progress, overlays=overlays)

    def ingest(
        self,
        path: str | os.PathLike,
        *,
        title: str | None = None,
        owner: str = "default",
        policy: str = "flag",
        min_seconds: float | None = None,
        allowlist: list[str] | None = None,
        progress: Progress | None = None,
    ) -> Reference:
        """Fingerprint a reference video and register it."""
        fp = self.fingerprint(path, progress)
        return self.register(
            fp, title=title or Path(path).stem, owner=owner, policy=policy,
            min_seconds=min_seconds, source=os.fspath(path), allowlist=allowlist,
        )

    def register(
        self,
        fp: Fingerprint,
        *,
        title: str,
        owner: str,
        policy: str = "flag",
        min_seconds: float | None = None,
        source: str,
        allowlist: list[str] | None = None,
    ) -> Reference:
        """Store a computed fingerprint as a reference and index it.

        The reference's ``warnings`` say what of it the matcher cannot find (too short, or a
        picture that barely changes; see :func:`guard.fingerprint.reference_warnings`).
        """
        signal = self.fingerprinter.signal
        if (fp.signal, fp.signal_version, fp.bits) != (signal.name, signal.version, signal.bits):
            raise FormatError(
                f"{source}: fingerprint uses {fp.signal} v{fp.signal_version} ({fp.bits} bits); "
                f"this store needs {signal.name} v{signal.version} ({signal.bits} bits)"
            )
        if len(fp) == 0:
            raise InputError(f"{source}: no informative frames to fingerprint (blank or flat video)")
        ref = self.catalog.add_reference(
            owner=owner, title=title, policy=policy,
            min_seconds=self.settings.default_min_seconds if min_seconds is None else min_seconds,
            source=source, fingerprint=fp, allowlist=allowlist,
        )
        self.index.added(ref, fp)
        log.info("registered reference %d %r (%d frames)", ref.id, ref.title, len(fp))
        ref.warnings = reference_warnings(fp, ref.min_seconds, self.settings.match)
        for warning in ref.warnings:
            log.warning("reference %d %r: %s", ref.id, ref.title, warning)
        return ref

    def import_fingerprint(
        self,
        path: str | os.PathLike,
        *,
        owner: str = "default",
        policy: str = "flag",
        min_seconds: float | None = None,
        title: str | None = None,
    ) -> Reference:
        """Register a hash-only reference from an exchange file (see :mod:`guard.exchange`)."""
        fp, file_title = exchange.load(Path(path))
        return self.register(
            fp, title=title or file_title, owner=owner, policy=policy,
            min_seconds=min_seconds, source=f"import:{Path(path).name}",
        )

    def export(self, ref_id: int, path: str | os.PathLike) -> Path:
        """Write a reference's fingerprint in the exchange format."""
        ref = self.catalog.reference(ref_id)
        return exchange.dump(self.catalog.fingerprint(ref_id), ref.title, Path(path))

    def references(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's."""
        return self.catalog.references(owner)

    def reference(self, ref_id: int) -> Reference:
        """One reference by id."""
        return self.catalog.reference(ref_id)

    def update_reference(self, ref_id: int, **changes) -> Reference:
        """Change policy, min_seconds, title or allowlist of a reference."""
        return self.catalog.update_reference(ref_id, **changes)

    def remove_reference(self, ref_id: int) -> Reference:
        """Delete a reference; its vectors leave the index at once."""
        ref = self.catalog.remove_reference(ref_id)
        self.index.removed(ref_id)
        return ref

    # -- scanning -----------------------------------------------------------------------------

    def match(self, times: np.ndarray, codes: np.ndarray, masked: MaskedCodes | None = None) -> list[Segment]:
        """Copied segments in a sequence of query frames (times in seconds, packed codes, and
        the masked readings of frames partly hidden by a still overlay, if any)."""
        self.index.sync()
        m = self.settings.match
        period = 1.0 / self.settings.sample_fps
        hits = self.index.search(codes, m.seed_radius, m.max_hits_per_frame)
        if masked is not None:
            hidden = self.index.search_masked(masked.codes, masked.masks, m.seed_radius, m.max_hits_per_frame)
            hits = merge_hits(hits, hidden, m.max_hits_per_frame)
        segments = find_segments(times, codes, hits, self.index.refs, period, m, masked)
        mirrored = self.fingerprinter.signal.mirror(codes) if m.mirror and len(codes) else None
        if mirrored is not None:
            hits = self.index.search(mirrored, m.seed_radius, m.max_hits_per_frame)
            flipped = find_segments(times, mirrored, hits, self.index.refs, period, m)
            segments = with_mirrored(segments, flipped, self.index.refs, m.mirror_min_factor)
        return segments

    def scan(self, path: str | os.PathLike, progress: Progress | None = None) -> ScanResult:
        """Fingerprint a file and report every copied segment in it."""
        fp = self.fingerprint(path, progress, overlays=True)
        segments = self.match(fp.times, fp.codes, fp.masked) if len(fp) else []
        return ScanResult(path=os.fspath(path), duration=fp.duration, frames=len(fp), segments=segments)


    # -- live monitoring ----------------------------------------------------------------------

    def monitor(
        self,
        url: str,
        *,
        stream_id: str | None = None,
        account: str,
        platform: str = "default",
        realtime: bool = False,
        on_event: EventCallback | None = None,
        wait: bool = False,
        timeout: float | None = None,
        av_options: dict | None = None,
    ) -> StreamInfo:
        """Monitor a live stream (``rtmp``, ``rtmps``, ``http(s)`` HLS/FLV, ``srt``, ``udp``).

        ``realtime=True`` with a local file plays it at its own pace (a rehearsal). Returns at
        once with the stream's snapshot, or with ``wait=True`` when the stream has ended, was
        cut or ``timeout`` passed (the stream is then stopped). Raises
        :class:`~guard.errors.URLPolicyError` for a refused URL before anything starts.
        """
        info = self.streams.start(url, stream_id=stream_id, account=account, platform=platform,
                                  realtime=realtime, on_event=on_event, av_options=av_options)
        if not wait:
            return info
        final = self.streams.wait(info.id, timeout)
        if final.active:
            final = self.streams.stop(info.id)
        return final

    def review_incident(self, incident_id: int, action: str, allowlist_account: bool = False,
                        note: str | None = None) -> Incident:
        """``confirm`` or ``dismiss`` an incident; ``allowlist_account`` also licenses the stream's
        account for the reference (no future incident), and an ``incident.updated`` event goes out."""
        incident = self.incidents.review(incident_id, action, note)
        if allowlist_account:
            reference = self.catalog.reference(incident.reference_id)
            if incident.account not in reference.allowlist:
                self.update_reference(reference.id, allowlist=[*reference.allowlist, incident.account])
        self.actions.publish("incident.updated", owner=incident.owner, platform=incident.platform,
                             incident=incident.to_dict())
        if action == "confirm":
            self._apply_policy(incident)
        return incident

    def _apply_policy(self, incident: Incident) -> None:
        """A confirmed incident on a ``cut`` reference takes the stream down, once."""
        reference = self.catalog.reference(incident.reference_id)
        already_cut = any(e.type == "stream.cut" for e in self.actions.events(incident_id=incident.id))
        if reference.policy != "cut" or already_cut:
            return
        stream = None
        try:
            stream = self.streams.stop(incident.stream_id).to_dict()
        except NotFoundError:  # an uploaded file's scan: no stream to stop, the takedown still goes
            pass
        self.actions.publish("stream.cut", owner=incident.owner, platform=incident.platform,
                             incident=incident.to_dict(), stream=stream)

    def _delivered(self, event, delivered_at: float) -> None:
        if event.incident_id is not None and event.type in ("incident.flagged", "stream.cut"):
            self.incidents.mark_delivered(event.incident_id, delivered_at)

def media_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Expand files and folders (recursively, media suffixes only) into files, sorted per folder."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in MEDIA_SUFFIXES:
                    yield child
        else:
            yield path

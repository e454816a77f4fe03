"""The one object guard's shells call: ingest, scan, references, export/import.

The CLI and the API are thin layers over :class:`Guard`; nothing here imports them.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from guard import exchange
from guard.act import Act
from guard.audio_fingerprint import AudioFingerprinter, empty_video_track, fingerprint_media
from guard.config import PROCESS_ROLES, Settings, parse_roles
from guard.errors import ConflictError, FormatError, InputError
from guard.fingerprint import Fingerprinter, reference_warnings
from guard.keyframes import KEYFRAME_INTERVAL, keyframes_of, stills_for_keyframes
from guard.jobs import JobPorts, JobQueue, scan_file, service_handlers
from guard.keys import KeyStore
from guard.models import Fingerprint, Keyframe, MaskedCodes, Reference, ScanResult, Segment
from guard.pipeline import REFINGERPRINT_ADVICE, pipeline_differences, track_pipeline
from guard.refindex import ReferenceIndex
from guard.search import Searcher
from guard.storage import ReferenceRepository
from guard.store import Catalog
from guard.actions import ActionCenter
from guard.incidents import Incident, IncidentStore
from guard.live_reference import LiveReferenceIngest, end_orphaned, process_token
from guard.monitor import (
    PLAYLIST_CHECK_INTERVAL,
    EventCallback,
    LivePorts,
    MonitorManager,
    StreamInfo,
    live_decode_options,
    live_location,
)
from guard.signals.audio import Landmarks
from guard.urlpolicy import PlaylistWatcher, redact

log = logging.getLogger(__name__)

#: File name endings a folder scan picks up.
MEDIA_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv",
    ".mpg", ".mpeg", ".wmv", ".3gp", ".ogv", ".y4m",
}

Progress = Callable[[float], None]


class Guard:
    """A guard installation: its catalog, index and fingerprinter over one store folder."""

    def __init__(self, settings: Settings | None = None, roles: Iterable[str] = PROCESS_ROLES):
        """``roles`` (see :data:`guard.config.PROCESS_ROLES`) say which background parts this
        process runs; the others' work waits in the catalog for a process that has them. Nothing
        starts before :meth:`start`, except on demand with every role (as the CLI uses it)."""
        self.settings = settings or Settings.from_env()
        self.roles = parse_roles(roles)
        self.home = Path(self.settings.home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.home / "catalog.sqlite")
        self.fingerprinter = Fingerprinter(
            self.settings.signal, self.settings.sample_fps, self.settings.fast_decode
        )
        self.audio = AudioFingerprinter()
        self.reference_repository = ReferenceRepository(self.catalog)
        try:
            self.index = ReferenceIndex(self.reference_repository, self.home, self.fingerprinter.signal,
                                        self.fingerprinter.pipeline)
        except BaseException:  # e.g. tracks of another pipeline: nothing else has started yet
            self.catalog.close()
            raise
        self.searcher = Searcher(self.index, self.settings.match, self.fingerprinter.signal,
                                 1.0 / self.settings.sample_fps, self.audio.signal)
        self.keys = KeyStore(self.catalog)
        # Acting on copies: incidents, the webhook outbox (its dispatcher starts with the first
        # event, monitor or an explicit ``actions.start()``) and the one place that decides over
        # them for live streams, scans and reviews alike; then the runners, wired to it by ports.
        self.incidents = IncidentStore(self.catalog)
        self.actions = ActionCenter(self.catalog, self.settings.webhook,
                                    allow_private_addresses=self.settings.allow_private_addresses,
                                    dispatch="dispatch" in self.roles)
        self.outbox = self.actions
        self.act = Act(self.incidents, self.actions, self.reference_repository, live=self.settings.live,
                       stop_stream=self._stop_stream)
        self.streams = MonitorManager(
            LivePorts(self.settings, self.catalog, self.fingerprinter, self.searcher, self.act),
            run="monitor" in self.roles)
        self._job_ports = JobPorts(self.settings, self.fingerprinter, self.searcher.match, self.ingest, self.act,
                                   audio=self.audio, match_file=self.searcher.match_file)
        self.jobs = JobQueue(self.catalog, service_handlers(self._job_ports), self.settings.job_workers,
                             self.settings.job_nice, run="jobs" in self.roles)
        self._live_references: dict[int, LiveReferenceIngest] = {}
        end_orphaned(self.reference_repository)  # live references whose ingest process crashed

    def start(self, poll_interval: float = 1.0) -> None:
        """Start the background parts of this process's roles (``guard serve``): ``jobs``
        recovers and runs queued jobs, ``dispatch`` sends the outbox, ``monitor`` takes the
        streams other processes recorded; each looks for new work every ``poll_interval`` s."""
        self.jobs.start(poll_interval)
        self.actions.start()
        self.streams.start_polling(poll_interval)

    def close(self) -> None:
        """End this process's live references, stop the job workers (running jobs finish
        first) and release the catalog."""
        for ingest in self._live_references.values():
            ingest.stop()
        for ingest in self._live_references.values():
            ingest.wait(30.0)
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
        source: str | None = None,
        match: str = "any",
    ) -> Reference:
        """Fingerprint a reference video, keep its keyframes (evidence pictures, see
        :mod:`guard.keyframes`) and register both; ``source`` is what to record as its origin
        (default: the path). A file with sound also gets an audio track (an audio-only file
        only that one); ``match`` is its match policy (``video``, ``audio`` or ``any``)."""
        stills = stills_for_keyframes()
        fp, landmarks, audio_end = fingerprint_media(self.fingerprinter, self.audio, path, progress, stills=stills)
        keyframes = keyframes_of(stills) if len(fp) else []
        tracks = [fp] if landmarks is None else [fp, self.audio.track(landmarks, audio_end)]
        return self.register(
            tracks, title=title or Path(path).stem, owner=owner, policy=policy,
            min_seconds=min_seconds, source=source or os.fspath(path), allowlist=allowlist,
            keyframes=keyframes, match=match,
        )

    def register(
        self,
        fp: Fingerprint | Sequence[Fingerprint],
        *,
        title: str,
        owner: str,
        policy: str = "flag",
        min_seconds: float | None = None,
        source: str,
        allowlist: list[str] | None = None,
        keyframes: Sequence[Keyframe] = (),
        match: str = "any",
    ) -> Reference:
        """Store computed fingerprint tracks as a reference and index them.

        ``fp`` is one track or several (one per signal, as exports of format 2 carry). The
        track of the signal this guard matches with is required and must come from the
        pipeline this guard runs (:class:`FormatError` otherwise); other tracks are kept when
        theirs match too, and left out with a warning when not. ``keyframes`` are stored with
        the reference, in the same transaction.

        The reference's ``warnings`` say what of it the matcher cannot find (too short, or a
        picture that barely changes; see :func:`guard.fingerprint.reference_warnings`).
        """
        tracks, left_out = self._usable_tracks(fp, source)
        primary = tracks[0]
        heard = any(len(t) for t in tracks if t.signal == self.audio.signal.name)
        if len(primary) == 0 and not heard:  # an audio track alone is matched by its sound
            raise InputError(f"{source}: nothing to fingerprint: no informative frames (blank, flat or no video) "
                             "and no usable sound")
        overlaps = self._overlaps(primary, owner) if len(primary) else []  # before indexing: it would match itself
        ref = self.reference_repository.add(
            owner=owner, title=title, policy=policy,
            min_seconds=self.settings.default_min_seconds if min_seconds is None else min_seconds,
            source=source, tracks=tracks, allowlist=allowlist, keyframes=keyframes, match=match,
        )
        self.index.added(ref, tracks)
        log.info("registered reference %d %r (%d frames, %d keyframes)", ref.id, ref.title, len(primary),
                 len(keyframes))
        if len(primary):
            ref.warnings = reference_warnings(primary, ref.min_seconds, self.settings.match) + left_out
        else:
            ref.warnings = ["no informative picture: it is matched by its audio only", *left_out]
        for warning in ref.warnings:
            log.warning("reference %d %r: %s", ref.id, ref.title, warning)
        ref.overlaps = overlaps
        for overlap in overlaps:
            log.warning("reference %d %r overlaps reference %d %r of %s", ref.id, ref.title, overlap["reference_id"],
                        overlap["reference_title"], overlap["owner"])
        return ref

    def _overlaps(self, track: Fingerprint, owner: str) -> list[dict[str, Any]]:
        """Other owners' references whose footage ``track`` holds (an ownership overlap: a copy
        of it will be a conflict), as :attr:`Reference.overlaps` lists them."""
        refs = self.index.refs
        return [
            {"reference_id": s.reference_id, "reference_title": s.reference_title, "owner": refs[s.reference_id].owner,
             "start": round(s.query_start, 3), "end": round(s.query_end, 3),
             "reference_start": round(s.reference_start, 3), "reference_end": round(s.reference_end, 3)}
            for s in self.match(track.times, track.codes)
            if s.reference_id in refs and refs[s.reference_id].owner != owner
        ]

    def _usable_tracks(self, fp: Fingerprint | Sequence[Fingerprint], source: str) -> tuple[list[Fingerprint], list[str]]:
        """The tracks to store, the running signal's first, and why any others were left out."""
        tracks = [fp] if isinstance(fp, Fingerprint) else list(fp)
        signal = self.fingerprinter.signal
        needs = f"this store needs {signal.name} v{signal.version} ({signal.bits} bits)"
        primary = next((t for t in tracks if t.signal == signal.name), None)
        if primary is None:
            made = ", ".join(f"{t.signal} v{t.signal_version} ({t.bits} bits)" for t in tracks) or "no signal"
            raise FormatError(f"{source}: fingerprint uses {made}; {needs}")
        differences = pipeline_differences(track_pipeline(primary), self.fingerprinter.pipeline())
        if differences:
            raise FormatError(f"{source}: fingerprint made by another pipeline ({'; '.join(differences)}); "
                              f"{needs} as this guard makes them. {REFINGERPRINT_ADVICE}")
        kept, left_out = [primary], []
        for track in tracks:
            if track is primary:
                continue
            try:
                running = self.index.running_pipeline(track.signal)
                problems = pipeline_differences(track_pipeline(track), running)
            except FormatError as exc:  # a signal this guard does not know
                problems = [str(exc)]
            if problems:
                left_out.append(f"its {track.signal} track was left out ({'; '.join(problems)})")
            else:
                kept.append(track)
        return kept, left_out

    def import_fingerprint(
        self,
        path: str | os.PathLike,
        *,
        owner: str = "default",
        policy: str = "flag",
        min_seconds: float | None = None,
        title: str | None = None,
        match: str | None = None,
    ) -> Reference:
        """Register a hash-only reference from an exchange file (see :mod:`guard.exchange`);
        its match policy is ``match``, else the file's (``any`` for files without one)."""
        document = exchange.load_document(Path(path))
        return self.register(
            document.tracks, title=title or document.title, owner=owner, policy=policy,
            min_seconds=min_seconds, source=f"import:{Path(path).name}", match=match or document.match,
        )

    def export(self, ref_id: int, path: str | os.PathLike) -> Path:
        """Write a reference's fingerprint tracks in the exchange format (hashes only)."""
        ref = self.reference_repository.get(ref_id)
        return exchange.dump(self.reference_repository.tracks_of(ref_id), ref.title, Path(path), match=ref.match)

    def references(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's."""
        return self.reference_repository.all(owner)

    def reference(self, ref_id: int) -> Reference:
        """One reference by id."""
        return self.reference_repository.get(ref_id)

    def tracks(self, ref_id: int) -> list[Fingerprint]:
        """A reference's fingerprint tracks, one per signal, by signal name."""
        return self.reference_repository.tracks_of(ref_id)

    def reference_keyframes(self, ref_id: int) -> list[Keyframe]:
        """A reference's stored pictures by time (none for a hash-only import)."""
        return self.reference_repository.keyframes(ref_id)

    def reference_keyframe(self, ref_id: int, media_time: float) -> Keyframe | None:
        """The stored picture of a reference nearest ``media_time`` seconds (within one keyframe
        interval): the reference side of an incident's evidence. None for a hash-only import."""
        return self.reference_repository.keyframe_near(ref_id, media_time, within=KEYFRAME_INTERVAL)

    def update_reference(self, ref_id: int, **changes) -> Reference:
        """Change policy, min_seconds, title, allowlist or match (policy) of a reference."""
        return self.reference_repository.update(ref_id, **changes)

    def remove_reference(self, ref_id: int) -> Reference:
        """Delete a reference with its tracks and keyframes; its vectors leave the index at once."""
        ref = self.reference_repository.remove(ref_id)
        self.index.removed(ref_id)
        return ref

    # -- live references ----------------------------------------------------------------------

    def start_live_reference(
        self,
        url: str,
        *,
        title: str,
        owner: str = "default",
        policy: str = "flag",
        min_seconds: float | None = None,
        match: str = "any",
        retain_hours: float | None = None,
        max_seconds: float | None = None,
        realtime: bool = False,
        av_options: dict | None = None,
    ) -> LiveReferenceIngest:
        """Register a live reference and start fingerprinting its feed in a new thread (see
        :mod:`guard.live_reference`); the URL passes the policy monitored streams pass
        (:class:`~guard.errors.URLPolicyError` before anything is stored). ``retain_hours``
        keeps only the last hours of it; ``max_seconds`` ends it after that much has aired."""
        if retain_hours is not None and retain_hours <= 0:
            raise InputError("retain_hours must be positive")
        location, options = live_location(url, self.settings, realtime, av_options)
        decode_options = live_decode_options(self.settings, options, self.audio.sample_rate)
        tracks = [empty_video_track(self.fingerprinter), self.audio.track(Landmarks(), 0.0)]
        ref = self.reference_repository.add_live(
            owner=owner, title=title, policy=policy, source=redact(url) if "://" in url else os.path.basename(url),
            min_seconds=self.settings.default_min_seconds if min_seconds is None else min_seconds,
            tracks=tracks, match=match, retain_seconds=None if retain_hours is None else retain_hours * 3600.0,
            process=process_token())
        self.index.added(ref, tracks)
        playlist = PlaylistWatcher(url, allow_private_addresses=self.settings.allow_private_addresses,
                                   interval=PLAYLIST_CHECK_INTERVAL,
                                   timeout=self.settings.live.open_timeout) if options.hls else None
        ingest = LiveReferenceIngest(self.reference_repository, self.fingerprinter, self.audio, ref, location,
                                     decode_options, av_options=options.av_options, max_seconds=max_seconds,
                                     append_interval=self.settings.live.reference_append_interval,
                                     playlist=playlist)
        self._live_references[ref.id] = ingest
        threading.Thread(target=ingest.run, name=f"guard-live-reference-{ref.id}", daemon=True).start()
        log.info("live reference %d %r: ingesting %s", ref.id, title, ref.source)
        return ingest

    def ingest_live(self, url: str, **options: Any) -> Reference:
        """Ingest a live reference until its feed ends (blocking; Ctrl-C ends it cleanly); the
        options are :meth:`start_live_reference`'s. Returns the ended reference."""
        ingest = self.start_live_reference(url, **options)
        try:
            ingest.wait()
        finally:
            ingest.stop()
            ingest.wait(30.0)
        return ingest.reference

    def end_live_reference(self, ref_id: int, timeout: float = 30.0) -> Reference:
        """End a live reference: its ingest here stops, or (ingested elsewhere) the catalog says
        it ended and that ingest stops at its next append. :class:`ConflictError` if not live."""
        ingest = self._live_references.get(ref_id)
        if ingest is not None and not ingest.wait(0):
            ingest.stop()
            ingest.wait(timeout)
            return self.reference(ref_id)
        if self.reference(ref_id).live_status != "live":
            raise ConflictError(f"reference {ref_id} is not live")
        return self.reference_repository.end_live(ref_id)

    # -- scanning -----------------------------------------------------------------------------

    def match(self, times: np.ndarray, codes: np.ndarray, masked: MaskedCodes | None = None) -> list[Segment]:
        """Copied segments in a sequence of query frames (times in seconds, packed codes, and
        the masked readings of frames partly hidden by a still overlay, if any)."""
        return self.searcher.match(times, codes, masked)

    def scan(self, path: str | os.PathLike, progress: Progress | None = None) -> ScanResult:
        """Fingerprint a file and report every copied segment in it."""
        return scan_file(self._job_ports, path, progress)


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
                        note: str | None = None, reviewer: str | None = None) -> Incident:
        """``confirm`` or ``dismiss`` an incident; ``allowlist_account`` also licenses the stream's
        account for the reference (no future incident), and an ``incident.updated`` event goes out.
        Confirming an incident of a ``cut`` reference stops its stream and sends the takedown, once
        (see :meth:`guard.act.Act.review`)."""
        return self.act.review(incident_id, action, allowlist_account=allowlist_account, note=note,
                               reviewer=reviewer)

    def _stop_stream(self, stream_id: str) -> dict:
        """The ``stop_stream`` port of :class:`~guard.act.Act`: stop a monitored stream (in this
        process or through the catalog); :class:`~guard.errors.NotFoundError` if there is none."""
        return self.streams.stop(stream_id).to_dict()

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

"""Live references: a rights holder's broadcast feed, fingerprinted as it airs.

A live reference is a catalog reference whose tracks grow while its feed plays. The ingest
pulls the feed like a monitored stream (:func:`guard.decode.live_batches`, any transport the
monitors take, under the same URL policy), reads each sampled frame as a reference's frames
are read and its sound into reference landmarks, and every ``append_interval`` seconds commits
what aired as one chunk per track (:meth:`ReferenceRepository.append`). Index readers in
every process take the chunks as they commit (:meth:`guard.refindex.ReferenceIndex.sync`),
without a rebuild: a monitored restream is matched against a moment within about a second of
its airing.

The reference's timeline is the feed's stream clock: it continues across reconnects and
timestamp resets by the wall-clock time that passed, so a reconnect keeps one timeline and the
time the feed was away is recorded as a gap. ``aired_start`` is the wall-clock time of media
time 0 (the earliest arrival minus media time over every frame): an incident's copied moment
aired at ``aired_start + reference_start``, and the restream's delay is the time its copy
reached guard minus that.

``retain_seconds`` keeps only the last stretch of a 24/7 channel: older codes, keyframes and
gaps leave the catalog and (through a generation change) every index together.

The ingest's process is recorded on the reference; a reference still ``live`` whose process
is gone (a crash) is ended on the next start (:func:`end_orphaned`): it stays consistent,
every committed chunk matchable, and can be ingested again as a new reference.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

import numpy as np

from guard import decode
from guard.audio_fingerprint import AudioFingerprinter, codes_of
from guard.errors import FormatError, GuardError
from guard.fingerprint import Fingerprinter
from guard.keyframes import KEYFRAME_INTERVAL, keyframe
from guard.models import Keyframe, Reference
from guard.signals.audio import Landmarks
from guard.urlpolicy import PlaylistWatcher

log = logging.getLogger(__name__)

#: A step of the feed's clock longer than this (s) is a gap (the feed was away).
GAP_SECONDS = 2.0
#: Retention trims once the oldest kept moment is this share of the retention past its limit
#: (at least :data:`TRIM_STEP_MIN` s): each trim makes every index reload.
TRIM_STEP = 0.1
TRIM_STEP_MIN = 2.0


class LiveCatalog(Protocol):
    """What the ingest needs of the catalog (:class:`guard.storage.ReferenceRepository`)."""

    def append(self, ref_id: int, pieces: Sequence[tuple[str, np.ndarray, np.ndarray]], *, duration: float,
               frames: int = 0, aired_start: float | None = None) -> int:
        """Commit newly aired codes of a live reference's tracks."""

    def add_keyframes(self, ref_id: int, keyframes: Sequence[Keyframe]) -> None:
        """Store pictures of the reference."""

    def add_gap(self, ref_id: int, start: float, end: float) -> None:
        """Record a stretch the feed was away."""

    def trim(self, ref_id: int, before: float) -> int:
        """Drop what aired before ``before``."""

    def end_live(self, ref_id: int, status: str = "ended", error: str | None = None) -> Reference:
        """The feed is over: the reference becomes an ordinary one."""

    def get(self, ref_id: int) -> Reference:
        """A reference."""


@dataclass
class LiveReferenceStatus:
    """What an ingest has done so far."""

    reference_id: int
    status: str = "starting"  # starting, live, reconnecting, ended, failed
    aired_seconds: float = 0.0
    frames: int = 0
    landmarks: int = 0
    appends: int = 0
    reconnects: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)
    error: str | None = None


class LiveReferenceIngest:
    """Fingerprints one live reference's feed until it ends, :meth:`stop` or ``max_seconds``."""

    def __init__(self, catalog: LiveCatalog, fingerprinter: Fingerprinter, audio: AudioFingerprinter,
                 reference: Reference, location: str, options: decode.LiveOptions, *,
                 av_options: dict[str, str] | None = None, max_seconds: float | None = None,
                 append_interval: float = 0.5, playlist: PlaylistWatcher | None = None):
        self.catalog = catalog
        self.reference = reference
        self.location = location
        self.options = options
        self.av_options = av_options
        self.max_seconds = max_seconds
        self.append_interval = append_interval
        self.status = LiveReferenceStatus(reference.id)
        #: An HLS feed's playlist, re-checked while it plays (a refused one stops the ingest; its
        #: end tells a finished feed from a demuxer that gave up waiting for a segment).
        self.playlist = playlist
        self._refused: GuardError | None = None
        self._signal = fingerprinter.signal.name
        self._readings = fingerprinter.session()
        self._audio_signal = audio.signal.name
        self._landmarks = audio.signal.extractor(query=False)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_sound: list[Landmarks] = []
        self._pending_keyframes: list[Keyframe] = []
        self._skew: float | None = None  # least arrival minus media time: aired_start
        self._last_time: float | None = None
        self._last_keyframe = -np.inf
        self._last_append = time.monotonic()
        self._first_kept = 0.0

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the ingest to end the reference (returns at once; see :meth:`wait`)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the ingest has finished; True if it has."""
        return self._done.wait(timeout)

    def run(self) -> Reference:
        """Ingest until the end (blocking); the reference ends ``ended`` (it aired something) or
        ``failed``. Never raises for the feed's failures: they are the reference's status."""
        error: str | None = None
        try:
            options = self._watch_playlist()
            for batch in decode.live_batches(self.location, options, self._stop, self._on_status,
                                             self.av_options):
                self._take(batch)
                if time.monotonic() - self._last_append >= self.append_interval:
                    self._commit()
                if self.max_seconds is not None and self.status.aired_seconds >= self.max_seconds:
                    break
        except GuardError as exc:
            error = str(exc)
            log.warning("live reference %d: %s", self.reference.id, exc)
        except Exception as exc:  # noqa: BLE001 — the reference must end consistently whatever happened
            error = f"internal error: {exc!r}"
            log.exception("live reference %d: internal error", self.reference.id)
        finally:
            if self.playlist is not None:
                self.playlist.stop()
        return self._finish(str(self._refused) if self._refused is not None else error)

    def _watch_playlist(self) -> decode.LiveOptions:
        """For an HLS feed: start re-checking its playlist; the read options that use it."""
        playlist = self.playlist
        if playlist is None:
            return self.options
        playlist.on_refused = self._refuse
        playlist.check()
        if playlist.error is not None:
            raise playlist.error
        playlist.start()

        def ended() -> bool:
            playlist.check()  # a fresh look: the demuxer has just stopped
            return playlist.ended or playlist.error is not None

        target = playlist.state.target_duration if playlist.state is not None else 0.0
        return replace(self.options, hls=True, hls_target_duration=target, hls_ended=ended)

    def _refuse(self, exc: GuardError) -> None:
        # from the watcher's thread: stop reading; the reference ends failed or ended with the reason
        self._refused = exc
        self._stop.set()

    # -- per batch ----------------------------------------------------------------------------

    def _on_status(self, kind: str, detail: str) -> None:
        if kind == "connected":
            self.status.status = "live"
            self.status.reconnects += detail == "reconnected"
        elif kind == "reconnecting":
            self.status.status = "reconnecting"
            log.info("live reference %d: feed away (%s)", self.reference.id, detail)

    def _take(self, batch: decode.LiveBatch) -> None:
        """Read one batch: its frames as a reference's, its sound into landmarks, a keyframe now and then."""
        if len(batch.times):
            self._mark_gap(float(batch.times[0]))
            readings = self._readings.add(batch)
            if len(readings.times):
                self._pending.append((readings.times, readings.codes))
                self.status.frames += len(readings.times)
            skew = float(np.min(batch.arrivals - batch.times))
            self._skew = skew if self._skew is None else min(self._skew, skew)
            self._last_time = float(batch.times[-1])
            self._keep_keyframes(batch)
        for block in batch.audio:
            if self._last_time is None or block.start > self._last_time:
                self._mark_gap(block.start)
                self._last_time = block.start + block.duration
            if not len(batch.times):
                skew = block.arrival - block.start
                self._skew = skew if self._skew is None else min(self._skew, skew)
            landmarks = self._landmarks.feed(block.samples, block.start)
            if len(landmarks):
                self._pending_sound.append(landmarks)
        if self._last_time is not None:
            self.status.aired_seconds = max(self.status.aired_seconds, self._last_time)

    def _mark_gap(self, start: float) -> None:
        """A step of the clock past :data:`GAP_SECONDS` since the last frame: the feed was away."""
        if self._last_time is not None and start - self._last_time > GAP_SECONDS:
            gap = (round(self._last_time, 3), round(start, 3))
            self.status.gaps.append(gap)
            self.catalog.add_gap(self.reference.id, *gap)
            log.info("live reference %d: gap %.1f-%.1f s", self.reference.id, *gap)

    def _keep_keyframes(self, batch: decode.LiveBatch) -> None:
        for t, thumb in zip(batch.times.tolist(), batch.thumbs):
            if t - self._last_keyframe >= KEYFRAME_INTERVAL:
                self._pending_keyframes.append(keyframe(t, thumb))
                self._last_keyframe = t

    def _commit(self, final: bool = False) -> None:
        """Append what aired since the last commit (one chunk per track), then trim to retention."""
        self._last_append = time.monotonic()
        if final:
            self._pending_sound.append(self._landmarks.flush())
        pieces = []
        if self._pending:
            pieces.append((self._signal, np.concatenate([t for t, _ in self._pending]),
                           np.concatenate([c for _, c in self._pending])))
        sound = Landmarks.concat(self._pending_sound) if self._pending_sound else Landmarks()
        if len(sound):
            order = np.lexsort((sound.hashes, sound.times))
            pieces.append((self._audio_signal, np.maximum(sound.times[order], 0.0).astype(np.float64),
                           codes_of(sound.hashes[order])))
            self.status.landmarks += len(sound)
        frames = len(pieces[0][1]) if pieces and pieces[0][0] == self._signal else 0
        if pieces or self._pending_keyframes:
            self.catalog.append(self.reference.id, pieces, duration=round(self.status.aired_seconds, 3),
                                frames=frames, aired_start=self._skew)
            if self._pending_keyframes:
                self.catalog.add_keyframes(self.reference.id, self._pending_keyframes)
            self.status.appends += 1
        self._pending, self._pending_sound, self._pending_keyframes = [], [], []
        self._retain()

    def _retain(self) -> None:
        retain = self.reference.retain_seconds
        if retain is None or self._last_time is None:
            return
        step = max(TRIM_STEP * retain, TRIM_STEP_MIN)
        if self._last_time - self._first_kept > retain + step:
            before = self._last_time - retain
            dropped = self.catalog.trim(self.reference.id, before)
            self._first_kept = before
            log.info("live reference %d: retention dropped %d codes before %.1f s", self.reference.id, dropped, before)

    def _finish(self, error: str | None) -> Reference:
        try:
            self._commit(final=True)
        except FormatError as exc:  # ended meanwhile by someone else (POST .../end)
            log.info("live reference %d: %s", self.reference.id, exc)
        except GuardError as exc:
            error = error or str(exc)
            log.warning("live reference %d: last append lost: %s", self.reference.id, exc)
        aired = self.status.frames or self.status.landmarks
        status = "ended" if aired else "failed"
        if not aired and error is None:
            error = "the feed ended before anything aired"
        self.status.status, self.status.error = status, error
        try:
            if self.catalog.get(self.reference.id).live_status == "live":
                self.reference = self.catalog.end_live(self.reference.id, status, error)
            else:
                self.reference = self.catalog.get(self.reference.id)
        finally:
            self._done.set()
        log.info("live reference %d %s: %.1f s aired, %d appends, %d gaps", self.reference.id, status,
                 self.status.aired_seconds, self.status.appends, len(self.status.gaps))
        return self.reference


def process_token() -> str:
    """Who ingests: ``host:pid:start`` (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def process_alive(token: str) -> bool:
    """Whether the process ``token`` (see :func:`process_token`) still runs; one of another
    host is assumed to, an empty token names none."""
    host, _, rest = token.partition(":")
    pid_text, _, started = rest.partition(":")
    if not token or not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _started(int(pid_text)) == started


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks
    except (OSError, IndexError):
        return ""


def end_orphaned(catalog: "OrphanCatalog") -> list[int]:
    """End the live references whose ingest process is gone (crashed, killed); their ids."""
    ended = []
    for ref in catalog.live():
        if not process_alive(catalog.live_process(ref.id)):
            try:
                catalog.end_live(ref.id, "ended", "the ingest process ended unexpectedly")
            except FormatError:  # ended meanwhile
                continue
            log.warning("live reference %d %r: its ingest process is gone; ended", ref.id, ref.title)
            ended.append(ref.id)
    return ended


class OrphanCatalog(Protocol):
    """What :func:`end_orphaned` needs of the catalog."""

    def live(self) -> list[Reference]:
        """References still live."""

    def live_process(self, ref_id: int) -> str:
        """Which process ingests a reference."""

    def end_live(self, ref_id: int, status: str = "ended", error: str | None = None) -> Reference:
        """End a live reference."""

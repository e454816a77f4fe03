"""Live stream monitoring: decode → fingerprint → sliding-window match → decisions.

:class:`StreamMonitor` watches one stream in its own thread. Sampled frames arrive from
:func:`guard.decode.live_batches` (reconnects, stalls and timestamp resets are handled there),
are read as they come by the query session files use too (:class:`guard.fingerprint.QuerySession`:
plain codes, and masked codes for frames under a still overlay found over a trailing window),
and join a sliding window of ``settings.live.window_seconds``. Every ``decision_interval`` the
window is matched by a :class:`guard.search.LiveSearch` (what :meth:`guard.service.Guard.match`
would report for it, plain, masked and mirrored readings alike, searching the index for new
frames only). The stream's sound (its first audio stream, decoded in the same packet loop and
on the same stream clock) goes through a query :class:`guard.signals.audio.LandmarkExtractor`
into a :class:`guard.search.LiveAudioSearch` (new landmarks only are looked up); the picture's
and the sound's segments are then decided as a scanned file's are
(:meth:`guard.search.Searcher.decide`: fused into ``audio+video`` where they agree, kept as the
reference's match policy allows, calibrated). A segment the matcher reports is by construction
at least the reference's ``min_seconds`` long and consistent in offset, so it becomes an
incident at once (unless the stream's account is on the reference's allowlist), decided by
the stream's :class:`guard.act.LiveCase`:

- policy ``flag``: record, send ``incident.flagged``, keep monitoring; the incident grows
  while the copy goes on (``incident.updated`` at most every ``update_interval``) and closes
  when the copy has not been seen for ``incident_idle_seconds``;
- policy ``cut``: record, send ``stream.cut`` (the platform's takedown), stop monitoring.

Latency from the first copied frame to the decision is about the reference's
``min_seconds`` (the matcher needs that much copy) plus ``decision_interval``, the sampling
period and the transport's own delay: a small ``min_seconds`` decides sooner but lets shorter
coincidences through, so it is a per-reference choice.

:class:`MonitorManager` runs many monitors at once, one thread each: decoding is FFmpeg work
that releases the GIL, per-frame Python stays small (a few sampled frames per second), and a
stream that stalls or fails only stops its own thread. Memory per stream is bounded by the
window (codes, times and small thumbnails of ``window_seconds``). Both take their parts as
ports (:class:`LivePorts`), wired by the composition root.
"""

from __future__ import annotations

import builtins
import collections
import logging
import math
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from guard import decode
from guard.act import Act, LiveStream
from guard.config import Settings
from guard.errors import ConflictError, GuardError, InputError, StreamError
from guard.fingerprint import Fingerprinter
from guard.incidents import Incident, iso
from guard.search import Searcher
from guard.storage.protocols import Database
from guard.storage.records import StreamRecord
from guard.storage.streams import StreamRepository
from guard.urlpolicy import PlaylistWatcher, check_url, redact

log = logging.getLogger(__name__)

#: Stream states: ``starting`` → ``live`` ⇄ ``reconnecting`` → one of the final states.
FINAL_STATES = ("ended", "cut", "stopped", "failed")
STATES = ("starting", "live", "reconnecting", *FINAL_STATES)
#: Monitor event types (the webhook types plus stream life-cycle notices, which are not sent).
EVENT_TYPES = ("stream.started", "stream.connected", "stream.reconnecting", "stream.resolution",
               "stream.allowlisted", "incident.flagged", "incident.updated", "stream.cut", "stream.ended")
#: How often a stream's row in the catalog is refreshed (s).
PERSIST_INTERVAL = 5.0
#: How often a monitored HLS playlist is fetched again and re-checked by the URL policy (s).
PLAYLIST_CHECK_INTERVAL = 2.0

_PROTOCOL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*[:,]")
_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass
class StreamInfo:
    """A snapshot of a monitored stream (live or finished).

    ``lag`` estimates how far behind real time processing runs (seconds, 0 when keeping up);
    ``frames`` counts sampled frames, ``audio_seconds`` the sound heard (0 for a stream without
    one); ``url`` is redacted (no credentials or query string).
    """

    id: str
    url: str
    account: str
    platform: str
    status: str
    started: float
    updated: float
    ended: float | None = None
    error: str | None = None
    frames: int = 0
    incidents: int = 0
    lag: float = 0.0
    reconnects: int = 0
    width: int = 0
    height: int = 0
    realtime: bool = False
    audio_seconds: float = 0.0

    @property
    def active(self) -> bool:
        """Whether the stream is still being monitored."""
        return self.status not in FINAL_STATES

    def to_dict(self) -> dict:
        """JSON-ready form (times as ISO 8601)."""
        out = asdict(self)
        for key in ("started", "updated", "ended"):
            out[key] = iso(out[key])
        out["lag"] = round(self.lag, 3)
        out["audio_seconds"] = round(self.audio_seconds, 3)
        out["active"] = self.active
        return out


@dataclass
class MonitorEvent:
    """Something that happened on a monitored stream, as the CLI prints it."""

    type: str
    stream_id: str
    time: float
    detail: str = ""
    incident: Incident | None = None
    webhook_event_id: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (one line of ``guard monitor --json``)."""
        out: dict[str, Any] = {"type": self.type, "stream_id": self.stream_id, "time": iso(self.time),
                               "detail": self.detail}
        if self.incident is not None:
            out["incident"] = self.incident.to_dict()
            out["reference_id"] = self.incident.reference_id
            out["reference_title"] = self.incident.reference_title
        if self.webhook_event_id:
            out["event_id"] = self.webhook_event_id
        return out


EventCallback = Callable[[MonitorEvent], None]


class SlidingWindow:
    """The last ``seconds`` of a stream's evidence: the times and wall-clock arrivals of its
    read frames and of its sound's blocks, and thumbnails (their readings and index hits are the
    :class:`LiveSearch`'s and :class:`LiveAudioSearch`'s)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.times = np.zeros(0)
        self.arrivals = np.zeros(0)
        self.sound_times = np.zeros(0)  # block starts
        self.sound_arrivals = np.zeros(0)
        self.thumbs: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self.skew: float | None = None  # least wall-clock arrival minus stream time so far

    def add(self, times: np.ndarray, arrivals: np.ndarray) -> None:
        """Append read frames and drop those older than the window."""
        self._skew(times, arrivals)
        self.times = np.concatenate([self.times, times])
        self.arrivals = np.concatenate([self.arrivals, arrivals])
        if len(self.times):
            keep = self.times >= self.times[-1] - self.seconds
            if not keep.all():
                self.times, self.arrivals = self.times[keep], self.arrivals[keep]

    def add_sound(self, starts: np.ndarray, arrivals: np.ndarray) -> None:
        """Append sound blocks (their starts and first samples' arrivals); drop those older than the window."""
        self._skew(starts, arrivals)
        self.sound_times = np.concatenate([self.sound_times, starts])
        self.sound_arrivals = np.concatenate([self.sound_arrivals, arrivals])
        if len(self.sound_times):
            keep = self.sound_times >= self.sound_times[-1] - self.seconds - 1.0
            if not keep.all():
                self.sound_times, self.sound_arrivals = self.sound_times[keep], self.sound_arrivals[keep]

    def add_thumbs(self, times: np.ndarray, thumbs: list[np.ndarray]) -> None:
        """Keep thumbnails for evidence, as long as the window."""
        self.thumbs.extend(zip(times.tolist(), thumbs))
        while self.thumbs and self.thumbs[0][0] < self.thumbs[-1][0] - self.seconds:
            self.thumbs.popleft()

    def arrival_at(self, t: float) -> float:
        """Wall-clock arrival of the frame at stream time ``t`` (nearest kept frame), or of the
        sound at ``t`` when no frame is within a second of it (a stream heard, not seen)."""
        if len(self.times):
            i = int(np.clip(np.searchsorted(self.times, t - 1e-6), 0, len(self.times) - 1))
            if abs(self.times[i] - t) <= 1.0 or not len(self.sound_times):
                return float(self.arrivals[i])
        if not len(self.sound_times):
            return time.time()
        k = int(np.clip(np.searchsorted(self.sound_times, t, side="right") - 1, 0, len(self.sound_times) - 1))
        return float(self.sound_arrivals[k] + np.clip(t - self.sound_times[k], 0.0, 1.0))

    def _skew(self, times: np.ndarray, arrivals: np.ndarray) -> None:
        if len(times):
            least = float(np.min(arrivals - times))
            self.skew = least if self.skew is None else min(self.skew, least)

    def wall_at(self, t: float) -> float:
        """When stream time ``t`` played on the wall clock: ``t`` plus the least arrival skew
        (frames decoded in a burst, e.g. after the demuxer probed, arrived late)."""
        return self.arrival_at(t) if self.skew is None else t + self.skew

    def thumb_at(self, t: float) -> tuple[float, np.ndarray] | None:
        """The thumbnail nearest stream time ``t``."""
        if not self.thumbs:
            return None
        return min(self.thumbs, key=lambda item: abs(item[0] - t))


@dataclass(frozen=True)
class LivePorts:
    """What monitoring needs, wired by the composition root (:class:`guard.service.Guard`):
    nothing here knows the service."""

    settings: Settings
    #: Where the streams' records live (:class:`guard.storage.streams.StreamRepository`).
    database: Database
    #: Reads each batch as files are read (plain and masked readings).
    fingerprinter: Fingerprinter
    #: Matches the sliding window (:meth:`guard.search.Searcher.live`).
    searcher: Searcher
    #: Opens, grows and closes the incidents, with their evidence and events.
    act: Act


@dataclass
class MonitorOptions:
    """How :class:`StreamMonitor` opens its source: URL checked by the policy, or a local file."""

    realtime: bool = False
    whitelist: str | None = None
    hls: bool = False
    av_options: dict | None = None
    reconnect: bool = True


class StreamMonitor:
    """Watches one stream until it ends, is cut, fails or :meth:`stop` is called."""

    def __init__(
        self,
        ports: LivePorts,
        url: str,
        *,
        stream_id: str,
        account: str,
        platform: str = "default",
        options: MonitorOptions | None = None,
        on_event: EventCallback | None = None,
    ):
        self.settings = ports.settings
        self.searcher = ports.searcher
        self.repository = StreamRepository(ports.database)
        self.url = url
        self.options = options or MonitorOptions()
        self.live = ports.settings.live
        self.on_event = on_event
        now = time.time()
        self.info = StreamInfo(
            id=stream_id, url=redact(url) if "://" in url else os.path.basename(url.removeprefix("file:")),
            account=account,
            platform=platform, status="starting", started=now, updated=now, realtime=self.options.realtime,
        )
        self._stop = threading.Event()
        self._done = threading.Event()
        self._readings = ports.fingerprinter.session(overlays="live", windows=self.settings.match.regions)
        self._window = SlidingWindow(self._window_seconds())
        self._search = ports.searcher.live(self._window.seconds)
        self._windows = ports.searcher.live_windows(self._window.seconds)
        self._sound = ports.searcher.live_audio(self._window.seconds)
        self._landmarks = ports.searcher.audio_signal.extractor(query=True)
        self._case = ports.act.live_case(LiveStream(
            id=stream_id, account=account, platform=platform, describe=lambda: self.snapshot().to_dict(),
            arrival_at=lambda t: self._window.arrival_at(t), frame_at=lambda t: self._window.thumb_at(t),
            notify=self._emit, opened=self._opened, wall_at=lambda t: self._window.wall_at(t),
        ))
        self._last_eval = 0.0
        self._new_frames = False
        self._last_persist = 0.0
        self._lag_base: float | None = None
        self._refused: GuardError | None = None

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the monitor to stop (returns at once; see :meth:`wait`)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the monitor has finished; True if it has."""
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        """Whether :meth:`run` has returned."""
        return self._done.is_set()

    def snapshot(self) -> StreamInfo:
        """A copy of the stream's current state."""
        return StreamInfo(**asdict(self.info))

    def recent_frame(self) -> tuple[float, np.ndarray] | None:
        """The stream's latest thumbnail ``(stream time, RGB)``, None before its first frame."""
        try:
            return self._window.thumbs[-1]
        except IndexError:
            return None

    def run(self) -> StreamInfo:
        """Monitor until the end (blocking). Never raises: failures end in status ``failed``."""
        self._persist(force=True, insert=True)
        self._emit("stream.started", self.info.url)
        watcher = None
        try:
            watcher = self._watch_playlist()
            for batch in decode.live_batches(self.url, self._live_options(watcher), self._stop, self._status,
                                             self.options.av_options):
                if self._on_batch(batch):
                    break
            else:
                if self.info.status not in FINAL_STATES:
                    self.info.status = "stopped" if self._stop.is_set() else "ended"
        except StreamError as exc:
            # A stream that played and then went away for good has ended; one that never played failed.
            played = self.info.frames or self.info.audio_seconds
            self.info.status, self.info.error = ("ended" if played else "failed"), str(exc)
            log.warning("stream %s %s: %s", self.info.id, self.info.status, exc)
        except GuardError as exc:
            self.info.status, self.info.error = "failed", str(exc)
            log.warning("stream %s failed: %s", self.info.id, exc)
        except Exception as exc:  # noqa: BLE001 — one broken stream must not take the manager down
            self.info.status, self.info.error = "failed", f"internal error: {exc!r}"
            log.exception("stream %s: internal error", self.info.id)
        finally:
            if watcher is not None:
                watcher.stop()
            if self._refused is not None:  # whatever the read loop saw, the refusal is why it ended
                self.info.status, self.info.error = "failed", str(self._refused)
            self._finish()
        return self.snapshot()

    def _watch_playlist(self) -> PlaylistWatcher | None:
        """For HLS: check the playlist now and keep re-checking it while the stream runs."""
        if not self.options.hls:
            return None
        watcher = PlaylistWatcher(self.url, allow_private_addresses=self.settings.allow_private_addresses,
                                  interval=PLAYLIST_CHECK_INTERVAL, timeout=self.live.open_timeout,
                                  on_refused=self._refuse)
        self._await_playlist(watcher)
        return watcher if self._stop.is_set() else watcher.start()

    def _await_playlist(self, watcher: PlaylistWatcher) -> None:
        """Check the playlist until it can be fetched: a packager writes it only after its first
        segment, so a 404 at the start is retried with the reconnect backoff up to
        ``start_timeout``. A refused playlist raises at once."""
        deadline = time.monotonic() + self.live.start_timeout
        delay = self.live.reconnect_initial
        while watcher.check() is None:
            if watcher.error is not None:
                raise watcher.error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamError(f"{self.info.url}: the playlist did not become available within "
                                  f"{self.live.start_timeout:g} s (start_timeout; last: {watcher.failure})")
            self._emit("stream.reconnecting", f"playlist not available yet ({watcher.failure}); "
                                              f"retry in {min(delay, remaining):.1f} s")
            if self._stop.wait(min(delay, remaining)):
                return
            delay = min(delay * 2, self.live.reconnect_max)

    def _refuse(self, exc: GuardError) -> None:
        # Called from the watcher's thread: stop reading; run() reports the stream as failed.
        self._refused = exc
        self._stop.set()

    # -- per batch ----------------------------------------------------------------------------

    def _live_options(self, watcher: PlaylistWatcher | None = None) -> decode.LiveOptions:
        target = watcher.state.target_duration if watcher is not None and watcher.state is not None else 0.0
        return live_decode_options(self.settings, self.options, self.searcher.audio_signal.params.sample_rate,
                                   hls_target_duration=target, hls_ended=self._playlist_ended(watcher))

    @staticmethod
    def _playlist_ended(watcher: PlaylistWatcher | None):
        if watcher is None:
            return None

        def ended() -> bool:
            # A fresh look: the demuxer has just stopped, the periodic state may be seconds old.
            watcher.check()
            return watcher.ended or watcher.error is not None

        return ended

    def _window_seconds(self) -> float:
        index = self.searcher.index
        index.sync()  # references another process registered, live ones among them
        refs = [*index.refs.values(), *(index.audio_refs().values() if hasattr(index, "audio_refs") else ())]
        longest = max((r.min_seconds for r in refs), default=0.0)
        seconds = max(self.live.window_seconds, longest + 2 * self.settings.match.max_gap + 2.0)
        if hasattr(index, "on_air") and index.on_air():
            # a restream ahead of a live reference's feed is matched when the feed catches up:
            # its frames must still be in the window then
            seconds = max(seconds, self.live.reference_lead + longest + 2 * self.settings.match.max_gap)
        return seconds

    def _on_batch(self, batch: decode.LiveBatch) -> bool:
        """Take one batch; True when monitoring must stop (the stream was cut)."""
        self.info.frames += len(batch.times)
        self.info.width, self.info.height = batch.width, batch.height
        self._track_lag(batch)
        if len(batch.times):
            readings = self._readings.add(batch)
            times = readings.times
            arrivals = batch.arrivals[np.searchsorted(batch.times, times)] if len(times) else times
            self._window.add(times, arrivals)
            self._search.add(times, readings.codes, readings.masked)
            if readings.regions is not None:
                self._windows.add(times, readings.regions)
            self._window.add_thumbs(batch.times, batch.thumbs)
            self._new_frames = self._new_frames or bool(len(times))
        if batch.audio:
            self._hear(batch.audio)
        now = time.time()
        if self._new_frames and now - self._last_eval >= self.live.decision_interval:
            self._last_eval = now
            self._new_frames = False
            if self._evaluate(now):
                return True
        self._close_idle(now)
        self._persist()
        return False

    def _hear(self, blocks: tuple[decode.LiveAudioBlock, ...]) -> None:
        """The sound's landmarks (a query's, under every assumed speed) join the window."""
        self._window.add_sound(np.array([b.start for b in blocks]), np.array([b.arrival for b in blocks]))
        for block in blocks:
            self.info.audio_seconds += block.duration
            landmarks = self._landmarks.feed(block.samples, block.start)
            if len(landmarks):
                self._sound.add(landmarks)
                self._new_frames = True

    def _track_lag(self, batch: decode.LiveBatch) -> None:
        # A steady clock minus the stream clock is constant while processing keeps up; its growth
        # is lag. Not the wall clock: an NTP step would show as lag on every stream at once.
        if len(batch.times):
            skew = batch.decoded - float(batch.times[-1])
        elif batch.audio and not self.info.frames:  # heard, never seen: sound interleaves a little ahead
            skew = batch.decoded - (batch.audio[-1].start + batch.audio[-1].duration)
        else:
            return
        if self._lag_base is None or skew < self._lag_base:
            self._lag_base = skew
        self.info.lag = skew - self._lag_base

    def _status(self, kind: str, detail: str) -> None:
        if kind == "connected":
            self.info.status = "live"
            self._lag_base = None
            if detail == "reconnected":
                self.info.reconnects += 1
            self._emit("stream.connected", detail)
        elif kind == "reconnecting":
            self.info.status = "reconnecting"
            self._emit("stream.reconnecting", detail)
        elif kind == "resolution":
            self._emit("stream.resolution", detail)
        self._persist(force=True)

    # -- decisions ----------------------------------------------------------------------------

    def _evaluate(self, now: float) -> bool:
        window = self._window
        seen = len(window.times) >= self.settings.match.min_seed_frames
        if not seen and not len(self._sound):
            return False
        # The picture's segments before calibration, the sound's, fused and decided as a file's are.
        video = self._windows.with_windows(self._search.segments(raw=True)) if seen else []
        audio = self._sound.segments() if len(self._sound) else []
        segments = self.searcher.decide(video, audio)
        log.debug("stream %s: window %.2f-%.2f s (%d frames, %d landmarks): %d segment(s)", self.info.id,
                  window.times[0] if seen else float("nan"), window.times[-1] if seen else float("nan"),
                  len(window.times), len(self._sound), len(segments))
        if self._case.decide(segments, now):
            self._stop.set()
            return True
        return False

    def _last_words(self, now: float) -> None:
        """The stream ended: the sound's extractor holds its last 1.6 s of landmarks back (it
        waits for what follows); they join the window for one last decision."""
        landmarks = self._landmarks.flush()
        if not len(landmarks):
            return
        self._sound.add(landmarks)
        try:
            self._evaluate(now)
        except Exception:  # noqa: BLE001 — the stream is ending: its end must still be recorded
            log.exception("stream %s: cannot decide on its last seconds", self.info.id)

    def _opened(self, cut: bool) -> None:
        # Before the incident's event goes out: the event carries the stream as it now is.
        self.info.incidents += 1
        if cut:
            self.info.status = "cut"

    def _close_idle(self, now: float) -> None:
        self._case.close_idle(now)

    # -- bookkeeping --------------------------------------------------------------------------

    def _finish(self) -> None:
        now = time.time()
        if self.info.status not in FINAL_STATES:
            self.info.status = "stopped" if self._stop.is_set() else "ended"
        if self.info.status == "ended":
            self._last_words(now)
        self._case.close_all(now, f"stream {self.info.status}")
        self.info.ended = now
        try:
            self._persist(force=True)
        except GuardError:
            log.exception("stream %s: cannot record its end", self.info.id)
        self._emit("stream.ended", self.info.status + (f": {self.info.error}" if self.info.error else ""))
        self._done.set()

    def _persist(self, force: bool = False, insert: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_persist < PERSIST_INTERVAL:
            return
        self._last_persist = now
        self.info.updated = now
        if insert:
            self.repository.start(_stream_record(self.info))
        else:
            self.repository.update(_stream_record(self.info))

    def _emit(self, event_type: str, detail: str = "", incident: Incident | None = None,
              webhook_event_id: str | None = None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(MonitorEvent(event_type, self.info.id, time.time(), detail, incident, webhook_event_id))
        except Exception:  # noqa: BLE001 — a listener's bug must not stop monitoring
            log.exception("stream %s: event listener failed", self.info.id)


#: A monitor process not heard from for this long (s) has ended (see :meth:`MonitorManager._share`).
PROCESS_SILENCE = 5.0


class MonitorManager:
    """Many streams monitored at once, one thread each; the registry the API and CLI use.

    :meth:`start` checks the URL (:mod:`guard.urlpolicy`) before anything runs, so a refused
    URL raises :class:`~guard.errors.URLPolicyError` in the caller. Finished streams stay
    queryable (:meth:`get`, :meth:`list`) from the catalog.

    Without the ``monitor`` role (``run=False``) :meth:`start` records the stream, ``starting``,
    with a request a process that has the role claims (:meth:`start_polling`); :meth:`stop`
    asks that process through the catalog.
    """

    def __init__(self, ports: LivePorts, max_streams: int = 256, *, run: bool = True):
        self.ports = ports
        self.settings = ports.settings
        self.repository = StreamRepository(ports.database)
        self.max_streams = max_streams
        #: Whether streams run in this process (the ``monitor`` role).
        self.runs_streams = run
        self._monitors: dict[str, StreamMonitor] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._listeners: list[EventCallback] = []
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        #: This manager's name among the monitor processes sharing the store (see :meth:`_share`).
        self._token = uuid.uuid4().hex
        self._interval = 1.0  # how often it looks for recorded streams
        self._reported = (-math.inf, -1)  # when it last reported its load, and the load

    def subscribe(self, listener: EventCallback) -> None:
        """Hear every stream's :class:`MonitorEvent` (called from the stream threads)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: EventCallback) -> None:
        """Stop hearing events."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def start(
        self,
        url: str,
        *,
        account: str,
        stream_id: str | None = None,
        platform: str = "default",
        realtime: bool = False,
        on_event: EventCallback | None = None,
        av_options: dict | None = None,
    ) -> StreamInfo:
        """Check ``url`` and start monitoring it in a new thread; return its first snapshot.

        ``realtime=True`` with a local path plays the file at its own pace (rehearsal); URLs
        must pass :func:`guard.urlpolicy.check_url` under the store's settings.
        """
        location, options = live_location(url, self.settings, realtime, av_options)
        stream_id = stream_id or "s-" + uuid.uuid4().hex[:12]
        if not _STREAM_ID.match(stream_id):
            raise InputError(f"stream id {stream_id!r}: use letters, digits and . _ : - (at most 128)")
        if not account or not account.strip():
            raise InputError("a monitored stream needs the account that streams it")
        if not self.runs_streams:
            return self._request(url, stream_id=stream_id, account=account.strip(), platform=platform,
                                 realtime=realtime, av_options=av_options)
        return self._launch(location, options, stream_id=stream_id, account=account.strip(), platform=platform,
                            on_event=on_event)

    def _launch(self, location: str, options: MonitorOptions, *, stream_id: str, account: str, platform: str,
                on_event: EventCallback | None) -> StreamInfo:
        """Monitor a checked location in a new thread of this process."""

        def fan_out(event: MonitorEvent) -> None:
            for listener in [on_event, *self._listeners]:
                if listener is not None:
                    try:
                        listener(event)
                    except Exception:  # noqa: BLE001 — listeners are outside code
                        log.exception("monitor event listener failed")

        with self._lock:
            self._reap()
            if stream_id in self._monitors:
                raise ConflictError(f"stream {stream_id} is already being monitored")
            if len(self._monitors) >= self.max_streams:
                raise ConflictError(f"already monitoring {self.max_streams} streams (the limit)")
            monitor = StreamMonitor(self.ports, location, stream_id=stream_id, account=account.strip(),
                                    platform=platform, options=options, on_event=fan_out)
            thread = threading.Thread(target=monitor.run, name=f"guard-stream-{stream_id}", daemon=True)
            self._monitors[stream_id] = monitor
            self._threads[stream_id] = thread
        self.ports.act.start()
        thread.start()
        return monitor.snapshot()

    def stop(self, stream_id: str, timeout: float = 15.0) -> StreamInfo:
        """Stop a stream and wait (up to ``timeout``) for its thread to end. A stream of another
        process is asked to stop through the catalog (waited for without the ``monitor`` role)."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is None:
            if self.repository.request_stop(stream_id, time.time(), FINAL_STATES) == "requested" \
                    and not self.runs_streams:
                return self._await_final(stream_id, timeout)
            return self.get(stream_id)
        monitor.stop()
        monitor.wait(timeout)
        return monitor.snapshot()

    def wait(self, stream_id: str, timeout: float | None = None) -> StreamInfo:
        """Wait until a stream finishes (or ``timeout``); return its snapshot."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is None:
            return self.get(stream_id) if self.runs_streams else self._await_final(stream_id, timeout)
        monitor.wait(timeout)
        return monitor.snapshot()

    def recent_frame(self, stream_id: str) -> tuple[float, np.ndarray] | None:
        """The latest thumbnail of a stream monitored by this process (None for a stream that
        has ended, has no frame yet, or runs in another process)."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        return None if monitor is None or monitor.finished else monitor.recent_frame()

    def get(self, stream_id: str) -> StreamInfo:
        """A stream's current or last known state; :class:`NotFoundError` if never seen."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is not None:
            return monitor.snapshot()
        return _stream_info(self.repository.get(stream_id))

    def list(self, *, platform: str | None = None, status: str | None = None, active: bool | None = None,
             limit: int = 100) -> list[StreamInfo]:
        """Streams, newest first: live snapshots for running ones, catalog rows for the rest."""
        with self._lock:
            running = {sid: m.snapshot() for sid, m in self._monitors.items() if not m.finished}
        records = self.repository.list(platform=platform, limit=int(limit) + len(running))
        infos = [running.get(record.id) or _stream_info(record) for record in records]
        infos = [i for i in infos if (status is None or i.status == status) and (active is None or i.active == active)]
        return infos[: int(limit)]

    def running_here(self) -> "builtins.list[str]":
        """Ids of the streams this process monitors now (other monitor processes run the rest)."""
        with self._lock:
            return [sid for sid, m in self._monitors.items() if not m.finished]

    @property
    def active_count(self) -> int:
        """How many streams are being monitored now."""
        with self._lock:
            return sum(1 for m in self._monitors.values() if not m.finished)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every stream and wait for their threads (bounded by ``timeout`` overall)."""
        self._stop_polling.set()
        with self._lock:
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.join()
        if self.runs_streams:
            try:
                self.repository.forget_process(self._token)
            except Exception:  # noqa: BLE001 — a busy or broken catalog: its report just ages out
                log.warning("cannot withdraw this monitor process's load", exc_info=True)
        with self._lock:
            monitors = list(self._monitors.values())
        for monitor in monitors:
            monitor.stop()
        deadline = time.monotonic() + timeout
        for monitor in monitors:
            monitor.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._reap()

    def _reap(self) -> None:
        for stream_id in [sid for sid, m in self._monitors.items() if m.finished]:
            self._threads.pop(stream_id).join(timeout=1.0)
            del self._monitors[stream_id]

    # -- roles: streams recorded by one process, run by another ---------------------------------

    def _request(self, url: str, *, stream_id: str, account: str, platform: str, realtime: bool,
                 av_options: dict | None) -> StreamInfo:
        """Record a checked stream for a process with the ``monitor`` role to claim."""
        now = time.time()
        shown = redact(url) if "://" in url else os.path.basename(url.removeprefix("file:"))
        record = StreamRecord(id=stream_id, url=shown, account=account, platform=platform, status="starting",
                              started=now, updated=now)
        request = {"url": url, "realtime": realtime, "av_options": av_options}
        if not self.repository.request_start(record, request, FINAL_STATES):
            raise ConflictError(f"stream {stream_id} is already being monitored")
        log.info("stream %s recorded for a monitor process", stream_id)
        return _stream_info(record)

    def start_polling(self, interval: float = 1.0) -> None:
        """The ``monitor`` role: every ``interval`` seconds, :meth:`take_requests` until
        :meth:`shutdown`. Does nothing without the role."""
        if not self.runs_streams:
            return
        with self._lock:
            if self._poller is not None:
                return
            self._stop_polling.clear()
            self._interval = interval
            self._poller = threading.Thread(target=self._poll, args=(interval,), name="guard-stream-requests",
                                            daemon=True)
            self._poller.start()

    def _poll(self, interval: float) -> None:
        while True:
            try:
                self.take_requests()
            except Exception:  # noqa: BLE001 — a busy catalog: look again next time
                log.exception("cannot take stream requests")
            if self._stop_polling.wait(interval):
                return

    def take_requests(self) -> int:
        """Stop this process's streams that were asked to stop, and start recorded streams: this
        process's fair share of them (see :meth:`_share`), as many as :attr:`max_streams` leaves
        room for. Returns how many started."""
        for stream_id in self.repository.stop_requests():
            with self._lock:
                monitor = self._monitors.get(stream_id)
            if monitor is not None:
                self.repository.clear_stop(stream_id)
                monitor.stop()
        started = 0
        waiting = self.repository.start_requests(self.max_streams - self.active_count)
        for stream_id in waiting[: self._share(len(waiting))]:
            claimed = self.repository.claim_start(stream_id)
            if claimed is None:  # another monitor process took it
                continue
            record, request = claimed
            url = request["url"]
            try:
                location, options = live_location(url, self.settings, bool(request.get("realtime")),
                                                  request.get("av_options"))
                self._launch(location, options, stream_id=record.id, account=record.account,
                             platform=record.platform, on_event=None)
            except Exception as exc:  # noqa: BLE001 — the claimed stream must not stay "starting"
                now = time.time()
                error = (str(exc) or type(exc).__name__).replace(url, redact(url))
                self.repository.update(StreamRecord(**{**asdict(record), "status": "failed", "error": error,
                                                       "updated": now, "ended": now}))
                log.warning("stream %s: cannot start (%s)", record.id, error)
                continue
            started += 1
        if started:
            self._report(self.active_count, time.time())
        return started

    def _report(self, active: int, now: float) -> None:
        self.repository.report_load(self._token, active, now)
        self._reported = (now, active)

    def _share(self, waiting: int) -> int:
        """How many of ``waiting`` recorded streams this process takes now. Monitor processes
        sharing the store report their loads (streams running) when they change and every few
        seconds (a process silent for :data:`PROCESS_SILENCE` has ended); each takes up to
        an even share of all streams, running and waiting (one at least when it runs the fewest):
        Python runs one process's streams on one core at a time (the GIL), so two processes on
        two cores monitor about twice as many as one."""
        mine, now = self.active_count, time.time()
        reported_at, reported = self._reported
        if mine != reported or now - reported_at >= PROCESS_SILENCE / 2:  # not a write on every look
            self._report(mine, now)
        if not waiting:
            return 0
        loads = self.repository.loads(now - max(PROCESS_SILENCE, 3 * self._interval))
        loads[self._token] = mine
        fair = math.ceil((waiting + sum(loads.values())) / len(loads))
        return max(fair - mine, 1 if mine <= min(loads.values()) else 0)

    def _await_final(self, stream_id: str, timeout: float | None) -> StreamInfo:
        """Poll the catalog until another process's stream is over or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(stream_id)
            if not info.active or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))


def live_location(url: str, settings: Settings, realtime: bool = False,
                  av_options: dict | None = None) -> tuple[str, MonitorOptions]:
    """Where to pull a live source from and how, for monitored streams and live references
    alike; refuses what the URL policy (:mod:`guard.urlpolicy`) forbids under ``settings``."""
    if "://" not in url:
        path = Path(url)
        if not path.is_file():
            if _PROTOCOL_PREFIX.match(url):  # concat:, pipe:, subfile:, data: ...
                check_url(url)  # raises URLPolicyError naming the scheme
            raise InputError(f"{url}: no such file")
        if not realtime:
            raise InputError(f"{url}: local files are monitored only in real-time rehearsal mode (realtime=True)")
        # "file:" + absolute path: FFmpeg never reads a protocol prefix out of a file name.
        return f"file:{path.resolve()}", MonitorOptions(realtime=True, whitelist="file", av_options=av_options)
    allow_private = settings.allow_private_addresses
    try:
        checked = check_url(url, allow_private_addresses=allow_private, timeout=settings.live.open_timeout)
    except StreamError as exc:
        # An HLS playlist that cannot be fetched yet (404 while the stream starts): the scheme and
        # host passed, the monitor waits for the playlist and checks it before reading anything.
        checked = check_url(url, allow_private_addresses=allow_private, fetch_playlists=False)
        log.info("%s: playlist not available yet (%s); the monitor will wait for it", redact(url), exc)
    return url, MonitorOptions(realtime=realtime, whitelist=checked.whitelist, hls=checked.is_hls,
                               av_options=av_options)


def live_decode_options(settings: Settings, options: MonitorOptions, audio_rate: int,
                        **more: Any) -> decode.LiveOptions:
    """How to pull a checked live location (see :func:`live_location`) under ``settings.live``."""
    live = settings.live
    return decode.LiveOptions(
        sample_fps=settings.sample_fps, fast=settings.fast_decode,
        threads=live.decoder_threads, open_timeout=live.open_timeout, stall_timeout=live.stall_timeout,
        reconnect=options.reconnect and not options.realtime,
        reconnect_initial=live.reconnect_initial, reconnect_max=live.reconnect_max,
        give_up_after=live.give_up_after, realtime=options.realtime,
        thumbnail_width=live.thumbnail_width, protocol_whitelist=options.whitelist, hls=options.hls,
        audio=live.audio, audio_rate=audio_rate, **more,
    )


def _stream_record(info: StreamInfo) -> StreamRecord:
    """The part of a stream's state the catalog keeps."""
    return StreamRecord(id=info.id, url=info.url, account=info.account, platform=info.platform, status=info.status,
                        started=info.started, updated=info.updated, ended=info.ended, error=info.error,
                        frames=info.frames, incidents=info.incidents)


def _stream_info(record: StreamRecord) -> StreamInfo:
    """A finished stream's snapshot from its catalog record."""
    return StreamInfo(**asdict(record))

"""Live stream monitoring: decode → fingerprint → sliding-window match → decisions.

:class:`StreamMonitor` watches one stream in its own thread. Sampled frames arrive from
:func:`guard.decode.live_batches` (reconnects, stalls and timestamp resets are handled there),
are hashed as they come (bars found over the last few seconds, not per batch), and join a
sliding window of ``settings.live.window_seconds``. Every ``decision_interval`` the window goes
through :meth:`guard.service.Guard.match`; a segment the matcher reports is by construction
at least the reference's ``min_seconds`` long and consistent in offset, so it becomes an
incident at once (unless the stream's account is on the reference's allowlist):

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
window (codes, times and small thumbnails of ``window_seconds``).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from guard import decode
from guard.actions import allowlisted
from guard.errors import ConflictError, GuardError, InputError, NotFoundError, StreamError
from guard.incidents import Incident, iso, segment_dict
from guard.models import Reference, Segment
from guard.urlpolicy import PlaylistWatcher, check_url, redact

if TYPE_CHECKING:
    from guard.service import Guard

log = logging.getLogger(__name__)

#: Stream states: ``starting`` → ``live`` ⇄ ``reconnecting`` → one of the final states.
FINAL_STATES = ("ended", "cut", "stopped", "failed")
STATES = ("starting", "live", "reconnecting", *FINAL_STATES)
#: Monitor event types (the webhook types plus stream life-cycle notices, which are not sent).
EVENT_TYPES = ("stream.started", "stream.connected", "stream.reconnecting", "stream.resolution",
               "stream.allowlisted", "incident.flagged", "incident.updated", "stream.cut", "stream.ended")
#: Offsets closer than this (s) are the same alignment of a reference when an incident grows.
SAME_OFFSET = 1.5
#: Earlier frames hashed along with each live batch (preprocessing smooths over neighbours).
CONTEXT_FRAMES = 4
#: How often a stream's row in the catalog is refreshed (s).
PERSIST_INTERVAL = 5.0
#: How long the reference cache trusts a reference's policy and allowlist (s).
REFERENCE_TTL = 2.0
#: How often a monitored HLS playlist is fetched again and re-checked by the URL policy (s).
PLAYLIST_CHECK_INTERVAL = 2.0

_PROTOCOL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*[:,]")
_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass
class StreamInfo:
    """A snapshot of a monitored stream (live or finished).

    ``lag`` estimates how far behind real time processing runs (seconds, 0 when keeping up);
    ``frames`` counts sampled frames; ``url`` is redacted (no credentials or query string).
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
        out = {"type": self.type, "stream_id": self.stream_id, "time": iso(self.time), "detail": self.detail}
        if self.incident is not None:
            out["incident"] = self.incident.to_dict()
            out["reference_id"] = self.incident.reference_id
            out["reference_title"] = self.incident.reference_title
        if self.webhook_event_id:
            out["event_id"] = self.webhook_event_id
        return out


EventCallback = Callable[[MonitorEvent], None]


class LiveHasher:
    """Hashes live frame batches exactly as files are hashed, a few frames at a time.

    Preprocessing looks at neighbouring frames (bars are smoothed over a few of them), so each
    batch is hashed together with the last :data:`CONTEXT_FRAMES` frames before it and only the
    new frames' codes are kept: a live stream hashes like the same file would.
    """

    def __init__(self, fingerprinter):
        self.fingerprinter = fingerprinter
        self.context_times = np.zeros(0)
        self.context_grey: np.ndarray | None = None

    def hash(self, times: np.ndarray, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(times, codes)`` of the informative frames among ``times``/``grey`` ``(n, h, w)``."""
        if self.context_grey is not None and len(self.context_grey):
            all_times = np.concatenate([self.context_times, times])
            all_grey = np.concatenate([self.context_grey, grey])
        else:
            all_times, all_grey = times, grey
        kept_times, codes = self.fingerprinter.hash_batch(decode.FrameBatch(all_times, all_grey))
        self.context_times = all_times[-CONTEXT_FRAMES:]
        self.context_grey = all_grey[-CONTEXT_FRAMES:]
        new = kept_times >= times[0] - 1e-9 if len(times) else np.zeros(len(kept_times), bool)
        return kept_times[new], codes[new]


class SlidingWindow:
    """The last ``seconds`` of a stream: hashed frames with arrival times, and thumbnails."""

    def __init__(self, seconds: float, code_bytes: int):
        self.seconds = seconds
        self.times = np.zeros(0)
        self.codes = np.zeros((0, code_bytes), np.uint8)
        self.arrivals = np.zeros(0)
        self.thumbs: collections.deque[tuple[float, np.ndarray]] = collections.deque()

    def add(self, times: np.ndarray, codes: np.ndarray, arrivals: np.ndarray) -> None:
        """Append hashed frames and drop those older than the window."""
        self.times = np.concatenate([self.times, times])
        self.codes = np.concatenate([self.codes, codes])
        self.arrivals = np.concatenate([self.arrivals, arrivals])
        if len(self.times):
            keep = self.times >= self.times[-1] - self.seconds
            if not keep.all():
                self.times, self.codes, self.arrivals = self.times[keep], self.codes[keep], self.arrivals[keep]

    def add_thumbs(self, times: np.ndarray, thumbs: list[np.ndarray]) -> None:
        """Keep thumbnails for evidence, as long as the window."""
        self.thumbs.extend(zip(times.tolist(), thumbs))
        while self.thumbs and self.thumbs[0][0] < self.thumbs[-1][0] - self.seconds:
            self.thumbs.popleft()

    def arrival_at(self, t: float) -> float:
        """Wall-clock arrival of the frame at stream time ``t`` (nearest kept frame)."""
        if not len(self.times):
            return time.time()
        i = int(np.clip(np.searchsorted(self.times, t - 1e-6), 0, len(self.times) - 1))
        return float(self.arrivals[i])

    def thumb_at(self, t: float) -> tuple[float, np.ndarray] | None:
        """The thumbnail nearest stream time ``t``."""
        if not self.thumbs:
            return None
        return min(self.thumbs, key=lambda item: abs(item[0] - t))


@dataclass
class _OpenIncident:
    incident_id: int
    reference: Reference
    segments: list[dict]
    last_seen: float
    last_event: float
    last_write: float
    reported_end: float
    dirty: bool = False


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
        guard: "Guard",
        url: str,
        *,
        stream_id: str,
        account: str,
        platform: str = "default",
        options: MonitorOptions | None = None,
        on_event: EventCallback | None = None,
    ):
        self.guard = guard
        self.url = url
        self.options = options or MonitorOptions()
        self.live = guard.settings.live
        self.on_event = on_event
        now = time.time()
        self.info = StreamInfo(
            id=stream_id, url=redact(url) if "://" in url else os.path.basename(url.removeprefix("file:")),
            account=account,
            platform=platform, status="starting", started=now, updated=now, realtime=self.options.realtime,
        )
        self._stop = threading.Event()
        self._done = threading.Event()
        signal = guard.fingerprinter.signal
        self._hasher = LiveHasher(guard.fingerprinter)
        self._window = SlidingWindow(self._window_seconds(), signal.code_bytes)
        self._open: dict[int, _OpenIncident] = {}
        self._refs: dict[int, tuple[float, Reference | None]] = {}
        self._allowlisted: set[int] = set()
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
            self.info.status, self.info.error = ("ended" if self.info.frames else "failed"), str(exc)
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
        watcher = PlaylistWatcher(self.url, allow_private_addresses=self.guard.settings.allow_private_addresses,
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
        live = self.live
        target = watcher.state.target_duration if watcher is not None and watcher.state is not None else 0.0
        return decode.LiveOptions(
            sample_fps=self.guard.settings.sample_fps, fast=self.guard.settings.fast_decode,
            threads=live.decoder_threads, open_timeout=live.open_timeout, stall_timeout=live.stall_timeout,
            reconnect=self.options.reconnect and not self.options.realtime,
            reconnect_initial=live.reconnect_initial, reconnect_max=live.reconnect_max,
            give_up_after=live.give_up_after, realtime=self.options.realtime,
            thumbnail_width=live.thumbnail_width, protocol_whitelist=self.options.whitelist, hls=self.options.hls,
            hls_target_duration=target, hls_ended=self._playlist_ended(watcher),
        )

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
        longest = max((r.min_seconds for r in self.guard.index.refs.values()), default=0.0)
        return max(self.live.window_seconds, longest + 2 * self.guard.settings.match.max_gap + 2.0)

    def _on_batch(self, batch: decode.LiveBatch) -> bool:
        """Take one batch; True when monitoring must stop (the stream was cut)."""
        self.info.frames += len(batch.times)
        self.info.width, self.info.height = batch.width, batch.height
        self._track_lag(batch)
        times, codes = self._hasher.hash(batch.times, batch.grey)
        arrivals = batch.arrivals[np.searchsorted(batch.times, times)] if len(times) else times
        self._window.add(times, codes, arrivals)
        self._window.add_thumbs(batch.times, batch.thumbs)
        self._new_frames = self._new_frames or bool(len(times))
        now = time.time()
        if self._new_frames and now - self._last_eval >= self.live.decision_interval:
            self._last_eval = now
            self._new_frames = False
            if self._evaluate(now):
                return True
        self._close_idle(now)
        self._persist()
        return False

    def _track_lag(self, batch: decode.LiveBatch) -> None:
        # Wall clock minus stream clock is constant while processing keeps up; its growth is lag.
        skew = float(batch.arrivals[-1] - batch.times[-1])
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
        if len(window.times) < self.guard.settings.match.min_seed_frames:
            return False
        segments = self.guard.match(window.times, window.codes)
        log.debug("stream %s: window %.2f-%.2f s (%d frames): %d segment(s)", self.info.id,
                  window.times[0], window.times[-1], len(window.times), len(segments))
        by_ref: dict[int, list[Segment]] = collections.defaultdict(list)
        for segment in segments:
            by_ref[segment.reference_id].append(segment)
        for ref_id, found in sorted(by_ref.items()):
            reference = self._reference(ref_id)
            if reference is None:
                continue
            if allowlisted(reference, self.info.account):
                if ref_id not in self._allowlisted:
                    self._allowlisted.add(ref_id)
                    self._emit("stream.allowlisted", f"reference {ref_id} {reference.title!r}: account is licensed")
                continue
            current = self._open.get(ref_id)
            if current is None:
                if self._open_incident(reference, found, now):
                    return True
            else:
                self._grow(current, found, now)
        return False

    def _reference(self, ref_id: int) -> Reference | None:
        cached = self._refs.get(ref_id)
        if cached is not None and time.monotonic() - cached[0] < REFERENCE_TTL:
            return cached[1]
        try:
            reference = self.guard.reference(ref_id)
        except NotFoundError:
            reference = None
        self._refs[ref_id] = (time.monotonic(), reference)
        return reference

    def _open_incident(self, reference: Reference, segments: list[Segment], now: float) -> bool:
        first = min(segments, key=lambda s: s.query_start)
        first_seen = self._window.arrival_at(first.query_start)
        incident = self.guard.incidents.create(
            stream_id=self.info.id, account=self.info.account, platform=self.info.platform,
            reference=reference, segments=segments, first_seen=first_seen, decided=now,
        )
        self.info.incidents += 1
        cut = reference.policy == "cut"
        event_type = "stream.cut" if cut else "incident.flagged"
        if cut:
            self.info.status = "cut"
        event = self.guard.actions.publish(
            event_type, owner=reference.owner, platform=self.info.platform,
            incident=incident.to_dict(), stream=self.snapshot().to_dict(),
        )
        log.info("stream %s: %s reference %d %r (incident %d, %.1f s after first copied frame)",
                 self.info.id, event_type, reference.id, reference.title, incident.id, now - first_seen)
        self._emit(event_type, f"reference {reference.id} {reference.title!r}", incident, event.id)
        self._collect_evidence(incident, reference, first)
        if cut:
            self._stop.set()
            return True
        self._open[reference.id] = _OpenIncident(
            incident.id, reference, [segment_dict(s) for s in segments], now, now, now,
            reported_end=incident.query_end,
        )
        return False

    def _grow(self, current: _OpenIncident, segments: list[Segment], now: float) -> None:
        current.last_seen = now
        for segment in segments:
            part = segment_dict(segment)
            same = next((s for s in current.segments if abs(s["offset"] - part["offset"]) <= SAME_OFFSET), None)
            if same is None:
                current.segments.append(part)
                current.dirty = True
                continue
            if part["query_end"] > same["query_end"] + 1e-6 or part["score"] > same["score"]:
                current.dirty = True
            earliest = min(same["query_start"], part["query_start"])
            ref_earliest = min(same["reference_start"], part["reference_start"])
            same.update({k: v for k, v in part.items() if k not in ("query_start", "reference_start")})
            same["query_start"], same["reference_start"] = earliest, ref_earliest
            same["query_end"] = max(same["query_end"], part["query_end"])
        if current.dirty and now - current.last_write >= 2.0:
            self._write(current, now)
        end = max(s["query_end"] for s in current.segments)
        if end - current.reported_end >= self.live.update_interval and now - current.last_event >= self.live.update_interval:
            self._updated(current, now, "copy continues")

    def _write(self, current: _OpenIncident, now: float) -> Incident:
        current.dirty = False
        current.last_write = now
        return self.guard.incidents.extend(current.incident_id, current.segments, when=now)

    def _updated(self, current: _OpenIncident, now: float, detail: str, closing: bool = False) -> None:
        incident = self._write(current, now)
        if closing:
            incident = self.guard.incidents.close(current.incident_id, when=now)
        current.last_event = now
        current.reported_end = incident.query_end
        event = self.guard.actions.publish(
            "incident.updated", owner=incident.owner, platform=incident.platform,
            incident=incident.to_dict(), stream=self.snapshot().to_dict(),
        )
        self._emit("incident.updated", detail, incident, event.id)

    def _close_idle(self, now: float) -> None:
        for ref_id, current in list(self._open.items()):
            if now - current.last_seen >= self.live.incident_idle_seconds:
                del self._open[ref_id]
                self._updated(current, now, "copy no longer seen", closing=True)

    def _collect_evidence(self, incident: Incident, reference: Reference, segment: Segment) -> None:
        """Thumbnails of the first copied stream frame and of the reference frame it copies."""
        try:
            shot = self._window.thumb_at(segment.query_start)
            if shot is not None:
                self.guard.incidents.add_evidence(incident.id, "query", shot[0], shot[1])
            ref_time = segment.reference_start + (shot[0] - segment.query_start if shot else 0.0) * segment.rate
            image = decode.thumbnail_at(reference.source, ref_time, self.live.thumbnail_width)
            if image is not None:
                self.guard.incidents.add_evidence(incident.id, "reference", ref_time, image)
        except GuardError as exc:
            log.warning("incident %d: no evidence (%s)", incident.id, exc)

    # -- bookkeeping --------------------------------------------------------------------------

    def _finish(self) -> None:
        now = time.time()
        if self.info.status not in FINAL_STATES:
            self.info.status = "stopped" if self._stop.is_set() else "ended"
        for current in list(self._open.values()):
            try:
                self._updated(current, now, f"stream {self.info.status}", closing=True)
            except GuardError:
                log.exception("stream %s: cannot close incident %d", self.info.id, current.incident_id)
        self._open.clear()
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
        i = self.info
        with self.guard.catalog.transaction() as db:
            if insert:
                db.execute("INSERT OR REPLACE INTO streams (id, url, account, platform, status, started, updated)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (i.id, i.url, i.account, i.platform, i.status, i.started, now))
            else:
                db.execute("UPDATE streams SET status = ?, updated = ?, ended = ?, error = ?, frames = ?,"
                           " incidents = ? WHERE id = ?",
                           (i.status, now, i.ended, i.error, i.frames, i.incidents, i.id))

    def _emit(self, event_type: str, detail: str = "", incident: Incident | None = None,
              webhook_event_id: str | None = None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(MonitorEvent(event_type, self.info.id, time.time(), detail, incident, webhook_event_id))
        except Exception:  # noqa: BLE001 — a listener's bug must not stop monitoring
            log.exception("stream %s: event listener failed", self.info.id)


class MonitorManager:
    """Many streams monitored at once, one thread each; the registry the API and CLI use.

    :meth:`start` checks the URL (:mod:`guard.urlpolicy`) before anything runs, so a refused
    URL raises :class:`~guard.errors.URLPolicyError` in the caller. Finished streams stay
    queryable (:meth:`get`, :meth:`list`) from the catalog.
    """

    def __init__(self, guard: "Guard", max_streams: int = 256):
        self.guard = guard
        self.max_streams = max_streams
        self._monitors: dict[str, StreamMonitor] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._listeners: list[EventCallback] = []

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
        location, options = self._options(url, realtime, av_options)
        stream_id = stream_id or "s-" + uuid.uuid4().hex[:12]
        if not _STREAM_ID.match(stream_id):
            raise InputError(f"stream id {stream_id!r}: use letters, digits and . _ : - (at most 128)")
        if not account or not account.strip():
            raise InputError("a monitored stream needs the account that streams it")

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
            monitor = StreamMonitor(self.guard, location, stream_id=stream_id, account=account.strip(),
                                    platform=platform, options=options, on_event=fan_out)
            thread = threading.Thread(target=monitor.run, name=f"guard-stream-{stream_id}", daemon=True)
            self._monitors[stream_id] = monitor
            self._threads[stream_id] = thread
        self.guard.actions.start()
        thread.start()
        return monitor.snapshot()

    def _options(self, url: str, realtime: bool, av_options: dict | None) -> tuple[str, MonitorOptions]:
        """The location to open and how; refuses what the URL policy forbids."""
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
        allow_private = self.guard.settings.allow_private_addresses
        try:
            checked = check_url(url, allow_private_addresses=allow_private, timeout=self.guard.settings.live.open_timeout)
        except StreamError as exc:
            # An HLS playlist that cannot be fetched yet (404 while the stream starts): the scheme and
            # host passed, the monitor waits for the playlist and checks it before reading anything.
            checked = check_url(url, allow_private_addresses=allow_private, fetch_playlists=False)
            log.info("%s: playlist not available yet (%s); the monitor will wait for it", redact(url), exc)
        return url, MonitorOptions(realtime=realtime, whitelist=checked.whitelist, hls=checked.is_hls,
                                   av_options=av_options)

    def stop(self, stream_id: str, timeout: float = 15.0) -> StreamInfo:
        """Stop a stream and wait (up to ``timeout``) for its thread to end."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is None:
            return self.get(stream_id)
        monitor.stop()
        monitor.wait(timeout)
        return monitor.snapshot()

    def wait(self, stream_id: str, timeout: float | None = None) -> StreamInfo:
        """Wait until a stream finishes (or ``timeout``); return its snapshot."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is None:
            return self.get(stream_id)
        monitor.wait(timeout)
        return monitor.snapshot()

    def get(self, stream_id: str) -> StreamInfo:
        """A stream's current or last known state; :class:`NotFoundError` if never seen."""
        with self._lock:
            monitor = self._monitors.get(stream_id)
        if monitor is not None:
            return monitor.snapshot()
        rows = self.guard.catalog.query(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE id = ?", (stream_id,))
        if not rows:
            raise NotFoundError(f"stream {stream_id} not found")
        return _stream_info(rows[0])

    def list(self, *, platform: str | None = None, status: str | None = None, active: bool | None = None,
             limit: int = 100) -> list[StreamInfo]:
        """Streams, newest first: live snapshots for running ones, catalog rows for the rest."""
        with self._lock:
            running = {sid: m.snapshot() for sid, m in self._monitors.items() if not m.finished}
        clauses, args = [], []
        if platform is not None:
            clauses.append("platform = ?")
            args.append(platform)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self.guard.catalog.query(
            f"SELECT {_STREAM_COLUMNS} FROM streams{where} ORDER BY started DESC LIMIT ?",
            (*args, int(limit) + len(running)))
        infos = [running.get(row[0]) or _stream_info(row) for row in rows]
        infos = [i for i in infos if (status is None or i.status == status) and (active is None or i.active == active)]
        return infos[: int(limit)]

    @property
    def active_count(self) -> int:
        """How many streams are being monitored now."""
        with self._lock:
            return sum(1 for m in self._monitors.values() if not m.finished)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop every stream and wait for their threads (bounded by ``timeout`` overall)."""
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


_STREAM_COLUMNS = "id, url, account, platform, status, started, updated, ended, error, frames, incidents"


def _stream_info(row: tuple) -> StreamInfo:
    sid, url, account, platform, status, started, updated, ended, error, frames, incidents = row
    return StreamInfo(id=sid, url=url, account=account, platform=platform, status=status, started=started,
                      updated=updated, ended=ended, error=error, frames=frames, incidents=incidents)

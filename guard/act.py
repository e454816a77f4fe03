"""Act: the one place incidents are opened, grown and closed, for live streams, scans and reviews.

Whatever found a copy (a live window's segments, a scanned file's, a reviewer's decision),
what follows goes through :class:`Act`:

- **policy**: an account on the reference's allowlist triggers nothing; otherwise policy
  ``flag`` records an incident and sends ``incident.flagged``, ``cut`` records it and sends
  ``stream.cut`` (the platform's takedown) — a live stream is then no longer monitored;
- **ownership conflicts**: when references of different owners explain the same copy (the
  matcher keeps both, see :func:`guard.match.distinct_segments`), one incident names them all
  (its reference is the closest one, the others are its ``claims``), every owner is told and
  sees it, and nothing is cut automatically: it is flagged until an owner confirms it, which
  applies that owner's policy;
- **incidents**: a live stream's incident grows while the copy goes on (``incident.updated``
  at most every ``update_interval``) and closes when the copy has not been seen for
  ``incident_idle_seconds`` or the stream ends (:class:`LiveCase`); a scan's incidents,
  one per matched reference, are closed at once (:meth:`Act.record_scan`);
- **evidence**: frames of the copy along it (one every :data:`EVIDENCE_STEP` seconds, at most
  :data:`EVIDENCE_PAIRS`; a live incident gains them as it grows), lent by the caller (the
  stream's thumbnails, frames of the scanned file), each beside the reference's stored keyframe
  (:mod:`guard.keyframes`) nearest the moment it copies — no reference file is decoded at
  decision time;
- **reviews**: ``confirm`` or ``dismiss``, optionally allowlisting the account; a confirmed
  incident on a ``cut`` reference stops its stream (the ``stop_stream`` port) and sends the
  takedown, once (:meth:`Act.review`);
- **events** go to the outbox, which delivers them (:class:`guard.actions.ActionCenter`); its
  first acknowledged delivery of a decision is recorded on the incident.

Act knows nothing of decoding, matching, threads or the service: its dependencies are ports
(:class:`Outbox`, :class:`References`, ``stop_stream``) and the incident store, wired by the
composition root (:class:`guard.service.Guard`).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from guard.actions import allowlisted
from guard.config import LiveSettings
from guard.errors import GuardError, NotFoundError
from guard.incidents import Incident, IncidentStore, segment_dict
from guard.keyframes import KEYFRAME_INTERVAL
from guard.models import Keyframe, Reference, Segment, spread_matches
from guard.storage.records import Event

log = logging.getLogger(__name__)

#: Offsets closer than this (s) are the same alignment of a reference when an incident grows.
SAME_OFFSET = 1.5
#: How long a live case trusts a reference's policy and allowlist (s).
REFERENCE_TTL = 2.0
#: Least time between two writes of a growing incident's segments (s).
WRITE_INTERVAL = 2.0
#: Seconds of copy between two evidence pairs, and the most pairs an incident keeps.
EVIDENCE_STEP = 4.0
EVIDENCE_PAIRS = 8
#: Events that carry a decision (their first acknowledged delivery is the incident's ``action_delivered``).
DECISIONS = ("incident.flagged", "stream.cut")

#: A frame of the copy near a media time: ``(its media time, RGB image)``, or None.
FrameAt = Callable[[float], "tuple[float, np.ndarray] | None"]
#: Stops a monitored stream and returns it as events carry it (None, or NotFoundError, if none).
StopStream = Callable[[str], "dict[str, Any] | None"]
#: ``(event type, detail, incident, outbox event id)``: what a live case tells its stream's listeners.
Notify = Callable[[str, str, "Incident | None", "str | None"], None]


class Outbox(Protocol):
    """Where events go (:class:`guard.actions.ActionCenter`)."""

    def publish(self, event_type: str, *, owner: str, platform: str, incident: dict[str, Any] | None = None,
                stream: dict[str, Any] | None = None) -> Event:
        """Store an event for delivery."""

    def events(self, *, incident_id: int | None = None) -> list[Event]:
        """Stored events of an incident."""

    def add_listener(self, listener: Callable[[Event, float], None]) -> None:
        """Hear every acknowledged delivery."""

    def start(self) -> None:
        """Start delivering (events of earlier runs too)."""


class References(Protocol):
    """The references an incident is about (:class:`guard.storage.ReferenceRepository`)."""

    def get(self, ref_id: int) -> Reference:
        """One reference; :class:`NotFoundError` if unknown."""

    def update(self, ref_id: int, *, allowlist: list[str] | None = None) -> Reference:
        """Change a reference's allowlist."""

    def keyframe_near(self, ref_id: int, media_time: float, within: float) -> Keyframe | None:
        """The stored picture of a reference nearest ``media_time``, if one lies ``within`` s."""


class Act:
    """Opens, grows and closes incidents, keeps their evidence, applies policies and reviews,
    and hands the events to the outbox. Thread-safe: per-stream state lives in :class:`LiveCase`."""

    def __init__(self, incidents: IncidentStore, outbox: Outbox, references: References, *,
                 live: LiveSettings | None = None, stop_stream: StopStream | None = None):
        self.incidents = incidents
        self.outbox = outbox
        self.references = references
        self.live = live or LiveSettings()
        self.stop_stream = stop_stream
        outbox.add_listener(self._delivered)

    def start(self) -> None:
        """Make sure events are being delivered (idempotent)."""
        self.outbox.start()

    # -- the three sources ----------------------------------------------------------------------

    def live_case(self, stream: "LiveStream") -> "LiveCase":
        """The decisions of one monitored stream, from its first segment to its end."""
        return LiveCase(self, stream)

    def record_scan(self, *, stream: dict[str, Any], account: str, platform: str, segments: list[Segment],
                    frame_at: FrameAt | None = None) -> list[Incident]:
        """Turn a scan's segments into incidents, one per matched reference, closed at once.

        ``stream`` is the scanned media as events carry it (``id``, e.g. ``scan:<job id>``,
        plays the stream id); ``platform`` submitted it and ``account`` uploaded it, so a
        reference's allowlist exempts licensed accounts. Returns the incidents made.
        """
        made = []
        matched = [(reference, found) for ref_id, found in _by_reference(segments)
                   if (reference := self.reference(ref_id)) is not None and not allowlisted(reference, account)]
        for reference, found, claims in claim_cases(matched):
            now = time.time()
            incident = self._record(stream["id"], account, platform, reference, found, first_seen=now, decided=now,
                                    claims=claims)
            self._collect_evidence(incident, reference, found, frame_at)
            incident = self.incidents.close(incident.id, when=now)
            self._publish(_decision(reference, incident), incident, stream)
            made.append(incident)
        return made

    def review(self, incident_id: int, action: str, *, allowlist_account: bool = False,
               note: str | None = None, reviewer: str | None = None) -> Incident:
        """``confirm`` or ``dismiss`` an incident and send ``incident.updated``;
        ``allowlist_account`` also licenses the incident's account for the reviewer's reference
        (no future incident). Confirming applies the reviewer's reference's policy (a ``cut``
        takes the stream down). ``reviewer`` is the reviewing owner: of a conflict, each owner
        decides for its own reference; None (an admin) decides for the incident's reference."""
        incident = self.incidents.review(incident_id, action, note)
        reference = self.references.get(_reviewed_reference(incident, reviewer))
        if allowlist_account and not allowlisted(reference, incident.account):
            self.references.update(reference.id, allowlist=[*reference.allowlist, incident.account])
        self._publish("incident.updated", incident)
        if action == "confirm":
            self._apply_policy(incident, reference)
        return incident

    # -- shared steps ---------------------------------------------------------------------------

    def reference(self, ref_id: int) -> Reference | None:
        """A reference as it is now; None if it was deleted meanwhile."""
        try:
            return self.references.get(ref_id)
        except NotFoundError:
            return None

    def _record(self, stream_id: str, account: str, platform: str, reference: Reference, segments: list[Segment],
                *, first_seen: float, decided: float, claims: list[Reference] | None = None,
                aired: tuple[float, float] | None = None) -> Incident:
        aired_at, delay = aired or (None, None)
        incident = self.incidents.create(stream_id=stream_id, account=account, platform=platform,
                                         reference=reference, segments=segments, first_seen=first_seen,
                                         decided=decided, aired_at=aired_at, delay=delay)
        return self.incidents.add_claims(incident.id, claims) if claims else incident

    def _publish(self, event_type: str, incident: Incident, stream: dict[str, Any] | None = None) -> Event:
        """Hand an event to the outbox for every owner with a claim on the incident; returns the
        event of the incident's own owner."""
        events = [self.outbox.publish(event_type, owner=owner, platform=incident.platform,
                                      incident=incident.to_dict(), stream=stream) for owner in incident.owners]
        return events[0]

    def _apply_policy(self, incident: Incident, reference: Reference) -> None:
        """A confirmed incident on a ``cut`` reference takes its stream down, once."""
        already_cut = any(e.type == "stream.cut" for e in self.outbox.events(incident_id=incident.id))
        if reference.policy != "cut" or already_cut:
            return
        stream = None
        if self.stop_stream is not None:
            try:
                stream = self.stop_stream(incident.stream_id)
            except NotFoundError:  # an uploaded file's scan: no stream to stop, the takedown still goes
                pass
        self._publish("stream.cut", incident, stream)

    def _collect_evidence(self, incident: Incident, reference: Reference, segments: list[Segment],
                          frame_at: FrameAt | None, after: float | None = None, kept: int = 0) -> tuple[float, int]:
        """Evidence pairs along ``segments`` (query times after ``after``, at most
        :data:`EVIDENCE_PAIRS` with the ``kept`` ones): a frame of the copy from the caller and
        the reference's stored keyframe nearest the moment it copies. Returns the query time
        the pairs reach and how many the incident now has."""
        reached = after
        for segment in sorted(segments, key=lambda s: s.query_start):
            start = segment.query_start if after is None else max(segment.query_start, after + EVIDENCE_STEP)
            for at in np.arange(start, segment.query_end, EVIDENCE_STEP):
                if kept >= EVIDENCE_PAIRS:
                    return reached if reached is not None else float(at), kept
                if reached is not None and at < reached + EVIDENCE_STEP - 1e-6:
                    continue
                self._evidence_pair(incident, reference, segment, float(at), frame_at)
                reached, kept = float(at), kept + 1
        return (reached if reached is not None else -np.inf), kept

    def _evidence_pair(self, incident: Incident, reference: Reference, segment: Segment, at: float,
                       frame_at: FrameAt | None) -> None:
        try:
            shot = frame_at(at) if frame_at is not None else None
            if shot is not None:
                self.incidents.add_evidence(incident.id, "query", shot[0], shot[1])
            ref_time = segment.reference_start + ((shot[0] if shot else at) - segment.query_start) * segment.rate
            keyframe = self.reference_frame(reference.id, ref_time)
            if keyframe is not None:
                self.incidents.add_evidence_jpeg(incident.id, "reference", keyframe.media_time, keyframe.width,
                                                 keyframe.height, keyframe.jpeg)
        except GuardError as exc:
            log.warning("incident %d: no evidence at %.1f s (%s)", incident.id, at, exc)

    def reference_frame(self, ref_id: int, media_time: float) -> Keyframe | None:
        """The reference side of an incident's evidence: its stored keyframe nearest
        ``media_time`` (within one keyframe interval); None for a reference without keyframes
        (a hash-only import)."""
        return self.references.keyframe_near(ref_id, media_time, within=KEYFRAME_INTERVAL)

    def _delivered(self, event: Event, delivered_at: float) -> None:
        if event.incident_id is not None and event.type in DECISIONS:
            self.incidents.mark_delivered(event.incident_id, delivered_at)


# -- live streams -------------------------------------------------------------------------------


@dataclass
class LiveStream:
    """The monitored stream a :class:`LiveCase` decides for, as its monitor lends it."""

    id: str
    account: str
    platform: str
    #: The stream as events carry it, as it is now.
    describe: Callable[[], dict[str, Any]]
    #: Wall-clock arrival of the frame at a stream time.
    arrival_at: Callable[[float], float]
    #: The stream's thumbnail nearest a stream time (the query side of evidence).
    frame_at: FrameAt
    #: Tell the stream's listeners (allowlisted, flagged, updated, cut).
    notify: Notify
    #: An incident was opened on the stream (True: and the stream is cut), before its event goes out.
    opened: Callable[[bool], None]
    #: When a stream time played, on the wall clock: its time plus the stream's least arrival
    #: skew (a frame decoded late, e.g. while the demuxer probed, is placed when it aired), as
    #: live references place their moments (:mod:`guard.live_reference`); default ``arrival_at``.
    wall_at: Callable[[float], float] | None = None


@dataclass
class _OpenIncident:
    incident_id: int
    reference: Reference
    segments: list[dict[str, Any]]
    last_seen: float
    last_event: float
    last_write: float
    reported_end: float
    dirty: bool = False
    #: Query time the evidence pairs reach, and how many there are.
    evidence_until: float = -np.inf
    evidence_pairs: int = 0
    #: Other owners' references claiming this copy (an ownership conflict).
    claims: list[Reference] = field(default_factory=list)

    def owners(self) -> set[str]:
        """The owners with a claim on the copy."""
        return {self.reference.owner, *(claim.owner for claim in self.claims)}


class LiveCase:
    """One stream's open incidents and excused references, decided window after window.

    Used by the stream's own thread only: :meth:`decide` with each window's segments,
    :meth:`close_idle` as time passes, :meth:`close_all` when the stream ends.
    """

    def __init__(self, act: Act, stream: LiveStream):
        self.act = act
        self.stream = stream
        self.cut = False
        self._open: dict[int, _OpenIncident] = {}
        self._claimed: dict[int, int] = {}  # reference → the open incident's reference it claims
        self._allowlisted: set[int] = set()
        self._refs: dict[int, tuple[float, Reference | None]] = {}

    @property
    def open_incidents(self) -> list[int]:
        """Ids of the incidents still open on the stream."""
        return [current.incident_id for current in self._open.values()]

    def decide(self, segments: list[Segment], now: float) -> bool:
        """Open, grow or excuse per matched reference; True when the stream must be cut."""
        if self.cut:
            return True
        fresh = []
        for ref_id, found in _by_reference(segments):
            reference = self._reference(ref_id)
            if reference is None:
                continue
            if allowlisted(reference, self.stream.account):
                if ref_id not in self._allowlisted:
                    self._allowlisted.add(ref_id)
                    self.stream.notify("stream.allowlisted",
                                       f"reference {ref_id} {reference.title!r}: account is licensed", None, None)
                continue
            current = self._open.get(ref_id)
            if current is not None:
                self._grow(current, found, now)
            elif ref_id not in self._claimed:
                fresh.append((reference, found))
        for reference, found, claims in claim_cases(fresh):
            host = self._open_host(reference, found)
            if host is not None:
                self._claim(host, [reference, *claims], now)
            elif self._open_incident(reference, found, now, claims):
                return True
        return False

    def close_idle(self, now: float) -> None:
        """Close the incidents whose copy has not been seen for ``incident_idle_seconds``."""
        for ref_id, current in list(self._open.items()):
            if now - current.last_seen >= self.act.live.incident_idle_seconds:
                del self._open[ref_id]
                self._forget_claims(ref_id)
                self._updated(current, now, "copy no longer seen", closing=True)

    def close_all(self, now: float, detail: str) -> None:
        """Close every open incident (the stream ended); one that cannot be written is logged."""
        for current in list(self._open.values()):
            try:
                self._updated(current, now, detail, closing=True)
            except GuardError:
                log.exception("stream %s: cannot close incident %d", self.stream.id, current.incident_id)
        self._open.clear()
        self._claimed.clear()

    def _reference(self, ref_id: int) -> Reference | None:
        cached = self._refs.get(ref_id)
        if cached is not None and time.monotonic() - cached[0] < REFERENCE_TTL:
            return cached[1]
        reference = self.act.reference(ref_id)
        self._refs[ref_id] = (time.monotonic(), reference)
        return reference

    def _open_host(self, reference: Reference, segments: list[Segment]) -> _OpenIncident | None:
        """The open incident of another owner whose copy ``segments`` restate, if any."""
        spans = [_span(s) for s in segments]
        return next((current for current in self._open.values()
                     if reference.owner not in current.owners()
                     and restates(spans, [_span(s) for s in current.segments])), None)

    def _claim(self, host: _OpenIncident, references: list[Reference], now: float) -> None:
        """Other owners' references join an open incident as claims; every owner hears of it."""
        host.claims += references
        for reference in references:
            self._claimed[reference.id] = host.reference.id
        self.act.incidents.add_claims(host.incident_id, references)
        titles = ", ".join(f"{r.id} {r.title!r} ({r.owner})" for r in references)
        self._updated(host, now, f"ownership conflict: also claimed by reference {titles}")

    def _forget_claims(self, host_ref_id: int) -> None:
        self._claimed = {ref: host for ref, host in self._claimed.items() if host != host_ref_id}

    def _open_incident(self, reference: Reference, segments: list[Segment], now: float,
                       claims: list[Reference] | None = None) -> bool:
        stream = self.stream
        first = min(segments, key=lambda s: s.query_start)
        first_seen = stream.arrival_at(first.query_start)
        if reference.live_status is not None and reference.aired_start is None:  # cached before it first aired
            reference = self.act.reference(reference.id) or reference
        incident = self.act._record(stream.id, stream.account, stream.platform, reference, segments,
                                    first_seen=first_seen, decided=now, claims=claims,
                                    aired=aired(reference, first, (stream.wall_at or stream.arrival_at)(first.query_start)))
        event_type = _decision(reference, incident)
        self.cut = event_type == "stream.cut"
        stream.opened(self.cut)
        event = self.act._publish(event_type, incident, stream.describe())
        log.info("stream %s: %s reference %d %r (incident %d, %.1f s after first copied frame)",
                 stream.id, event_type, reference.id, reference.title, incident.id, now - first_seen)
        stream.notify(event_type, f"reference {reference.id} {reference.title!r}", incident, event.id)
        until, pairs = self.act._collect_evidence(incident, reference, segments, stream.frame_at)
        if self.cut:
            return True
        self._open[reference.id] = _OpenIncident(
            incident.id, reference, [segment_dict(s) for s in segments], now, now, now,
            reported_end=incident.query_end, claims=list(claims or []), evidence_until=until, evidence_pairs=pairs,
        )
        for claim in claims or []:
            self._claimed[claim.id] = reference.id
        return False

    def _grow(self, current: _OpenIncident, segments: list[Segment], now: float) -> None:
        current.last_seen = now
        if current.evidence_pairs < EVIDENCE_PAIRS and max(s.query_end for s in segments) > (
                current.evidence_until + EVIDENCE_STEP):
            incident = self.act.incidents.get(current.incident_id)
            current.evidence_until, current.evidence_pairs = self.act._collect_evidence(
                incident, current.reference, segments, self.stream.frame_at, current.evidence_until,
                current.evidence_pairs)
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
            matches = spread_matches(same.get("matches", []) + part.get("matches", []))
            same.update({k: v for k, v in part.items() if k not in ("query_start", "reference_start")})
            same["matches"] = matches
            same["query_start"], same["reference_start"] = earliest, ref_earliest
            same["query_end"] = max(same["query_end"], part["query_end"])
        if current.dirty and now - current.last_write >= WRITE_INTERVAL:
            self._write(current, now)
        end = max(s["query_end"] for s in current.segments)
        interval = self.act.live.update_interval
        if end - current.reported_end >= interval and now - current.last_event >= interval:
            self._updated(current, now, "copy continues")

    def _write(self, current: _OpenIncident, now: float) -> Incident:
        current.dirty = False
        current.last_write = now
        return self.act.incidents.extend(current.incident_id, current.segments, when=now)

    def _updated(self, current: _OpenIncident, now: float, detail: str, closing: bool = False) -> None:
        incident = self._write(current, now)
        if closing:
            incident = self.act.incidents.close(current.incident_id, when=now)
        current.last_event = now
        current.reported_end = incident.query_end
        event = self.act._publish("incident.updated", incident, self.stream.describe())
        self.stream.notify("incident.updated", detail, incident, event.id)


def aired(reference: Reference, first: Segment, played: float) -> tuple[float, float] | None:
    """For a live reference's copy: when the copied moment aired on the reference's feed
    (wall clock) and the restream's delay behind it (s; negative when the restream runs ahead
    of the feed guard ingests), given when the copy's first frame played on the restream."""
    if reference.aired_start is None:
        return None
    aired_at = reference.aired_start + first.reference_start
    return aired_at, played - aired_at


def _by_reference(segments: list[Segment]) -> list[tuple[int, list[Segment]]]:
    """Segments grouped per reference, by reference id."""
    groups: dict[int, list[Segment]] = collections.defaultdict(list)
    for segment in segments:
        groups[segment.reference_id].append(segment)
    return sorted(groups.items())


def _decision(reference: Reference, incident: Incident) -> str:
    """The event a copy of ``reference`` sends under its policy (a conflict is only flagged)."""
    return "stream.cut" if reference.policy == "cut" and not incident.conflict else "incident.flagged"


#: A copy restates another when they share more than this share of the shorter one's query span.
RESTATES = 0.5


def claim_cases(matched: list[tuple[Reference, list[Segment]]]) -> list[tuple[Reference, list[Segment], list[Reference]]]:
    """Matched references and their segments → incidents to make: ``(reference, its segments,
    claims)``. A reference of another owner whose segments restate the copy of a closer one
    (by score) joins that one's incident as a claim; references of one owner never claim
    each other's copies (the matcher already kept only the closer one where they competed)."""
    cases: list[tuple[Reference, list[Segment], list[Reference]]] = []
    for reference, found in sorted(matched, key=lambda m: (-max(s.score for s in m[1]), m[0].id)):
        host = next((case for case in cases if _claimable(case, reference, [_span(s) for s in found])), None)
        if host is None:
            cases.append((reference, found, []))
        else:
            host[2].append(reference)
    return cases


def _claimable(case: tuple[Reference, list[Segment], list[Reference]], reference: Reference,
               spans: list[tuple[float, float]]) -> bool:
    host, found, claims = case
    owners = {host.owner, *(claim.owner for claim in claims)}
    return reference.owner not in owners and restates(spans, [_span(s) for s in found])


def _span(segment: Segment | dict[str, Any]) -> tuple[float, float]:
    if isinstance(segment, dict):
        return float(segment["query_start"]), float(segment["query_end"])
    return segment.query_start, segment.query_end


def restates(spans: list[tuple[float, float]], others: list[tuple[float, float]]) -> bool:
    """Whether a copy over query ``spans`` shares more than :data:`RESTATES` of the shorter
    span with one of ``others``."""
    return any(min(a1, b1) - max(a0, b0) > RESTATES * min(a1 - a0, b1 - b0)
               for a0, a1 in spans for b0, b1 in others)


def _reviewed_reference(incident: Incident, reviewer: str | None) -> int:
    """The reference a review decides for: the reviewer's claim on a conflict, else the incident's."""
    if reviewer is None or reviewer == incident.owner:
        return incident.reference_id
    return next((c["reference_id"] for c in incident.claims if c["owner"] == reviewer), incident.reference_id)

"""Incidents: a copy of a reference seen on a live stream, stored in the catalog with evidence.

An incident is one episode of one reference on one stream. It is created when the live
matcher's segment is long and consistent enough for the reference's ``min_seconds``, keeps
growing (``segments``, ``query_end``, ``score``) while the copy goes on, and is closed
(``live`` false, ``ended`` set) when the copy has not been seen for a while or the stream
stops. Review moves ``status`` from ``open`` to ``confirmed`` or ``dismissed``.

Tenancy: ``owner`` is the rights holder owning the matched reference, ``platform`` is who
submitted the stream; :meth:`IncidentStore.list` filters on both so the API can isolate tenants.

Times are Unix seconds (floats): ``first_seen`` is when the first copied frame reached guard,
``decided`` when the incident was recorded, ``action_delivered`` when its webhook (takedown or
notification) was first acknowledged by a receiver.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
from PIL import Image

from guard.errors import FormatError, NotFoundError
from guard.models import Reference, Segment
from guard.store import Catalog

#: Review states of an incident.
STATUSES = ("open", "confirmed", "dismissed")
#: Review actions and the status each one sets.
REVIEW_ACTIONS = {"confirm": "confirmed", "dismiss": "dismissed"}
#: JPEG quality of evidence thumbnails (small images, a few kB each).
JPEG_QUALITY = 80

_COLUMNS = (
    "id", "stream_id", "account", "platform", "reference_id", "reference_title", "owner", "policy",
    "status", "live", "score", "query_start", "query_end", "reference_start", "reference_end",
    "segments", "first_seen", "decided", "action_delivered", "updated", "ended", "reviewed",
    "review_note",
)


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def to_timestamp(value: float | int | str | datetime | None) -> float | None:
    """Accept Unix seconds, an ISO 8601 string or a datetime (naive = UTC); return Unix seconds."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FormatError(f"not a time: {value!r} (use ISO 8601 or Unix seconds)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


@dataclass
class Incident:
    """A copied reference on a live stream (see the module docstring for the fields' meaning)."""

    id: int
    stream_id: str
    account: str
    platform: str
    reference_id: int
    reference_title: str
    owner: str
    policy: str
    status: str
    live: bool
    score: float
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    segments: list[dict]
    first_seen: float
    decided: float
    action_delivered: float | None
    updated: float
    ended: float | None = None
    reviewed: float | None = None
    review_note: str | None = None
    evidence: list[dict] = field(default_factory=list)

    @property
    def detection_seconds(self) -> float:
        """Seconds from the first copied frame reaching guard to the decision."""
        return self.decided - self.first_seen

    def to_dict(self) -> dict:
        """JSON-ready form: times as ISO 8601 strings, plus ``*_ts`` Unix seconds for precision."""
        out = asdict(self)
        for key in ("first_seen", "decided", "action_delivered", "updated", "ended", "reviewed"):
            out[f"{key}_ts"] = out[key]
            out[key] = iso(out[key])
        for key in ("score", "query_start", "query_end", "reference_start", "reference_end"):
            out[key] = round(out[key], 3)
        out["duration"] = round(self.query_end - self.query_start, 3)
        out["detection_seconds"] = round(self.detection_seconds, 3)
        return out


@dataclass(frozen=True)
class Evidence:
    """A JPEG thumbnail kept as evidence: a stream (``query``) or ``reference`` frame."""

    id: int
    incident_id: int
    kind: str
    media_time: float
    width: int
    height: int
    created: float

    def to_dict(self) -> dict:
        """JSON-ready form (the image itself comes from :meth:`IncidentStore.evidence_jpeg`)."""
        out = asdict(self)
        out["created"] = iso(self.created)
        return out


def segment_dict(segment: Segment) -> dict:
    """The parts of a matcher segment an incident keeps."""
    keys = ("query_start", "query_end", "reference_start", "reference_end", "offset", "rate",
            "matched_fraction", "score", "matched_frames", "mean_distance")
    out = segment.to_dict()
    return {k: out[k] for k in keys}


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB array as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class IncidentStore:
    """Incidents and their evidence in the catalog. Thread-safe (the catalog serialises writes)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # -- writing ------------------------------------------------------------------------------

    def create(
        self,
        *,
        stream_id: str,
        account: str,
        platform: str,
        reference: Reference,
        segments: list[Segment],
        first_seen: float,
        decided: float | None = None,
    ) -> Incident:
        """Record a new incident for ``reference`` on a stream from the matcher's segments."""
        decided = time.time() if decided is None else decided
        parts = [segment_dict(s) for s in segments]
        span = _span(parts)
        with self.catalog.transaction() as db:
            cursor = db.execute(
                "INSERT INTO incidents (stream_id, account, platform, reference_id, reference_title,"
                " owner, policy, status, live, score, query_start, query_end, reference_start,"
                " reference_end, segments, first_seen, decided, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stream_id, account, platform, reference.id, reference.title, reference.owner,
                 reference.policy, max(s["score"] for s in parts), *span, json.dumps(parts),
                 first_seen, decided, decided),
            )
            incident_id = int(cursor.lastrowid)
        return self.get(incident_id)

    def extend(self, incident_id: int, segments: list[dict], *, when: float | None = None) -> Incident:
        """Replace an open incident's segments with a longer view of the same copy."""
        span = _span(segments)
        score = max(s["score"] for s in segments)
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE incidents SET segments = ?, query_start = ?, query_end = ?, reference_start = ?,"
                " reference_end = ?, score = MAX(score, ?), updated = ? WHERE id = ?",
                (json.dumps(segments), *span, score, time.time() if when is None else when, incident_id),
            )
        return self.get(incident_id)

    def close(self, incident_id: int, *, when: float | None = None) -> Incident:
        """Mark an incident's copy as over (``live`` false)."""
        when = time.time() if when is None else when
        with self.catalog.transaction() as db:
            db.execute("UPDATE incidents SET live = 0, ended = COALESCE(ended, ?), updated = ? WHERE id = ?",
                       (when, when, incident_id))
        return self.get(incident_id)

    def mark_delivered(self, incident_id: int, when: float | None = None) -> None:
        """Remember when the incident's action webhook was first acknowledged."""
        with self.catalog.transaction() as db:
            db.execute("UPDATE incidents SET action_delivered = COALESCE(action_delivered, ?) WHERE id = ?",
                       (time.time() if when is None else when, incident_id))

    def review(self, incident_id: int, action: str, note: str | None = None) -> Incident:
        """``confirm`` or ``dismiss`` an incident (a dismissed one can be confirmed later, and back)."""
        if action not in REVIEW_ACTIONS:
            raise FormatError(f"review action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
        self.get(incident_id)
        with self.catalog.transaction() as db:
            db.execute("UPDATE incidents SET status = ?, reviewed = ?, review_note = ?, updated = ? WHERE id = ?",
                       (REVIEW_ACTIONS[action], time.time(), note, time.time(), incident_id))
        return self.get(incident_id)

    # -- evidence -----------------------------------------------------------------------------

    def add_evidence(self, incident_id: int, kind: str, media_time: float, rgb: np.ndarray) -> Evidence:
        """Store an RGB thumbnail as JPEG evidence of an incident."""
        if kind not in ("query", "reference"):
            raise FormatError(f"evidence kind must be query or reference, not {kind!r}")
        data = encode_jpeg(rgb)
        now = time.time()
        with self.catalog.transaction() as db:
            cursor = db.execute(
                "INSERT INTO incident_evidence (incident_id, kind, media_time, width, height, jpeg, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident_id, kind, float(media_time), int(rgb.shape[1]), int(rgb.shape[0]), data, now),
            )
            evidence_id = int(cursor.lastrowid)
        return Evidence(evidence_id, incident_id, kind, float(media_time), int(rgb.shape[1]), int(rgb.shape[0]), now)

    def evidence(self, incident_id: int) -> list[Evidence]:
        """The evidence thumbnails of an incident, oldest first."""
        rows = self.catalog.query(
            "SELECT id, incident_id, kind, media_time, width, height, created FROM incident_evidence"
            " WHERE incident_id = ? ORDER BY id", (int(incident_id),))
        return [Evidence(*row) for row in rows]

    def evidence_jpeg(self, evidence_id: int) -> bytes:
        """The JPEG bytes of one evidence thumbnail."""
        rows = self.catalog.query("SELECT jpeg FROM incident_evidence WHERE id = ?", (int(evidence_id),))
        if not rows:
            raise NotFoundError(f"evidence {evidence_id} not found")
        return bytes(rows[0][0])

    # -- reading ------------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        """One incident with its evidence list; :class:`NotFoundError` if unknown."""
        rows = self.catalog.query(f"SELECT {', '.join(_COLUMNS)} FROM incidents WHERE id = ?", (int(incident_id),))
        if not rows:
            raise NotFoundError(f"incident {incident_id} not found")
        incident = _incident(rows[0])
        incident.evidence = [e.to_dict() for e in self.evidence(incident.id)]
        return incident

    def list(
        self,
        *,
        reference_id: int | None = None,
        stream_id: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        platform: str | None = None,
        live: bool | None = None,
        since: float | str | datetime | None = None,
        until: float | str | datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Incident]:
        """Incidents matching every given filter, newest decision first.

        ``since``/``until`` bound the decision time (Unix seconds, ISO 8601 or datetime).
        Evidence is not loaded here (use :meth:`get`).
        """
        where, args = self._filters(reference_id, stream_id, status, owner, platform, live, since, until)
        rows = self.catalog.query(
            f"SELECT {', '.join(_COLUMNS)} FROM incidents{where} ORDER BY decided DESC, id DESC LIMIT ? OFFSET ?",
            (*args, max(0, int(limit)), max(0, int(offset))),
        )
        return [_incident(row) for row in rows]

    def count(self, **filters) -> int:
        """How many incidents match the filters of :meth:`list`."""
        keys = ("reference_id", "stream_id", "status", "owner", "platform", "live", "since", "until")
        where, args = self._filters(*(filters.get(k) for k in keys))
        return int(self.catalog.query(f"SELECT COUNT(*) FROM incidents{where}", args)[0][0])

    @staticmethod
    def _filters(reference_id, stream_id, status, owner, platform, live, since, until) -> tuple[str, tuple]:
        if status is not None and status not in STATUSES:
            raise FormatError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        clauses, args = [], []
        for column, value in (("reference_id", reference_id), ("stream_id", stream_id), ("status", status),
                              ("owner", owner), ("platform", platform)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if live is not None:
            clauses.append("live = ?")
            args.append(1 if live else 0)
        if since is not None:
            clauses.append("decided >= ?")
            args.append(to_timestamp(since))
        if until is not None:
            clauses.append("decided < ?")
            args.append(to_timestamp(until))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _span(segments: list[dict]) -> tuple[float, float, float, float]:
    return (
        min(s["query_start"] for s in segments),
        max(s["query_end"] for s in segments),
        min(s["reference_start"] for s in segments),
        max(s["reference_end"] for s in segments),
    )


def _incident(row: tuple) -> Incident:
    values = dict(zip(_COLUMNS, row))
    values["live"] = bool(values["live"])
    values["segments"] = json.loads(values["segments"])
    return Incident(**values)

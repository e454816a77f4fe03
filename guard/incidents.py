"""Incidents: a copy of a reference seen on a live stream, stored in the catalog with evidence.

An incident is one episode of one reference on one stream. It is created when the live
matcher's segment is long and consistent enough for the reference's ``min_seconds``, keeps
growing (``segments``, ``query_end``, ``score``) while the copy goes on, and is closed
(``live`` false, ``ended`` set) when the copy has not been seen for a while or the stream
stops. Review moves ``status`` from ``open`` to ``confirmed`` or ``dismissed``. All of it is
decided in :mod:`guard.act`, for live streams, scans and reviews alike; this is its store.

Tenancy: ``owner`` is the rights holder owning the matched reference, ``platform`` is who
submitted the stream; :meth:`IncidentStore.list` filters on both so the API can isolate tenants.

Times are Unix seconds (floats): ``first_seen`` is when the first copied frame reached guard,
``decided`` when the incident was recorded, ``action_delivered`` when its webhook (takedown or
notification) was first acknowledged by a receiver.
"""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone

import numpy as np
from PIL import Image

from guard.errors import FormatError
from guard.models import Reference, Segment
from guard.storage.incidents import IncidentRepository
from guard.storage.protocols import Database
from guard.storage.records import Evidence, Incident, IncidentFilters, iso

__all__ = ["JPEG_QUALITY", "REVIEW_ACTIONS", "STATUSES", "Evidence", "Incident", "IncidentStore", "encode_jpeg",
           "iso", "segment_dict", "to_timestamp"]

#: Review states of an incident.
STATUSES = ("open", "confirmed", "dismissed")
#: Review actions and the status each one sets.
REVIEW_ACTIONS = {"confirm": "confirmed", "dismiss": "dismissed"}
#: JPEG quality of evidence thumbnails (small images, a few kB each).
JPEG_QUALITY = 80


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


def segment_dict(segment: Segment) -> dict:
    """The parts of a matcher segment an incident keeps (with the window a ``video-region``
    copy sits in)."""
    keys = ("query_start", "query_end", "reference_start", "reference_end", "offset", "rate",
            "matched_fraction", "score", "matched_frames", "mean_distance", "modality", "matches", "region")
    out = segment.to_dict()
    return {k: out[k] for k in keys if k in out}


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB array as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class IncidentStore:
    """Incidents and their evidence in the catalog. Thread-safe (the catalog serialises writes)."""

    def __init__(self, database: Database):
        self.repository = IncidentRepository(database)

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
        aired_at: float | None = None,
        delay: float | None = None,
    ) -> Incident:
        """Record a new incident for ``reference`` on a stream from the matcher's segments
        (``aired_at``/``delay``: a live reference's, see :class:`Incident`)."""
        decided = time.time() if decided is None else decided
        parts = [segment_dict(s) for s in segments]
        incident_id = self.repository.create(
            stream_id=stream_id, account=account, platform=platform, reference_id=reference.id,
            reference_title=reference.title, owner=reference.owner, policy=reference.policy,
            score=max(s["score"] for s in parts), span=_span(parts), segments=parts, first_seen=first_seen,
            decided=decided, aired_at=aired_at, delay=delay,
        )
        return self.get(incident_id)

    def add_claims(self, incident_id: int, references: list[Reference]) -> Incident:
        """Record other owners' ``references`` as claiming an incident's copy (a conflict)."""
        self.repository.add_claims(incident_id, [
            {"reference_id": r.id, "reference_title": r.title, "owner": r.owner, "policy": r.policy}
            for r in references])
        return self.get(incident_id)

    def extend(self, incident_id: int, segments: list[dict], *, when: float | None = None) -> Incident:
        """Replace an open incident's segments with a longer view of the same copy."""
        self.repository.set_segments(incident_id, segments, span=_span(segments),
                                     score=max(s["score"] for s in segments),
                                     updated=time.time() if when is None else when)
        return self.get(incident_id)

    def close(self, incident_id: int, *, when: float | None = None) -> Incident:
        """Mark an incident's copy as over (``live`` false)."""
        self.repository.close(incident_id, when=time.time() if when is None else when)
        return self.get(incident_id)

    def mark_delivered(self, incident_id: int, when: float | None = None) -> None:
        """Remember when the incident's action webhook was first acknowledged."""
        self.repository.mark_delivered(incident_id, when=time.time() if when is None else when)

    def review(self, incident_id: int, action: str, note: str | None = None) -> Incident:
        """``confirm`` or ``dismiss`` an incident (a dismissed one can be confirmed later, and back)."""
        if action not in REVIEW_ACTIONS:
            raise FormatError(f"review action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
        self.get(incident_id)
        self.repository.set_status(incident_id, REVIEW_ACTIONS[action], note=note, reviewed=time.time())
        return self.get(incident_id)

    # -- evidence -----------------------------------------------------------------------------

    def add_evidence(self, incident_id: int, kind: str, media_time: float, rgb: np.ndarray) -> Evidence:
        """Store an RGB thumbnail as JPEG evidence of an incident."""
        return self.add_evidence_jpeg(incident_id, kind, media_time, int(rgb.shape[1]), int(rgb.shape[0]),
                                      encode_jpeg(rgb))

    def add_evidence_jpeg(self, incident_id: int, kind: str, media_time: float, width: int, height: int,
                          jpeg: bytes) -> Evidence:
        """Store a picture that is JPEG already (a reference's keyframe) as evidence, unchanged."""
        if kind not in ("query", "reference"):
            raise FormatError(f"evidence kind must be query or reference, not {kind!r}")
        return self.repository.add_evidence(
            incident_id, kind=kind, media_time=media_time, width=int(width), height=int(height),
            jpeg=bytes(jpeg), created=time.time(),
        )

    def evidence(self, incident_id: int) -> list[Evidence]:
        """The evidence thumbnails of an incident, oldest first."""
        return self.repository.evidence(incident_id)

    def evidence_jpeg(self, evidence_id: int) -> bytes:
        """The JPEG bytes of one evidence thumbnail."""
        return self.repository.evidence_jpeg(evidence_id)

    # -- reading ------------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        """One incident with its evidence list; :class:`NotFoundError` if unknown."""
        incident = self.repository.get(incident_id)
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
        filters = self._filters(reference_id, stream_id, status, owner, platform, live, since, until)
        return self.repository.list(filters, limit=limit, offset=offset)

    def count(self, **filters) -> int:
        """How many incidents match the filters of :meth:`list`."""
        keys = ("reference_id", "stream_id", "status", "owner", "platform", "live", "since", "until")
        return self.repository.count(self._filters(*(filters.get(k) for k in keys)))

    @staticmethod
    def _filters(reference_id, stream_id, status, owner, platform, live, since, until) -> IncidentFilters:
        if status is not None and status not in STATUSES:
            raise FormatError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        return IncidentFilters(
            reference_id=reference_id, stream_id=stream_id, status=status, owner=owner, platform=platform,
            live=live, since=to_timestamp(since), until=to_timestamp(until),
        )


def _span(segments: list[dict]) -> tuple[float, float, float, float]:
    return (
        min(s["query_start"] for s in segments),
        max(s["query_end"] for s in segments),
        min(s["reference_start"] for s in segments),
        max(s["reference_end"] for s in segments),
    )

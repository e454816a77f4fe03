"""Incidents and their evidence: the ``incidents`` and ``incident_evidence`` tables."""

from __future__ import annotations

import json
from typing import Any

from guard.errors import NotFoundError
from guard.storage.protocols import Database, Row
from guard.storage.records import Evidence, Incident, IncidentFilters
from guard.storage.sql import insert_returning_id, where

#: ``(query_start, query_end, reference_start, reference_end)`` of an incident's segments.
Span = tuple[float, float, float, float]

_COLUMNS = (
    "id", "stream_id", "account", "platform", "reference_id", "reference_title", "owner", "policy",
    "status", "live", "score", "query_start", "query_end", "reference_start", "reference_end",
    "segments", "first_seen", "decided", "action_delivered", "updated", "ended", "reviewed",
    "review_note", "aired_at", "delay",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM incidents"
_EVIDENCE_COLUMNS = "id, incident_id, kind, media_time, width, height, created"
_EVERY = IncidentFilters()


class IncidentRepository:
    """Incidents (opened, grown, closed, reviewed) and the JPEG thumbnails kept as their evidence."""

    def __init__(self, database: Database):
        self.database = database

    # -- incidents ----------------------------------------------------------------------------

    def create(self, *, stream_id: str, account: str, platform: str, reference_id: int, reference_title: str,
               owner: str, policy: str, score: float, span: Span, segments: list[dict[str, Any]], first_seen: float,
               decided: float, aired_at: float | None = None, delay: float | None = None) -> int:
        """Record a new ``open``, live incident; return its id. ``aired_at`` and ``delay`` are a
        live reference's: when the copied moment aired, and seconds from then to the decision."""
        with self.database.transaction() as db:
            return insert_returning_id(
                db,
                "INSERT INTO incidents (stream_id, account, platform, reference_id, reference_title,"
                " owner, policy, status, live, score, query_start, query_end, reference_start,"
                " reference_end, segments, first_seen, decided, updated, aired_at, delay)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (stream_id, account, platform, int(reference_id), reference_title, owner, policy, float(score),
                 *span, json.dumps(segments), first_seen, decided, decided,
                 None if aired_at is None else float(aired_at), None if delay is None else float(delay)),
            )

    def add_claims(self, incident_id: int, claims: list[dict[str, Any]]) -> None:
        """Record other references claiming an incident's copy (see :attr:`Incident.claims`)."""
        with self.database.transaction() as db:
            for claim in claims:
                db.execute("INSERT OR IGNORE INTO incident_claims (incident_id, reference_id, reference_title, owner,"
                           " policy) VALUES (?, ?, ?, ?, ?)",
                           (int(incident_id), int(claim["reference_id"]), claim["reference_title"], claim["owner"],
                            claim["policy"]))

    def set_segments(self, incident_id: int, segments: list[dict[str, Any]], *, span: Span, score: float,
                     updated: float) -> None:
        """Replace an incident's segments and span; its score only ever grows."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE incidents SET segments = ?, query_start = ?, query_end = ?, reference_start = ?,"
                " reference_end = ?, score = CASE WHEN score > ? THEN score ELSE ? END, updated = ?"
                " WHERE id = ?",
                (json.dumps(segments), *span, float(score), float(score), updated, int(incident_id)),
            )

    def close(self, incident_id: int, *, when: float) -> None:
        """Mark the copy over (``live`` false); a first end time is kept."""
        with self.database.transaction() as db:
            db.execute("UPDATE incidents SET live = 0, ended = COALESCE(ended, ?), updated = ? WHERE id = ?",
                       (when, when, int(incident_id)))

    def mark_delivered(self, incident_id: int, *, when: float) -> None:
        """Remember the first acknowledged delivery of the incident's action."""
        with self.database.transaction() as db:
            db.execute("UPDATE incidents SET action_delivered = COALESCE(action_delivered, ?) WHERE id = ?",
                       (when, int(incident_id)))

    def set_status(self, incident_id: int, status: str, *, note: str | None, reviewed: float) -> None:
        """Record a review: the new status, its note and when."""
        with self.database.transaction() as db:
            db.execute("UPDATE incidents SET status = ?, reviewed = ?, review_note = ?, updated = ? WHERE id = ?",
                       (status, reviewed, note, reviewed, int(incident_id)))

    def get(self, incident_id: int) -> Incident:
        """One incident without its evidence; :class:`NotFoundError` if unknown."""
        rows = self.database.query(f"{_SELECT} WHERE id = ?", (int(incident_id),))
        if not rows:
            raise NotFoundError(f"incident {incident_id} not found")
        return self._with_claims([_incident(rows[0])])[0]

    def count(self, filters: IncidentFilters = _EVERY) -> int:
        """How many incidents match the filters."""
        clause, args = _where(filters)
        return int(self.database.query(f"SELECT COUNT(*) FROM incidents{clause}", args)[0][0])

    def counts_by_status(self) -> dict[str, int]:
        """Number of incidents per review status (statuses with none are absent)."""
        rows = self.database.query("SELECT status, COUNT(*) FROM incidents GROUP BY status")
        return {status: int(n) for status, n in rows}

    # -- evidence -----------------------------------------------------------------------------

    def add_evidence(self, incident_id: int, *, kind: str, media_time: float, width: int, height: int,
                     jpeg: bytes, created: float) -> Evidence:
        """Store a JPEG thumbnail as evidence of an incident; return its record."""
        with self.database.transaction() as db:
            evidence_id = insert_returning_id(
                db,
                "INSERT INTO incident_evidence (incident_id, kind, media_time, width, height, jpeg, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (int(incident_id), kind, float(media_time), int(width), int(height), jpeg, created),
            )
        return Evidence(evidence_id, int(incident_id), kind, float(media_time), int(width), int(height), created)

    def evidence(self, incident_id: int) -> list[Evidence]:
        """An incident's evidence records, oldest first."""
        rows = self.database.query(
            f"SELECT {_EVIDENCE_COLUMNS} FROM incident_evidence WHERE incident_id = ? ORDER BY id",
            (int(incident_id),))
        return [Evidence(*row) for row in rows]

    def evidence_jpeg(self, evidence_id: int) -> bytes:
        """The JPEG bytes of one evidence thumbnail; :class:`NotFoundError` if unknown."""
        rows = self.database.query("SELECT jpeg FROM incident_evidence WHERE id = ?", (int(evidence_id),))
        if not rows:
            raise NotFoundError(f"evidence {evidence_id} not found")
        return bytes(rows[0][0])

    def _with_claims(self, incidents: list[Incident]) -> list[Incident]:
        """``incidents`` with their claims, read in one query."""
        if not incidents:
            return incidents
        by_id = {incident.id: incident for incident in incidents}
        marks = ", ".join("?" * len(by_id))
        rows = self.database.query(
            "SELECT incident_id, reference_id, reference_title, owner, policy FROM incident_claims"
            f" WHERE incident_id IN ({marks}) ORDER BY incident_id, reference_id", tuple(by_id))
        for incident_id, reference_id, title, owner, policy in rows:
            by_id[incident_id].claims.append(
                {"reference_id": reference_id, "reference_title": title, "owner": owner, "policy": policy})
        return incidents

    # -- listing (last in the class: a method named ``list`` shadows the builtin in the
    # annotations that follow it) ------------------------------------------------------------

    def list(self, filters: IncidentFilters = _EVERY, *, limit: int = 100,
             offset: int = 0) -> list[Incident]:
        """Incidents matching the filters, newest decision first (evidence not loaded)."""
        clause, args = _where(filters)
        rows = self.database.query(f"{_SELECT}{clause} ORDER BY decided DESC, id DESC LIMIT ? OFFSET ?",
                                   (*args, max(0, int(limit)), max(0, int(offset))))
        return self._with_claims([_incident(row) for row in rows])


def _where(filters: IncidentFilters) -> tuple[str, tuple[Any, ...]]:
    return where((
        ("(reference_id = ? OR id IN (SELECT incident_id FROM incident_claims WHERE reference_id = ?))",
         None if filters.reference_id is None else (filters.reference_id, filters.reference_id)),
        ("stream_id", filters.stream_id), ("status", filters.status),
        ("(owner = ? OR id IN (SELECT incident_id FROM incident_claims WHERE owner = ?))",
         None if filters.owner is None else (filters.owner, filters.owner)),
        ("platform", filters.platform),
        ("live", None if filters.live is None else int(bool(filters.live))),
        ("decided >= ?", filters.since), ("decided < ?", filters.until),
    ))


def _incident(row: Row) -> Incident:
    values = dict(zip(_COLUMNS, row))
    values["live"] = bool(values["live"])
    values["segments"] = json.loads(values["segments"])
    return Incident(**values)
"""Webhooks: endpoints, events, the outbox and the delivery log
(``webhook_endpoints``, ``events``, ``outbox``, ``webhook_deliveries``)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from guard.errors import NotFoundError
from guard.storage.protocols import Connection, Database, Row
from guard.storage.records import (
    Delivery,
    DeliveryAttempt,
    DueDelivery,
    Event,
    OutboxEntry,
    WebhookEndpoint,
)
from guard.storage.sql import insert_returning_id, where

_ENDPOINT_COLUMNS = "id, owner, url, secret, events, active, created"
_EVENT_COLUMNS = "id, type, created, owner, platform, incident_id, stream_id, body"
_OUTBOX_COLUMNS = ("o.id, o.event_id, o.endpoint_id, o.status, o.attempts, o.next_attempt, o.created,"
                   " o.delivered, o.last_error, e.type")
_DELIVERY_COLUMNS = "id, outbox_id, event_id, endpoint_id, attempt, at, status_code, error, duration_ms"

# Backend-specific: SQLite serialises this select-then-lease under the transaction's
# BEGIN IMMEDIATE lock. PostgreSQL needs "FOR UPDATE OF o SKIP LOCKED" at the end instead.
_SELECT_DUE = (
    "SELECT o.id, o.event_id, o.endpoint_id, o.attempts, e.type, e.body, e.incident_id, w.url, w.secret"
    " FROM outbox o JOIN events e ON e.id = o.event_id JOIN webhook_endpoints w ON w.id = o.endpoint_id"
    " WHERE o.status = 'pending' AND o.next_attempt <= ? AND o.lease_until <= ? AND w.active = 1"
    " ORDER BY o.next_attempt, o.id LIMIT ?"
)


class WebhookRepository:
    """Where events go (endpoints), what was published (events), what still has to be sent
    (outbox, leased while in flight) and every HTTP attempt made (deliveries)."""

    def __init__(self, database: Database):
        self.database = database

    # -- endpoints ----------------------------------------------------------------------------

    def save_endpoint(self, *, owner: str, url: str, secret: str, events: Iterable[str], created: float) -> int:
        """Register ``(owner, url)``, or give an existing one this secret and these events and
        reactivate it; return its id."""
        with self.database.transaction() as db:
            return insert_returning_id(
                db,
                "INSERT INTO webhook_endpoints (owner, url, secret, events, active, created)"
                " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (owner, url) DO UPDATE"
                " SET secret = excluded.secret, events = excluded.events, active = 1 RETURNING id",
                (owner, url, secret, json.dumps(list(events)), created),
            )

    def endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        """One endpoint; :class:`NotFoundError` if unknown."""
        rows = self.database.query(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?",
                                   (int(endpoint_id),))
        if not rows:
            raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
        return _endpoint(rows[0])

    def endpoints(self, *, owner: str | None = None, active_only: bool = False) -> list[WebhookEndpoint]:
        """Endpoints by id, optionally one owner's and/or only active ones."""
        clause, args = where((("owner", owner), ("active", 1 if active_only else None)))
        rows = self.database.query(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints{clause} ORDER BY id", args)
        return [_endpoint(r) for r in rows]

    def set_endpoint_active(self, endpoint_id: int, active: bool) -> None:
        """Pause or resume an endpoint."""
        with self.database.transaction() as db:
            db.execute("UPDATE webhook_endpoints SET active = ? WHERE id = ?", (1 if active else 0, int(endpoint_id)))

    def remove_endpoint(self, endpoint_id: int) -> None:
        """Delete an endpoint and its outbox rows (its delivery log stays)."""
        with self.database.transaction() as db:
            db.execute("DELETE FROM outbox WHERE endpoint_id = ?", (int(endpoint_id),))
            db.execute("DELETE FROM webhook_endpoints WHERE id = ?", (int(endpoint_id),))

    # -- events -------------------------------------------------------------------------------

    def publish(self, event: Event, endpoint_ids: Iterable[int]) -> None:
        """Store an event and one ``pending`` outbox row per endpoint, due now, atomically."""
        with self.database.transaction() as db:
            db.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (event.id, event.type, event.created, event.owner, event.platform, event.incident_id,
                        event.stream_id, event.body))
            for endpoint_id in endpoint_ids:
                db.execute("INSERT INTO outbox (event_id, endpoint_id, status, next_attempt, created)"
                           " VALUES (?, ?, 'pending', ?, ?)",
                           (event.id, int(endpoint_id), event.created, event.created))

    def event(self, event_id: str) -> Event:
        """One stored event; :class:`NotFoundError` if unknown."""
        rows = self.database.query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        if not rows:
            raise NotFoundError(f"event {event_id} not found")
        return Event(*rows[0])

    def events(self, *, owner: str | None = None, platform: str | None = None, incident_id: int | None = None,
               stream_id: str | None = None, limit: int = 100) -> list[Event]:
        """Stored events matching every given filter, newest first."""
        clause, args = where((("owner", owner), ("platform", platform), ("incident_id", incident_id),
                              ("stream_id", stream_id)))
        rows = self.database.query(f"SELECT {_EVENT_COLUMNS} FROM events{clause} ORDER BY created DESC LIMIT ?",
                                   (*args, int(limit)))
        return [Event(*r) for r in rows]

    # -- outbox -------------------------------------------------------------------------------

    def outbox(self, *, status: str | None = None, endpoint_id: int | None = None, event_id: str | None = None,
               owner: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Outbox rows matching every given filter (``owner``: the endpoint's), oldest first."""
        clause, args = where((("o.status", status), ("o.endpoint_id", endpoint_id), ("o.event_id", event_id),
                              ("w.owner", owner)))
        rows = self.database.query(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox o JOIN events e ON e.id = o.event_id"
            f" JOIN webhook_endpoints w ON w.id = o.endpoint_id{clause} ORDER BY o.id LIMIT ?", (*args, int(limit)))
        return [OutboxEntry(*r) for r in rows]

    def counts_by_status(self) -> dict[str, int]:
        """Number of outbox rows per status (statuses with none are absent)."""
        rows = self.database.query("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {status: int(n) for status, n in rows}

    def pending_count(self) -> int:
        """How many outbox rows still wait for delivery."""
        return int(self.database.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0])

    def undelivered_count(self, event_id: str) -> int:
        """How many of an event's outbox rows are not delivered (pending or failed)."""
        rows = self.database.query("SELECT COUNT(*) FROM outbox WHERE event_id = ? AND status != 'delivered'",
                                   (event_id,))
        return int(rows[0][0])

    def claim_due(self, *, now: float, limit: int, lease_until: float) -> list[DueDelivery]:
        """Lease up to ``limit`` pending rows of active endpoints that are due and not leased,
        earliest first, until ``lease_until``; return them with what sending needs."""
        with self.database.transaction() as db:
            rows = db.execute(_SELECT_DUE, (now, now, int(limit))).fetchall()
            for row in rows:
                db.execute("UPDATE outbox SET lease_until = ? WHERE id = ?", (lease_until, row[0]))
        return [DueDelivery(*row) for row in rows]

    def next_due(self) -> float | None:
        """When the earliest pending row of an active endpoint may be sent (its retry time or
        the end of its lease, whichever is later); None when nothing is pending."""
        rows = self.database.query(
            "SELECT MIN(CASE WHEN o.next_attempt > o.lease_until THEN o.next_attempt ELSE o.lease_until END)"
            " FROM outbox o JOIN webhook_endpoints w ON w.id = o.endpoint_id"
            " WHERE o.status = 'pending' AND w.active = 1")
        due = rows[0][0] if rows else None
        return None if due is None else float(due)

    def record_delivery(self, attempt: DeliveryAttempt, *, status: str, next_attempt: float) -> None:
        """Log an attempt at an outbox row and set the row's new state, releasing its lease:
        ``delivered`` (at ``attempt.at``), ``pending`` (retry at ``next_attempt``) or ``failed``."""
        with self.database.transaction() as db:
            _insert_attempt(db, attempt)
            db.execute("UPDATE outbox SET status = ?, attempts = ?, next_attempt = ?, lease_until = 0,"
                       " delivered = ?, last_error = ? WHERE id = ?",
                       (status, attempt.attempt, next_attempt, attempt.at if status == "delivered" else None,
                        attempt.error, attempt.outbox_id))

    def log_attempt(self, attempt: DeliveryAttempt) -> None:
        """Log an attempt that belongs to no outbox row (a test event)."""
        with self.database.transaction() as db:
            _insert_attempt(db, attempt)

    def prune(self, cutoff: float) -> int:
        """Delete delivered/failed outbox rows created and log lines made before ``cutoff``;
        return how many outbox rows went."""
        with self.database.transaction() as db:
            gone = db.execute("DELETE FROM outbox WHERE status != 'pending' AND created < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM webhook_deliveries WHERE at < ?", (cutoff,))
        return int(gone)

    # -- delivery log -------------------------------------------------------------------------

    def deliveries(self, *, event_id: str | None = None, endpoint_id: int | None = None,
                   limit: int = 100) -> list[Delivery]:
        """Logged attempts matching every given filter, newest first."""
        clause, args = where((("event_id", event_id), ("endpoint_id", endpoint_id)))
        rows = self.database.query(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries{clause} ORDER BY id DESC LIMIT ?",
            (*args, int(limit)))
        return [Delivery(*r) for r in rows]

    def failed_attempts(self) -> int:
        """Logged attempts without a 2xx answer, all time."""
        rows = self.database.query("SELECT COUNT(*) FROM webhook_deliveries WHERE status_code IS NULL"
                                   " OR status_code < 200 OR status_code >= 300")
        return int(rows[0][0])


def _insert_attempt(db: Connection, attempt: DeliveryAttempt) -> None:
    db.execute("INSERT INTO webhook_deliveries (outbox_id, event_id, endpoint_id, attempt, at, status_code,"
               " error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (attempt.outbox_id, attempt.event_id, attempt.endpoint_id, attempt.attempt, attempt.at,
                attempt.status_code, attempt.error, attempt.duration_ms))


def _endpoint(row: Row) -> WebhookEndpoint:
    endpoint_id, owner, url, secret, events, active, created = tuple(row)
    return WebhookEndpoint(endpoint_id, owner, url, secret, tuple(json.loads(events)), bool(active), created)

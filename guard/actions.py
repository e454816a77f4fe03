"""Acting on incidents: policies, allowlists, and signed webhooks from a durable outbox.

Policies
    A reference's ``policy`` says what a copy of it triggers: ``flag`` (record, notify, keep
    monitoring) or ``cut`` (record, send the ``stream.cut`` takedown, stop monitoring). An
    account on the reference's ``allowlist`` (a licensed channel) never triggers anything.

Webhook endpoints
    Registered per ``owner`` (:meth:`ActionCenter.add_endpoint`): an endpoint receives the events
    whose incident belongs to that owner (the rights holder of the reference) or whose stream
    was submitted by that owner as a platform. Owner ``"*"`` receives every event (the endpoint
    from ``settings.webhook`` or ``guard monitor --webhook-url`` is registered so).

Events
    JSON bodies ``{"id", "type", "created", "incident", "stream"}``; types are
    ``incident.flagged``, ``incident.updated`` and ``stream.cut``. :meth:`ActionCenter.publish`
    stores the event and one outbox row per receiving endpoint in one transaction, so an event
    is never lost once published, even if guard stops before sending it.

Delivery
    A dispatcher thread POSTs due outbox rows (a few at a time, in worker threads), retries with
    exponential backoff (``backoff_initial`` doubling to ``backoff_max``, ±10 % jitter) until a
    2xx answer or ``max_attempts``; every attempt is written to the delivery log. A row is leased
    while in flight so two guard processes sharing a catalog do not send it twice at once. The
    same body goes out on every retry, with headers::

        Content-Type: application/json
        Guard-Event-Id: evt_…            (also sent as Idempotency-Key: deduplicate on it)
        Guard-Event-Type: incident.flagged
        Guard-Timestamp: 1718000000      (Unix seconds of this attempt)
        Guard-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

    Verifying on the receiver (Python; any language with HMAC-SHA256 works the same)::

        import hashlib, hmac, time

        def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
            timestamp = headers["Guard-Timestamp"]
            expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            given = headers["Guard-Signature"].removeprefix("v1=")
            fresh = abs(time.time() - int(timestamp)) <= tolerance
            return fresh and hmac.compare_digest(expected, given)

    Delivery is at-least-once; a receiver that records ``Guard-Event-Id`` and ignores repeats
    sees every event exactly once (:func:`verify_signature` does the check above).

Address policy
    Every attempt resolves the endpoint's host again, checks every address it resolves to
    (:func:`guard.urlpolicy.check_addresses`: no loopback/private/link-local/reserved address
    unless ``allow_private_addresses`` is set *now*) and connects to those checked addresses
    only, sending the original ``Host`` header and, for https, the host name as SNI with the
    certificate verified against it. So an endpoint registered while private addresses were
    allowed stops receiving once they are not, and a host name re-pointed to a private address
    after registration (DNS rebinding) never receives. A refused attempt is logged with its
    reason and, like a ``410`` answer, fails the outbox row at once; a host that cannot be
    resolved is an ordinary failure, retried with backoff. Redirects are never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

from guard import __version__, urlpolicy
from guard.config import WebhookSettings
from guard.errors import NotFoundError, URLPolicyError, WebhookError
from guard.incidents import iso
from guard.models import Reference
from guard.store import Catalog
from guard.urlpolicy import check_addresses

#: Type of the one-off event ``send_test`` sends.
TEST_EVENT = "webhook.test"

log = logging.getLogger(__name__)

#: Event types guard sends.
EVENT_TYPES = ("incident.flagged", "incident.updated", "stream.cut")
#: Signature scheme version written in ``Guard-Signature``.
SIGNATURE_VERSION = "v1"
#: HTTP statuses after which a delivery is not retried (the receiver says the endpoint is gone).
PERMANENT_FAILURES = (410,)

DeliveryListener = Callable[["Event", float], None]
#: Host name → its addresses (the system resolver unless a caller passes another).
Resolver = Callable[[str], Sequence]


# -- policies and allowlists --------------------------------------------------------------------


def normalise_account(account: str) -> str:
    """Accounts compare case-insensitively, without surrounding spaces."""
    return account.strip().casefold()


def allowlisted(reference: Reference, account: str) -> bool:
    """Whether ``account`` is licensed to carry ``reference`` (on its allowlist)."""
    wanted = normalise_account(account)
    return any(normalise_account(a) == wanted for a in reference.allowlist)


def action_for(reference: Reference, account: str) -> str | None:
    """What a copy of ``reference`` on ``account``'s stream triggers: ``flag``, ``cut`` or None."""
    if allowlisted(reference, account):
        return None
    return reference.policy


# -- signatures ---------------------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``Guard-Signature`` header value."""
    return f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str, timestamp: str | int, body: bytes, header: str, *, tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookError` unless ``header`` signs ``body`` at a fresh ``timestamp``."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise WebhookError("missing or malformed Guard-Timestamp") from None
    if abs((time.time() if now is None else now) - ts) > tolerance:
        raise WebhookError("stale Guard-Timestamp (replay?)")
    prefix = f"{SIGNATURE_VERSION}="
    given = header[len(prefix):] if isinstance(header, str) and header.startswith(prefix) else ""
    if not hmac.compare_digest(sign(secret, ts, body), given):
        raise WebhookError("signature does not verify")


# -- data shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where one owner's events go, and the secret that signs them."""

    id: int
    owner: str
    url: str
    secret: str
    events: tuple[str, ...]
    active: bool
    created: float

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to ``event_type``."""
        return "*" in self.events or event_type in self.events

    def to_dict(self, reveal_secret: bool = False) -> dict:
        """JSON-ready form; the secret is shown only when asked (e.g. right after creation)."""
        out = asdict(self)
        out["events"] = list(self.events)
        out["created"] = iso(self.created)
        if not reveal_secret:
            out["secret"] = self.secret[:4] + "…"
        return out


@dataclass(frozen=True)
class Event:
    """A webhook event as stored: ``body`` is the exact JSON sent."""

    id: str
    type: str
    created: float
    owner: str
    platform: str
    incident_id: int | None
    stream_id: str | None
    body: str

    def to_dict(self) -> dict:
        """JSON-ready form with the body parsed."""
        out = asdict(self)
        out["created"] = iso(self.created)
        out["body"] = json.loads(self.body)
        return out


@dataclass(frozen=True)
class OutboxEntry:
    """One event for one endpoint: ``pending`` until delivered or ``failed`` after the last retry."""

    id: int
    event_id: str
    endpoint_id: int
    status: str
    attempts: int
    next_attempt: float
    created: float
    delivered: float | None
    last_error: str | None
    event_type: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = asdict(self)
        for key in ("next_attempt", "created", "delivered"):
            out[key] = iso(out[key])
        return out


@dataclass(frozen=True)
class Delivery:
    """One HTTP attempt from the delivery log."""

    id: int
    outbox_id: int
    event_id: str
    endpoint_id: int
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float

    def to_dict(self) -> dict:
        """JSON-ready form."""
        out = asdict(self)
        out["at"] = iso(self.at)
        return out


_OUTBOX_COLUMNS = ("o.id, o.event_id, o.endpoint_id, o.status, o.attempts, o.next_attempt, o.created,"
                   " o.delivered, o.last_error, e.type")


class ActionCenter:
    """Webhook endpoints, the event outbox, its dispatcher and the delivery log.

    ``resolver`` (host → addresses) replaces the system resolver, e.g. to pin names in tests.
    """

    def __init__(self, catalog: Catalog, settings: WebhookSettings | None = None, *,
                 allow_private_addresses: bool = False, resolver: Resolver | None = None):
        self.catalog = catalog
        self.settings = settings or WebhookSettings()
        self.allow_private_addresses = allow_private_addresses
        self.resolver = resolver
        self._listeners: list[DeliveryListener] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._start_lock = threading.Lock()
        if self.settings.url:
            if self.settings.secret:
                self.ensure_endpoint("*", self.settings.url, self.settings.secret)
            else:
                log.warning("webhook url set without a secret: not registered")

    # -- endpoints ----------------------------------------------------------------------------

    def add_endpoint(self, owner: str, url: str, secret: str | None = None,
                     events: tuple[str, ...] | list[str] = ("*",)) -> WebhookEndpoint:
        """Register an endpoint for ``owner``'s events; a secret is generated when none is given."""
        self._check_endpoint(url, events)
        secret = secret or secrets.token_urlsafe(32)
        with self.catalog.transaction() as db:
            existing = db.execute("SELECT id FROM webhook_endpoints WHERE owner = ? AND url = ?", (owner, url)).fetchone()
            if existing:
                db.execute("UPDATE webhook_endpoints SET secret = ?, events = ?, active = 1 WHERE id = ?",
                           (secret, json.dumps(list(events)), existing[0]))
                endpoint_id = existing[0]
            else:
                cursor = db.execute(
                    "INSERT INTO webhook_endpoints (owner, url, secret, events, active, created) VALUES (?, ?, ?, ?, 1, ?)",
                    (owner, url, secret, json.dumps(list(events)), time.time()))
                endpoint_id = cursor.lastrowid
        return self.endpoint(int(endpoint_id))

    def ensure_endpoint(self, owner: str, url: str, secret: str) -> WebhookEndpoint:
        """Register ``(owner, url)`` with ``secret`` unless it already is, identically."""
        for endpoint in self.endpoints(owner):
            if endpoint.url == url and endpoint.secret == secret and endpoint.active:
                return endpoint
        return self.add_endpoint(owner, url, secret)

    def endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        """One endpoint; :class:`NotFoundError` if unknown."""
        rows = self.catalog.query(
            "SELECT id, owner, url, secret, events, active, created FROM webhook_endpoints WHERE id = ?",
            (int(endpoint_id),))
        if not rows:
            raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
        return _endpoint(rows[0])

    def endpoints(self, owner: str | None = None, *, active_only: bool = False) -> list[WebhookEndpoint]:
        """Every endpoint, or one owner's."""
        sql = "SELECT id, owner, url, secret, events, active, created FROM webhook_endpoints"
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if active_only:
            clauses.append("active = 1")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [_endpoint(r) for r in self.catalog.query(sql + " ORDER BY id", tuple(args))]

    def set_endpoint_active(self, endpoint_id: int, active: bool) -> WebhookEndpoint:
        """Pause or resume deliveries to an endpoint (paused rows wait, they are not dropped)."""
        self.endpoint(endpoint_id)
        with self.catalog.transaction() as db:
            db.execute("UPDATE webhook_endpoints SET active = ? WHERE id = ?", (1 if active else 0, endpoint_id))
        if active:
            self._wake.set()
        return self.endpoint(endpoint_id)

    def remove_endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        """Delete an endpoint and its undelivered outbox rows."""
        endpoint = self.endpoint(endpoint_id)
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM outbox WHERE endpoint_id = ?", (endpoint_id,))
            db.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
        return endpoint

    def _check_endpoint(self, url: str, events) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError(f"webhook url must be http(s)://host/…, not {url!r}")
        unknown = [e for e in events if e != "*" and e not in EVENT_TYPES]
        if unknown:
            raise WebhookError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        if self.allow_private_addresses:
            return  # any address will do; each delivery resolves (and checks) the host again
        try:
            check_addresses(parts.hostname, self._resolve(parts.hostname))
        except URLPolicyError as exc:
            raise WebhookError(f"webhook url refused: {exc}") from None

    def _resolve(self, host: str) -> list:
        """The host's addresses; :class:`URLPolicyError` if it cannot be resolved."""
        if self.resolver is None:
            return urlpolicy._resolve(host)
        try:
            return list(self.resolver(host))
        except (OSError, UnicodeError) as exc:
            raise URLPolicyError(f"{host}: cannot be resolved ({exc})") from None

    # -- events -------------------------------------------------------------------------------

    def publish(
        self,
        event_type: str,
        *,
        owner: str,
        platform: str,
        incident: dict | None = None,
        stream: dict | None = None,
    ) -> Event:
        """Store an event and queue it for every endpoint of ``owner``, ``platform`` and ``"*"``."""
        if event_type not in EVENT_TYPES:
            raise WebhookError(f"unknown event type {event_type!r}")
        created = time.time()
        event_id = "evt_" + uuid.uuid4().hex
        body = {"id": event_id, "type": event_type, "created": iso(created), "incident": incident, "stream": stream}
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        incident_id = incident.get("id") if incident else None
        stream_id = (stream or {}).get("id") or (incident or {}).get("stream_id")
        receivers = [e for e in self.endpoints(active_only=False) if e.owner in (owner, platform, "*") and e.wants(event_type)]
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO events (id, type, created, owner, platform, incident_id, stream_id, body)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (event_id, event_type, created, owner, platform, incident_id, stream_id, text))
            for endpoint in receivers:
                db.execute("INSERT INTO outbox (event_id, endpoint_id, status, next_attempt, created)"
                           " VALUES (?, ?, 'pending', ?, ?)", (event_id, endpoint.id, created, created))
        event = Event(event_id, event_type, created, owner, platform, incident_id, stream_id, text)
        log.info("event %s %s → %d endpoint(s)", event_type, event_id, len(receivers))
        if receivers:
            self.start()
            self._wake.set()
        return event

    def event(self, event_id: str) -> Event:
        """One stored event."""
        rows = self.catalog.query("SELECT id, type, created, owner, platform, incident_id, stream_id, body"
                                  " FROM events WHERE id = ?", (event_id,))
        if not rows:
            raise NotFoundError(f"event {event_id} not found")
        return Event(*rows[0])

    def events(self, *, owner: str | None = None, platform: str | None = None, incident_id: int | None = None,
               stream_id: str | None = None, limit: int = 100) -> list[Event]:
        """Stored events, newest first, filtered."""
        clauses, args = [], []
        for column, value in (("owner", owner), ("platform", platform), ("incident_id", incident_id),
                              ("stream_id", stream_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self.catalog.query("SELECT id, type, created, owner, platform, incident_id, stream_id, body"
                                  f" FROM events{where} ORDER BY created DESC LIMIT ?", (*args, int(limit)))
        return [Event(*r) for r in rows]

    def outbox(self, *, status: str | None = None, endpoint_id: int | None = None, event_id: str | None = None,
               owner: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Outbox rows, oldest first, filtered (``owner`` is the endpoint's owner)."""
        clauses, args = [], []
        for column, value in (("o.status", status), ("o.endpoint_id", endpoint_id), ("o.event_id", event_id),
                              ("w.owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self.catalog.query(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox o JOIN events e ON e.id = o.event_id"
            f" JOIN webhook_endpoints w ON w.id = o.endpoint_id{where} ORDER BY o.id LIMIT ?", (*args, int(limit)))
        return [OutboxEntry(*r) for r in rows]

    def deliveries(self, *, event_id: str | None = None, endpoint_id: int | None = None,
                   limit: int = 100) -> list[Delivery]:
        """The delivery log (every HTTP attempt), newest first."""
        clauses, args = [], []
        if event_id is not None:
            clauses.append("event_id = ?")
            args.append(event_id)
        if endpoint_id is not None:
            clauses.append("endpoint_id = ?")
            args.append(endpoint_id)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self.catalog.query(
            "SELECT id, outbox_id, event_id, endpoint_id, attempt, at, status_code, error, duration_ms"
            f" FROM webhook_deliveries{where} ORDER BY id DESC LIMIT ?", (*args, int(limit)))
        return [Delivery(*r) for r in rows]

    def pending(self) -> int:
        """How many outbox rows still wait for delivery."""
        return int(self.catalog.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0])

    def prune(self, older_than: float) -> int:
        """Delete delivered/failed outbox rows and delivery-log lines older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        with self.catalog.transaction() as db:
            gone = db.execute("DELETE FROM outbox WHERE status != 'pending' AND created < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM webhook_deliveries WHERE at < ?", (cutoff,))
        return int(gone)

    def add_listener(self, listener: DeliveryListener) -> None:
        """Call ``listener(event, delivered_at)`` after each successful delivery (from a worker thread)."""
        self._listeners.append(listener)

    # -- dispatcher ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread (idempotent). Pending rows from earlier runs are sent too."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="guard-webhook")
            self._thread = threading.Thread(target=self._run, name="guard-outbox", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the dispatcher thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the dispatcher; deliveries in flight finish (bounded by the HTTP timeout)."""
        with self._start_lock:
            thread, pool = self._thread, self._pool
            if thread is None:
                return
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
            if pool is not None:
                pool.shutdown(wait=True)
            self._thread = self._pool = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        return True

    def wait_delivered(self, event_id: str, timeout: float = 10.0) -> bool:
        """Wait until every outbox row of ``event_id`` is delivered (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.catalog.query("SELECT COUNT(*) FROM outbox WHERE event_id = ? AND status != 'delivered'",
                                      (event_id,))
            if rows[0][0] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _run(self) -> None:
        pool = self._pool
        while not self._stop.is_set():
            try:
                for row in self._claim():
                    with self._inflight_lock:
                        self._inflight += 1
                    pool.submit(self._deliver_safely, row)
                delay = self._next_due_in()
            except Exception:  # noqa: BLE001 — the dispatcher must survive a bad row or a busy catalog
                log.exception("outbox dispatcher error")
                delay = 1.0
            self._wake.wait(delay)
            self._wake.clear()

    def _claim(self) -> list[tuple]:
        with self._inflight_lock:
            free = self.settings.workers - self._inflight
        if free <= 0:
            return []
        now = time.time()
        lease = now + self.settings.timeout + 10.0
        with self.catalog.transaction() as db:
            rows = db.execute(
                "SELECT o.id, o.event_id, o.endpoint_id, o.attempts, e.type, e.body, e.incident_id,"
                " w.url, w.secret FROM outbox o JOIN events e ON e.id = o.event_id"
                " JOIN webhook_endpoints w ON w.id = o.endpoint_id"
                " WHERE o.status = 'pending' AND o.next_attempt <= ? AND o.lease_until <= ? AND w.active = 1"
                " ORDER BY o.next_attempt, o.id LIMIT ?", (now, now, free)).fetchall()
            for row in rows:
                db.execute("UPDATE outbox SET lease_until = ? WHERE id = ?", (lease, row[0]))
        return rows

    def _next_due_in(self) -> float:
        rows = self.catalog.query(
            "SELECT MIN(MAX(o.next_attempt, o.lease_until)) FROM outbox o JOIN webhook_endpoints w"
            " ON w.id = o.endpoint_id WHERE o.status = 'pending' AND w.active = 1")
        due = rows[0][0]
        if due is None:
            return 5.0
        return min(max(due - time.time(), 0.02), 5.0)

    def _deliver_safely(self, row: tuple) -> None:
        try:
            self._deliver(row)
        except Exception:  # noqa: BLE001 — a failed bookkeeping write is retried after the lease
            log.exception("webhook delivery bookkeeping failed")
        finally:
            with self._inflight_lock:
                self._inflight -= 1
            self._wake.set()

    def _deliver(self, row: tuple) -> None:
        outbox_id, event_id, endpoint_id, attempts, event_type, body, incident_id, url, secret = row
        attempt = attempts + 1
        status_code, error, duration_ms, refused = self._post(url, secret, event_id, event_type, body.encode())
        ok = status_code is not None and 200 <= status_code < 300
        now = time.time()
        if ok:
            status, next_attempt = "delivered", now
        elif refused or status_code in PERMANENT_FAILURES or attempt >= self.settings.max_attempts:
            status, next_attempt = "failed", now
        else:
            status, next_attempt = "pending", now + self._backoff(attempt)
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO webhook_deliveries (outbox_id, event_id, endpoint_id, attempt, at, status_code,"
                       " error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (outbox_id, event_id, endpoint_id, attempt, now, status_code, error, duration_ms))
            db.execute("UPDATE outbox SET status = ?, attempts = ?, next_attempt = ?, lease_until = 0,"
                       " delivered = ?, last_error = ? WHERE id = ?",
                       (status, attempt, next_attempt, now if ok else None, error, outbox_id))
        if ok:
            log.info("delivered %s %s to endpoint %d (attempt %d)", event_type, event_id, endpoint_id, attempt)
            event = self.event(event_id)
            for listener in list(self._listeners):
                try:
                    listener(event, now)
                except Exception:  # noqa: BLE001 — a listener's bug must not undo a delivery
                    log.exception("delivery listener failed")
        elif status == "failed":
            log.warning("giving up on %s %s to endpoint %d after %d attempts (%s)",
                        event_type, event_id, endpoint_id, attempt, error)
        else:
            log.info("delivery of %s to endpoint %d failed (%s); retry in %.1f s",
                     event_id, endpoint_id, error, next_attempt - now)

    def send_test(self, endpoint: "WebhookEndpoint") -> dict:
        """POST a signed ``webhook.test`` event to ``endpoint`` now, once (not queued, no retries).

        The attempt is logged with the endpoint's deliveries (outbox id 0) and its answer returned;
        an address the policy refuses is logged too, then raised as :class:`WebhookError`.
        """
        event_id = "evt_test_" + uuid.uuid4().hex
        body = json.dumps({"id": event_id, "type": TEST_EVENT, "created": iso(time.time()), "incident": None,
                           "stream": None}, separators=(",", ":"), sort_keys=True).encode()
        code, error, duration_ms, refused = self._post(endpoint.url, endpoint.secret, event_id, TEST_EVENT, body)
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO webhook_deliveries (outbox_id, event_id, endpoint_id, attempt, at, status_code,"
                       " error, duration_ms) VALUES (0, ?, ?, 1, ?, ?, ?, ?)",
                       (event_id, endpoint.id, time.time(), code, error, duration_ms))
        if refused:
            raise WebhookError(f"webhook url {error}")
        return {"delivered": code is not None and 200 <= code < 300, "event_id": event_id,
                "status_code": code, "error": error, "duration_ms": duration_ms}

    def _post(self, url: str, secret: str, event_id: str, event_type: str, body: bytes) -> "_Attempt":
        """One signed POST to the addresses of ``url``'s host that pass the address policy now."""
        started = time.monotonic()

        def attempt(code: int | None, error: str | None, refused: bool = False) -> _Attempt:
            return _Attempt(code, error, round((time.monotonic() - started) * 1000, 1), refused)

        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return attempt(None, "refused: invalid port in the webhook url", refused=True)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return attempt(None, "refused: not an http(s)://host/… url", refused=True)
        try:
            resolved = self._resolve(parts.hostname)
        except URLPolicyError as exc:
            return attempt(None, str(exc)[:300])  # DNS may answer again later: retried
        try:
            addresses = check_addresses(parts.hostname, resolved,
                                        allow_private_addresses=self.allow_private_addresses)
        except URLPolicyError as exc:
            return attempt(None, f"refused by the address policy: {exc}"[:300], refused=True)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"guard/{__version__}",
            "Guard-Event-Id": event_id,
            "Guard-Event-Type": event_type,
            "Idempotency-Key": event_id,
            "Guard-Timestamp": timestamp,
            "Guard-Signature": signature_header(secret, timestamp, body),
        }
        if parts.scheme == "https":
            connection = _PinnedHTTPSConnection(parts.hostname, port, addresses, self.settings.timeout)
        else:
            connection = _PinnedHTTPConnection(parts.hostname, port, addresses, self.settings.timeout)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(65536)
            code = response.status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return attempt(None, (str(exc) or type(exc).__name__)[:300])
        finally:
            connection.close()
        return attempt(code, None if 200 <= code < 300 else f"HTTP {code}")

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_initial * 2 ** (attempt - 1), self.settings.backoff_max)
        return base * random.uniform(0.9, 1.1)


class _Attempt(NamedTuple):
    """What one POST gave: the HTTP status (None without an answer), the error, its time, and
    whether the address policy refused it (then nothing was sent)."""

    status_code: int | None
    error: str | None
    duration_ms: float
    refused: bool


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to addresses resolved and checked beforehand, never resolving the host again;
    requests still name the host (``Host`` header). A redirect is just a non-2xx answer."""

    def __init__(self, host: str, port: int, addresses: Sequence, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._create_connection = _connector(addresses)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """:class:`_PinnedHTTPConnection` over TLS: SNI and certificate check use the host name."""

    def __init__(self, host: str, port: int, addresses: Sequence, timeout: float):
        # a new default context per attempt: the system CAs (or SSL_CERT_FILE) as they are now
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._create_connection = _connector(addresses)


def _connector(addresses: Sequence):
    """A ``socket.create_connection`` stand-in that tries ``addresses`` in turn, ignoring the host."""

    def connect(address, timeout=None, source_address=None):
        port = address[1]
        error: OSError | None = None
        for ip in dict.fromkeys(addresses):  # getaddrinfo repeats an address per socket type
            try:
                return socket.create_connection((str(ip), port), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    return connect


def _endpoint(row: tuple) -> WebhookEndpoint:
    endpoint_id, owner, url, secret, events, active, created = row
    return WebhookEndpoint(endpoint_id, owner, url, secret, tuple(json.loads(events)), bool(active), created)

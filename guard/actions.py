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
import ipaddress
import json
import logging
import queue
import random
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from typing import Callable, NamedTuple, Sequence

import httpx

from guard import __version__, urlpolicy
from guard.config import WebhookSettings
from guard.errors import URLPolicyError, WebhookError
from guard.models import Reference
from guard.storage.protocols import Database
from guard.storage.records import Delivery, DeliveryAttempt, DueDelivery, Event, OutboxEntry, WebhookEndpoint, iso
from guard.storage.webhooks import WebhookRepository
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


class ActionCenter:
    """Webhook endpoints, the event outbox, its dispatcher and the delivery log.

    ``resolver`` (host → addresses) replaces the system resolver, e.g. to pin names in tests.
    """

    def __init__(self, database: Database, settings: WebhookSettings | None = None, *,
                 allow_private_addresses: bool = False, resolver: Resolver | None = None, dispatch: bool = True):
        self.repository = WebhookRepository(database)
        self.settings = settings or WebhookSettings()
        self.allow_private_addresses = allow_private_addresses
        self.resolver = resolver
        #: Whether this process runs the dispatcher (the ``dispatch`` role); without it, published
        #: events wait in the outbox for a process that does.
        self.dispatches = dispatch
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self._listeners: list[DeliveryListener] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: A fixed set of delivery threads started with the dispatcher: a lazily growing pool would
        #: add threads (and their catalog connections) long after start, which reads as a leak.
        self._workers: list[threading.Thread] = []
        self._queue: queue.SimpleQueue[DueDelivery | None] = queue.SimpleQueue()
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
        endpoint_id = self.repository.save_endpoint(owner=owner, url=url, secret=secret, events=events,
                                                    created=time.time())
        return self.endpoint(endpoint_id)

    def ensure_endpoint(self, owner: str, url: str, secret: str) -> WebhookEndpoint:
        """Register ``(owner, url)`` with ``secret`` unless it already is, identically."""
        for endpoint in self.endpoints(owner):
            if endpoint.url == url and endpoint.secret == secret and endpoint.active:
                return endpoint
        return self.add_endpoint(owner, url, secret)

    def endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        """One endpoint; :class:`NotFoundError` if unknown."""
        return self.repository.endpoint(endpoint_id)

    def endpoints(self, owner: str | None = None, *, active_only: bool = False) -> list[WebhookEndpoint]:
        """Every endpoint, or one owner's."""
        return self.repository.endpoints(owner=owner, active_only=active_only)

    def set_endpoint_active(self, endpoint_id: int, active: bool) -> WebhookEndpoint:
        """Pause or resume deliveries to an endpoint (paused rows wait, they are not dropped)."""
        self.endpoint(endpoint_id)
        self.repository.set_endpoint_active(endpoint_id, active)
        if active:
            self._wake.set()
        return self.endpoint(endpoint_id)

    def remove_endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        """Delete an endpoint and its undelivered outbox rows."""
        endpoint = self.endpoint(endpoint_id)
        self.repository.remove_endpoint(endpoint_id)
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
        event = Event(event_id, event_type, created, owner, platform, incident_id, stream_id, text)
        self.repository.publish(event, [endpoint.id for endpoint in receivers])
        log.info("event %s %s → %d endpoint(s)", event_type, event_id, len(receivers))
        if receivers:
            self.start()
            self._wake.set()
        return event

    def event(self, event_id: str) -> Event:
        """One stored event."""
        return self.repository.event(event_id)

    def events(self, *, owner: str | None = None, platform: str | None = None, incident_id: int | None = None,
               stream_id: str | None = None, limit: int = 100) -> list[Event]:
        """Stored events, newest first, filtered."""
        return self.repository.events(owner=owner, platform=platform, incident_id=incident_id,
                                      stream_id=stream_id, limit=limit)

    def outbox(self, *, status: str | None = None, endpoint_id: int | None = None, event_id: str | None = None,
               owner: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Outbox rows, oldest first, filtered (``owner`` is the endpoint's owner)."""
        return self.repository.outbox(status=status, endpoint_id=endpoint_id, event_id=event_id, owner=owner,
                                      limit=limit)

    def deliveries(self, *, event_id: str | None = None, endpoint_id: int | None = None,
                   limit: int = 100) -> list[Delivery]:
        """The delivery log (every HTTP attempt), newest first."""
        return self.repository.deliveries(event_id=event_id, endpoint_id=endpoint_id, limit=limit)

    def pending(self) -> int:
        """How many outbox rows still wait for delivery."""
        return self.repository.pending_count()

    def outbox_counts(self) -> dict[str, int]:
        """Number of outbox rows per status (``pending``, ``delivered``, ``failed``; absent when none)."""
        return self.repository.counts_by_status()

    def failed_attempts(self) -> int:
        """Delivery attempts without a 2xx answer, all time."""
        return self.repository.failed_attempts()

    def prune(self, older_than: float) -> int:
        """Delete delivered/failed outbox rows and delivery-log lines older than ``older_than`` seconds."""
        return self.repository.prune(time.time() - older_than)

    def add_listener(self, listener: DeliveryListener) -> None:
        """Call ``listener(event, delivered_at)`` after each successful delivery (from a worker thread)."""
        self._listeners.append(listener)

    # -- dispatcher ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread (idempotent). Pending rows from earlier runs are sent too.
        Does nothing in a process without the ``dispatch`` role (see :attr:`dispatches`)."""
        if not self.dispatches:
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._queue = queue.SimpleQueue()
            self._workers = [threading.Thread(target=self._work, args=(self._queue,), name=f"guard-webhook-{n}",
                                              daemon=True) for n in range(self.settings.workers)]
            for worker in self._workers:
                worker.start()
            self._thread = threading.Thread(target=self._run, name="guard-outbox", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the dispatcher thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the dispatcher; deliveries in flight finish (bounded by the HTTP timeout). The
        HTTP client's connections are closed (a later delivery opens new ones)."""
        with self._start_lock:
            thread, workers = self._thread, self._workers
            if thread is not None:
                self._stop.set()
                self._wake.set()
                thread.join(timeout)
                for _ in workers:
                    self._queue.put(None)
                for worker in workers:
                    worker.join()
                self._thread, self._workers = None, []
        with self._http_lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()

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
            if self.repository.undelivered_count(event_id) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for row in self._claim():
                    with self._inflight_lock:
                        self._inflight += 1
                    self._queue.put(row)
                delay = self._next_due_in()
            except Exception:  # noqa: BLE001 — the dispatcher must survive a bad row or a busy catalog
                log.exception("outbox dispatcher error")
                delay = 1.0
            self._wake.wait(delay)
            self._wake.clear()

    def _claim(self) -> list[DueDelivery]:
        with self._inflight_lock:
            free = self.settings.workers - self._inflight
        if free <= 0:
            return []
        now = time.time()
        return self.repository.claim_due(now=now, limit=free, lease_until=now + self.settings.timeout + 10.0)

    def _next_due_in(self) -> float:
        due = self.repository.next_due()
        if due is None:
            return 5.0
        return min(max(due - time.time(), 0.02), 5.0)

    def _work(self, rows: queue.SimpleQueue[DueDelivery | None]) -> None:
        try:  # this thread's catalog connection, opened now rather than at its first delivery
            self.repository.next_due()
        except Exception:  # noqa: BLE001 — a busy catalog now is retried at the first delivery
            log.exception("webhook worker could not open the catalog")
        while (row := rows.get()) is not None:
            self._deliver_safely(row)

    def _deliver_safely(self, row: DueDelivery) -> None:
        try:
            self._deliver(row)
        except Exception:  # noqa: BLE001 — a failed bookkeeping write is retried after the lease
            log.exception("webhook delivery bookkeeping failed")
        finally:
            with self._inflight_lock:
                self._inflight -= 1
            self._wake.set()

    def _deliver(self, row: DueDelivery) -> None:
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
        self.repository.record_delivery(
            DeliveryAttempt(outbox_id, event_id, endpoint_id, attempt, now, status_code, error, duration_ms),
            status=status, next_attempt=next_attempt)
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
        self.repository.log_attempt(DeliveryAttempt(0, event_id, endpoint.id, 1, time.time(), code, error, duration_ms))
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
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            return attempt(None, "refused: the webhook url's host name is not valid", refused=True)
        timestamp = str(int(time.time()))
        headers = {
            "Host": host if port == _DEFAULT_PORTS[parts.scheme] else f"{_bracketed(host)}:{port}",
            "Content-Type": "application/json",
            "User-Agent": f"guard/{__version__}",
            "Guard-Event-Id": event_id,
            "Guard-Event-Type": event_type,
            "Idempotency-Key": event_id,
            "Guard-Timestamp": timestamp,
            "Guard-Signature": signature_header(secret, timestamp, body),
        }
        # TLS names the host (SNI) and checks the certificate against it, not against the address.
        extensions = {"sni_hostname": host} if parts.scheme == "https" and not _is_address(host) else {}
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        client = self._client()
        failure: Exception | None = None
        for ip in dict.fromkeys(str(a) for a in addresses):  # getaddrinfo repeats an address per socket type
            try:
                request = client.build_request("POST", f"{parts.scheme}://{_bracketed(ip)}:{port}{target}",
                                               content=body, headers=headers, extensions=extensions)
                response = client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc  # this address is unreachable: try the next checked one
                continue
            except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
                return attempt(None, _describe(exc))
            try:
                _drain(response, 65536)
            except (httpx.HTTPError, OSError):
                pass  # the status line came: the answer counts, its body does not
            finally:
                response.close()
            code = response.status_code
            return attempt(code, None if 200 <= code < 300 else f"HTTP {code}")
        return attempt(None, _describe(failure) if failure else "no address to connect to")

    def _client(self) -> httpx.Client:
        """This center's HTTP client (made on first use, closed by :meth:`stop`): kept-alive
        connections per host and address, explicit timeouts, no redirects, no proxy or other
        setting from the environment."""
        with self._http_lock:
            if self._http is None:
                s = self.settings
                self._http = httpx.Client(
                    transport=_PinnedTransport(s.workers),
                    timeout=httpx.Timeout(connect=s.connect_timeout or s.timeout, read=s.timeout, write=s.timeout,
                                          pool=s.pool_timeout or s.timeout),
                    follow_redirects=False, trust_env=False,
                )
            return self._http

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


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _bracketed(host: str) -> str:
    """``host`` as it appears in a URL or ``Host`` header (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def _describe(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]


def _drain(response: httpx.Response, limit: int) -> None:
    """Read at most ``limit`` bytes of an answer's body (a receiver may not stall us with a big one)."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read >= limit:
            break


class _PinnedTransport(httpx.BaseTransport):
    """Connection pools per (scheme, address, port, TLS host name).

    Requests name an address checked beforehand in their URL (so nothing resolves the host
    again) and the host in their ``Host`` header and ``sni_hostname`` extension. Keying pools by
    the TLS name too means a connection whose certificate was verified for one host is never
    reused for another host that shares its address (a CDN, or a tenant's look-alike endpoint).
    At most ``max_pools`` are kept; the least recently used one is closed beyond that.
    """

    def __init__(self, connections: int, max_pools: int = 64):
        self.connections = connections
        self.max_pools = max_pools
        self._pools: OrderedDict[tuple, httpx.HTTPTransport] = OrderedDict()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host, request.url.port, request.extensions.get("sni_hostname"))
        return self._pool(key).handle_request(request)

    def _pool(self, key: tuple) -> httpx.HTTPTransport:
        evicted = None
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=self.connections,
                                  keepalive_expiry=30.0)
            # a default context when the pool is made: the system CAs (or SSL_CERT_FILE) as they are now
            pool = httpx.HTTPTransport(verify=ssl.create_default_context(), trust_env=False, limits=limits)
            self._pools[key] = pool
            if len(self._pools) > self.max_pools:
                _, evicted = self._pools.popitem(last=False)
        if evicted is not None:
            evicted.close()
        return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close()

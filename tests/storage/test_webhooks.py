"""WebhookRepository (endpoints, events, outbox, delivery log) on a real SQLite catalog file."""

from __future__ import annotations

import pytest

from guard.errors import NotFoundError
from guard.storage.records import DeliveryAttempt, Event
from guard.storage.webhooks import WebhookRepository
from guard.store import Catalog


@pytest.fixture
def path(tmp_path):
    return tmp_path / "catalog.sqlite"


@pytest.fixture
def webhooks(path):
    catalog = Catalog(path)
    yield WebhookRepository(catalog)
    catalog.close()


def _endpoint(webhooks: WebhookRepository, owner: str = "league", url: str = "https://hooks.example/a") -> int:
    return webhooks.save_endpoint(owner=owner, url=url, secret="s3cret", events=["*"], created=100.0)


def _event(event_id: str, created: float = 200.0, owner: str = "league", platform: str = "tube",
           incident_id: int | None = 7, stream_id: str | None = "s1") -> Event:
    body = f'{{"id":"{event_id}"}}'
    return Event(event_id, "incident.flagged", created, owner, platform, incident_id, stream_id, body)


def _attempt(due, at: float, status_code: int | None, error: str | None = None) -> DeliveryAttempt:
    return DeliveryAttempt(due.outbox_id, due.event_id, due.endpoint_id, due.attempts + 1, at, status_code, error, 12.5)


def test_save_endpoint_registers_once_per_owner_and_url(webhooks):
    first = _endpoint(webhooks)
    webhooks.set_endpoint_active(first, False)
    again = webhooks.save_endpoint(owner="league", url="https://hooks.example/a", secret="new",
                                   events=["stream.cut"], created=999.0)
    assert again == first
    endpoint = webhooks.endpoint(first)
    assert (endpoint.secret, endpoint.events, endpoint.active, endpoint.created) == ("new", ("stream.cut",), True,
                                                                                     100.0)
    other = _endpoint(webhooks, owner="tube")
    assert other != first
    with pytest.raises(NotFoundError, match="webhook endpoint 999 not found"):
        webhooks.endpoint(999)


def test_endpoints_filter_by_owner_and_activity(webhooks):
    a, b, c = _endpoint(webhooks), _endpoint(webhooks, url="https://hooks.example/b"), _endpoint(webhooks, owner="tube")
    webhooks.set_endpoint_active(b, False)
    assert [e.id for e in webhooks.endpoints()] == [a, b, c]
    assert [e.id for e in webhooks.endpoints(owner="league")] == [a, b]
    assert [e.id for e in webhooks.endpoints(active_only=True)] == [a, c]
    assert [e.id for e in webhooks.endpoints(owner="league", active_only=True)] == [a]


def test_publish_stores_the_event_and_one_pending_row_per_endpoint(webhooks):
    a, b = _endpoint(webhooks), _endpoint(webhooks, owner="tube")
    webhooks.publish(_event("evt_1"), [a, b])
    webhooks.publish(_event("evt_2", created=300.0, owner="studio", incident_id=None, stream_id="s2"), [])
    assert webhooks.event("evt_1") == _event("evt_1")
    assert [e.id for e in webhooks.events()] == ["evt_2", "evt_1"]
    assert [e.id for e in webhooks.events(owner="league")] == ["evt_1"]
    assert [e.id for e in webhooks.events(stream_id="s2", limit=5)] == ["evt_2"]
    assert [e.id for e in webhooks.events(incident_id=7, platform="tube")] == ["evt_1"]
    rows = webhooks.outbox()
    assert [(r.event_id, r.endpoint_id, r.status, r.attempts, r.next_attempt, r.event_type) for r in rows] == [
        ("evt_1", a, "pending", 0, 200.0, "incident.flagged"), ("evt_1", b, "pending", 0, 200.0, "incident.flagged")]
    assert [r.endpoint_id for r in webhooks.outbox(owner="tube")] == [b]
    assert webhooks.pending_count() == 2 and webhooks.undelivered_count("evt_1") == 2
    with pytest.raises(NotFoundError, match="event evt_x not found"):
        webhooks.event("evt_x")


def test_claim_due_leases_rows_of_active_endpoints_only(webhooks):
    a, paused = _endpoint(webhooks), _endpoint(webhooks, url="https://hooks.example/paused")
    webhooks.set_endpoint_active(paused, False)
    webhooks.publish(_event("evt_1"), [a, paused])
    webhooks.publish(_event("evt_2", created=210.0), [a])
    assert webhooks.claim_due(now=150.0, limit=10, lease_until=170.0) == [], "nothing is due yet"
    claimed = webhooks.claim_due(now=250.0, limit=1, lease_until=260.0)
    assert [(d.event_id, d.endpoint_id, d.attempts, d.event_type, d.url, d.secret) for d in claimed] == [
        ("evt_1", a, 0, "incident.flagged", "https://hooks.example/a", "s3cret")]
    assert claimed[0].body == '{"id":"evt_1"}' and claimed[0].incident_id == 7
    rest = webhooks.claim_due(now=250.0, limit=10, lease_until=260.0)
    assert [d.event_id for d in rest] == ["evt_2"], "a leased row is not claimed again"
    assert webhooks.claim_due(now=255.0, limit=10, lease_until=265.0) == []
    assert webhooks.next_due() == 260.0, "the earliest lease end of an active endpoint's pending row"
    assert [d.event_id for d in webhooks.claim_due(now=261.0, limit=10, lease_until=280.0)] == ["evt_1", "evt_2"]


def test_two_databases_on_one_file_never_claim_the_same_row(path, webhooks):
    endpoint = _endpoint(webhooks)
    for i in range(6):
        webhooks.publish(_event(f"evt_{i}", created=200.0 + i), [endpoint])
    other_catalog = Catalog(path)
    try:
        other = WebhookRepository(other_catalog)
        first = webhooks.claim_due(now=300.0, limit=4, lease_until=400.0)
        second = other.claim_due(now=300.0, limit=4, lease_until=400.0)
    finally:
        other_catalog.close()
    assert len(first) == 4 and len(second) == 2
    assert not {d.outbox_id for d in first} & {d.outbox_id for d in second}


def test_record_delivery_moves_rows_and_logs_every_attempt(webhooks):
    a = _endpoint(webhooks)
    for event_id in ("evt_ok", "evt_retry", "evt_fail"):
        webhooks.publish(_event(event_id), [a])
    due = {d.event_id: d for d in webhooks.claim_due(now=250.0, limit=10, lease_until=300.0)}
    webhooks.record_delivery(_attempt(due["evt_ok"], 251.0, 204), status="delivered", next_attempt=251.0)
    webhooks.record_delivery(_attempt(due["evt_retry"], 252.0, 503, "HTTP 503"), status="pending", next_attempt=262.0)
    webhooks.record_delivery(_attempt(due["evt_fail"], 253.0, 410, "HTTP 410"), status="failed", next_attempt=253.0)
    rows = {r.event_id: r for r in webhooks.outbox()}
    assert (rows["evt_ok"].status, rows["evt_ok"].attempts, rows["evt_ok"].delivered) == ("delivered", 1, 251.0)
    assert (rows["evt_retry"].status, rows["evt_retry"].next_attempt, rows["evt_retry"].last_error) == (
        "pending", 262.0, "HTTP 503")
    assert (rows["evt_fail"].status, rows["evt_fail"].delivered) == ("failed", None)
    assert webhooks.next_due() == 262.0, "the lease is released"
    assert webhooks.counts_by_status() == {"delivered": 1, "pending": 1, "failed": 1}
    assert webhooks.undelivered_count("evt_ok") == 0 and webhooks.undelivered_count("evt_retry") == 1
    webhooks.log_attempt(DeliveryAttempt(0, "evt_test_1", a, 1, 254.0, None, "refused", 0.5))
    log = webhooks.deliveries()
    assert [(d.event_id, d.outbox_id, d.status_code) for d in log] == [
        ("evt_test_1", 0, None), ("evt_fail", due["evt_fail"].outbox_id, 410),
        ("evt_retry", due["evt_retry"].outbox_id, 503), ("evt_ok", due["evt_ok"].outbox_id, 204)]
    assert [d.event_id for d in webhooks.deliveries(event_id="evt_ok")] == ["evt_ok"]
    assert len(webhooks.deliveries(endpoint_id=a, limit=2)) == 2
    assert webhooks.failed_attempts() == 3


def test_prune_and_remove_endpoint(webhooks):
    a, b = _endpoint(webhooks), _endpoint(webhooks, owner="tube")
    webhooks.publish(_event("evt_old", created=100.0), [a])
    webhooks.publish(_event("evt_new", created=500.0), [a, b])
    old = webhooks.claim_due(now=150.0, limit=1, lease_until=160.0)[0]
    webhooks.record_delivery(_attempt(old, 150.0, 200), status="delivered", next_attempt=150.0)
    assert webhooks.prune(400.0) == 1
    assert [r.event_id for r in webhooks.outbox()] == ["evt_new", "evt_new"] and webhooks.deliveries() == []
    webhooks.remove_endpoint(b)
    assert [r.endpoint_id for r in webhooks.outbox()] == [a]
    assert [e.id for e in webhooks.endpoints()] == [a]

"""Policies, allowlists, signatures and the durable webhook outbox against a real HTTP receiver."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time

import numpy as np
import pytest

from guard.actions import ActionCenter, action_for, allowlisted, sign, signature_header, verify_signature
from guard.config import Settings, WebhookSettings
from guard.errors import WebhookError
from guard.models import Reference
from guard.service import Guard
from guard.store import Catalog
from tests.live_helpers import WebhookReceiver, free_port, wait_until

SECRET = "s3cret"
FAST = WebhookSettings(backoff_initial=0.1, backoff_max=0.4, timeout=2.0, max_attempts=40)


def _reference(policy="flag", allowlist=()) -> Reference:
    return Reference(id=1, owner="league", title="Final", duration=10.0, policy=policy, min_seconds=2.0,
                     created="", source="", frames=10, allowlist=list(allowlist))


@pytest.fixture
def center(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    actions = ActionCenter(catalog, FAST, allow_private_addresses=True)
    yield actions
    actions.stop()
    catalog.close()


def test_policies_and_allowlists():
    assert action_for(_reference("flag"), "pirate") == "flag"
    assert action_for(_reference("cut"), "pirate") == "cut"
    licensed = _reference("cut", ["LeagueTV", "partner"])
    assert allowlisted(licensed, " leaguetv ") and action_for(licensed, "LEAGUETV") is None
    assert not allowlisted(licensed, "leaguetv2")


def test_signatures_verify_and_reject_tampering_replay_and_wrong_secret():
    body, ts = b'{"id":"evt_1"}', int(time.time())
    header = signature_header(SECRET, ts, body)
    assert header == "v1=" + sign(SECRET, ts, body)
    verify_signature(SECRET, str(ts), body, header)
    for args in [(SECRET, ts, body + b" ", header), ("other", ts, body, header), (SECRET, ts + 1, body, header),
                 (SECRET, ts, body, "v0=" + sign(SECRET, ts, body)), (SECRET, "x", body, header)]:
        with pytest.raises(WebhookError):
            verify_signature(*args)
    with pytest.raises(WebhookError, match="stale"):
        verify_signature(SECRET, ts - 3600, body, signature_header(SECRET, ts - 3600, body))


def test_endpoint_registry_validates_and_hides_secrets(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    strict = ActionCenter(catalog, FAST)
    try:
        with pytest.raises(WebhookError, match="http"):
            strict.add_endpoint("league", "ftp://example.com/hook")
        with pytest.raises(WebhookError, match="non-public"):
            strict.add_endpoint("league", "http://127.0.0.1:9/hook")
        with pytest.raises(WebhookError, match="unknown event"):
            strict.add_endpoint("league", "http://8.8.8.8/hook", events=["nope"])
        endpoint = strict.add_endpoint("league", "http://8.8.8.8/hook")
        assert len(endpoint.secret) >= 32 and endpoint.to_dict()["secret"].endswith("…")
        assert endpoint.to_dict(reveal_secret=True)["secret"] == endpoint.secret
        again = strict.add_endpoint("league", "http://8.8.8.8/hook", "new-secret")
        assert again.id == endpoint.id and again.secret == "new-secret"
        assert [e.id for e in strict.endpoints("league")] == [endpoint.id] and strict.endpoints("other") == []
        strict.remove_endpoint(endpoint.id)
        assert strict.endpoints() == []
    finally:
        catalog.close()


def test_events_reach_owner_platform_and_global_endpoints_only(center):
    with WebhookReceiver(SECRET) as league, WebhookReceiver(SECRET) as tube, \
            WebhookReceiver(SECRET) as everyone, WebhookReceiver(SECRET) as stranger:
        center.add_endpoint("league", league.url, SECRET)
        center.add_endpoint("tube", tube.url, SECRET, events=["stream.cut"])
        center.add_endpoint("*", everyone.url, SECRET)
        center.add_endpoint("studio", stranger.url, SECRET)
        flagged = center.publish("incident.flagged", owner="league", platform="tube", incident={"id": 1, "stream_id": "s"})
        cut = center.publish("stream.cut", owner="league", platform="tube", incident={"id": 2}, stream={"id": "s"})
        assert center.flush(10)
        assert set(league.events) == {flagged.id, cut.id}
        assert set(tube.events) == {cut.id}  # subscribed to stream.cut only
        assert set(everyone.events) == {flagged.id, cut.id}
        assert stranger.posts == 0
        body = league.events[cut.id]
        assert body["type"] == "stream.cut" and body["incident"] == {"id": 2} and body["stream"] == {"id": "s"}
        assert all(r.bad_signatures == 0 for r in (league, tube, everyone))
    delivered = center.outbox(status="delivered")
    assert len(delivered) == 5 and all(e.attempts == 1 for e in delivered)
    assert center.event(cut.id).to_dict()["body"]["id"] == cut.id
    assert [d.status_code for d in center.deliveries(event_id=flagged.id)] == [200, 200]


def test_receiver_down_then_up_gets_every_event_exactly_once(center):
    receiver = WebhookReceiver(SECRET)  # not listening yet: connections are refused
    center.add_endpoint("league", receiver.url, SECRET)
    sent = [center.publish("incident.flagged", owner="league", platform="p", incident={"id": i}) for i in range(5)]
    assert wait_until(lambda: len(center.deliveries()) >= 10, 10), "retried while the receiver was down"
    assert center.pending() == 5
    receiver.up()
    try:
        assert center.flush(10)
        assert set(receiver.events) == {e.id for e in sent}
        assert receiver.duplicates == 0 and receiver.posts == 5
    finally:
        receiver.down()
    failures = [d for d in center.deliveries(event_id=sent[0].id) if d.status_code != 200]
    assert failures and all(d.error for d in failures), "the log keeps the failed attempts"
    attempts = [d.at for d in sorted(center.deliveries(event_id=sent[0].id), key=lambda d: d.attempt)]
    gaps = np.diff(attempts)
    assert gaps[-1] >= gaps[0] * 0.9, "backoff grows between attempts"


def test_server_errors_are_retried_and_gone_endpoints_are_not(center):
    with WebhookReceiver(SECRET) as receiver:
        center.add_endpoint("league", receiver.url, SECRET)
        receiver.status = 503
        event = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 1})
        assert wait_until(lambda: receiver.posts >= 3, 10)
        receiver.status = 200
        assert center.wait_delivered(event.id, 10)
        assert list(receiver.events) == [event.id]
        receiver.status = 410
        gone = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 2})
        assert wait_until(lambda: center.outbox(event_id=gone.id)[0].status == "failed", 10)
        assert center.outbox(event_id=gone.id)[0].attempts == 1


def test_retry_limit_marks_failed(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    center = ActionCenter(catalog, WebhookSettings(backoff_initial=0.05, backoff_max=0.1, max_attempts=3, timeout=1),
                          allow_private_addresses=True)
    try:
        center.add_endpoint("league", f"http://127.0.0.1:{free_port()}/hook", SECRET)
        event = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 1})
        assert wait_until(lambda: center.outbox(event_id=event.id)[0].status == "failed", 10)
        assert center.outbox(event_id=event.id)[0].attempts == 3 and center.pending() == 0
    finally:
        center.stop()
        catalog.close()


def test_a_restart_of_guard_loses_no_event(tmp_path):
    settings = Settings(home=tmp_path / "home", allow_private_addresses=True, webhook=FAST)
    receiver = WebhookReceiver(SECRET)
    guard = Guard(settings)
    guard.actions.add_endpoint("league", receiver.url, SECRET)
    sent = [guard.actions.publish("stream.cut", owner="league", platform="p", incident={"id": i}) for i in range(3)]
    guard.close()  # guard stops with every event undelivered (the receiver is down)
    receiver.up()
    try:
        restarted = Guard(settings)
        try:
            assert restarted.actions.pending() == 3
            restarted.actions.start()
            assert restarted.actions.flush(10)
        finally:
            restarted.close()
        assert set(receiver.events) == {e.id for e in sent} and receiver.duplicates == 0
    finally:
        receiver.down()


def test_two_dispatchers_on_one_catalog_do_not_double_send(tmp_path):
    path = tmp_path / "shared.sqlite"
    catalogs = [Catalog(path), Catalog(path)]
    centers = [ActionCenter(c, FAST, allow_private_addresses=True) for c in catalogs]
    with WebhookReceiver(SECRET) as receiver:
        try:
            centers[0].add_endpoint("league", receiver.url, SECRET)
            for c in centers:
                c.start()
            sent = [centers[i % 2].publish("incident.flagged", owner="league", platform="p", incident={"id": i})
                    for i in range(20)]
            assert wait_until(lambda: len(receiver.events) == 20, 15)
            assert centers[0].flush(5)
            assert receiver.duplicates == 0 and receiver.posts == 20
            assert set(receiver.events) == {e.id for e in sent}
        finally:
            for c in centers:
                c.stop()
            for c in catalogs:
                c.close()


def test_settings_endpoint_is_registered_for_every_owner(tmp_path):
    with WebhookReceiver(SECRET) as receiver:
        settings = Settings(home=tmp_path / "home", allow_private_addresses=True,
                            webhook=WebhookSettings(url=receiver.url, secret=SECRET, backoff_initial=0.1))
        with Guard(settings) as guard:
            assert [e.owner for e in guard.actions.endpoints()] == ["*"]
            event = guard.actions.publish("incident.updated", owner="anyone", platform="p", incident={"id": 9})
            assert guard.actions.wait_delivered(event.id, 10)
        with Guard(settings) as again:  # registering is idempotent
            assert len(again.actions.endpoints()) == 1


# -- the address policy at every delivery (issue 16) ----------------------------------------------

HOOK_HOST = "hooks.example.test"  # no DNS here: a resolver passed to ActionCenter answers for it


class _HostRecorder(WebhookReceiver):
    """A receiver that also records the Host header of every request."""

    def __init__(self, secret: str):
        super().__init__(secret)
        self.hosts: list[str] = []

    def accept(self, headers, body: bytes) -> int:
        self.hosts.append(headers.get("Host"))
        return super().accept(headers, body)


class _Resolver:
    """Answers ``HOOK_HOST`` (and nothing else) from a script of answers; the last one repeats."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str):
        assert host == HOOK_HOST
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_an_endpoint_registered_while_private_addresses_were_allowed_gets_nothing_once_they_are_not(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    lenient = ActionCenter(catalog, FAST, allow_private_addresses=True)
    strict = ActionCenter(catalog, FAST)  # the same store after the setting was turned off
    try:
        with WebhookReceiver(SECRET) as receiver:
            endpoint = lenient.add_endpoint("league", receiver.url, SECRET)
            event = strict.publish("stream.cut", owner="league", platform="p", incident={"id": 1})
            assert wait_until(lambda: strict.outbox(event_id=event.id)[0].status == "failed", 10)
            [row] = strict.outbox(event_id=event.id)
            assert row.attempts == 1 and "refused by the address policy" in row.last_error
            [attempt] = strict.deliveries(event_id=event.id)
            assert attempt.status_code is None and "non-public address 127.0.0.1" in attempt.error
            with pytest.raises(WebhookError, match="non-public address 127.0.0.1"):
                strict.send_test(endpoint)
            assert len(strict.deliveries(endpoint_id=endpoint.id)) == 2  # the refused test is logged too
            assert receiver.posts == 0
            assert lenient.send_test(endpoint)["delivered"] and receiver.posts == 1
    finally:
        strict.stop()
        lenient.stop()
        catalog.close()


def test_a_host_rebound_to_a_private_address_after_registration_gets_nothing(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    resolver = _Resolver(["8.8.8.8"], ["127.0.0.1"])  # public when registered, loopback afterwards
    center = ActionCenter(catalog, FAST, resolver=resolver)
    try:
        with WebhookReceiver(SECRET) as receiver:
            center.add_endpoint("league", f"http://{HOOK_HOST}:{receiver.port}/hook", SECRET)
            assert resolver.calls == 1
            event = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 1})
            assert wait_until(lambda: center.outbox(event_id=event.id)[0].status == "failed", 10)
            assert receiver.posts == 0 and resolver.calls == 2
            [attempt] = center.deliveries(event_id=event.id)
            assert f"{HOOK_HOST}: resolves to the non-public address 127.0.0.1" in attempt.error
    finally:
        center.stop()
        catalog.close()


def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    # An attempt resolves once and connects to that checked answer: resolving again would give
    # 127.0.0.2, where nothing listens (and the system resolver knows no such host).
    with _HostRecorder(SECRET) as receiver:
        resolver = _Resolver(["127.0.0.1"], ["127.0.0.2"])
        center = ActionCenter(catalog, FAST, allow_private_addresses=True, resolver=resolver)
        try:
            center.add_endpoint("league", f"http://{HOOK_HOST}:{receiver.port}/hook?tenant=1", SECRET)
            event = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 1})
            assert center.wait_delivered(event.id, 10)
            assert resolver.calls == 1 and receiver.hosts == [f"{HOOK_HOST}:{receiver.port}"]
            assert list(receiver.events) == [event.id]
        finally:
            center.stop()
            catalog.close()


def test_a_host_that_does_not_resolve_is_retried_not_refused(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    with WebhookReceiver(SECRET) as receiver:
        down = OSError("Temporary failure in name resolution")
        resolver = _Resolver(down, down, ["127.0.0.1"])
        center = ActionCenter(catalog, FAST, allow_private_addresses=True, resolver=resolver)
        try:
            center.add_endpoint("league", f"http://{HOOK_HOST}:{receiver.port}/hook", SECRET)
            event = center.publish("incident.flagged", owner="league", platform="p", incident={"id": 1})
            assert center.wait_delivered(event.id, 10)
            errors = [d.error for d in sorted(center.deliveries(event_id=event.id), key=lambda d: d.attempt)]
            assert len(errors) == 3 and errors[2] is None
            assert all("cannot be resolved" in e for e in errors[:2])
            assert list(receiver.events) == [event.id]
        finally:
            center.stop()
            catalog.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A test CA and a certificate it signed for ``HOOK_HOST`` only (made by the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make test certificates")
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=guard test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", f"/CN={HOOK_HOST}")
    (folder / "leaf.ext").write_text(f"subjectAltName=DNS:{HOOK_HOST}\nbasicConstraints=CA:FALSE\n"
                                     "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return folder


class _TLSReceiver(_HostRecorder):
    """The receiver over TLS with ``leaf.pem``; records the SNI names clients send."""

    def __init__(self, secret: str, folder):
        super().__init__(secret)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
        self.context.sni_callback = lambda sock, name, context: self.server_names.append(name)
        self.server_names: list[str | None] = []

    def up(self, tls: ssl.SSLContext | None = None):
        return super().up(tls or self.context)


def test_https_deliveries_send_the_host_as_sni_and_verify_the_certificate_against_it(tmp_path, tls_files,
                                                                                    monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "ca.pem"))  # trust the test CA only
    catalog = Catalog(tmp_path / "c.sqlite")
    with _TLSReceiver(SECRET, tls_files) as receiver:
        center = ActionCenter(catalog, FAST, allow_private_addresses=True,
                              resolver=lambda host: ["127.0.0.1"])
        try:
            good = center.add_endpoint("league", f"https://{HOOK_HOST}:{receiver.port}/hook", SECRET)
            assert center.send_test(good)["delivered"]
            assert receiver.server_names == [HOOK_HOST] and receiver.hosts == [f"{HOOK_HOST}:{receiver.port}"]
            # The same server reached under a name its certificate does not carry: no POST.
            wrong = center.add_endpoint("league", f"https://127.0.0.1:{receiver.port}/hook", SECRET)
            result = center.send_test(wrong)
            assert not result["delivered"] and "certificate verify failed" in result["error"]
            assert receiver.posts == 1
        finally:
            center.stop()
            catalog.close()

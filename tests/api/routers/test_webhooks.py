"""Webhooks through the API: register per tenant, signed test event, deliveries of real events."""

from __future__ import annotations

import json


from guard.actions import verify_signature

from ..helpers import Receiver, scan_file, upload_reference


def test_register_test_event_and_deliveries(open_client, media):
    client, keys = open_client, open_client.keys
    with Receiver() as receiver:
        r = client.post("/v1/webhooks", headers=keys["nba"], json={"url": receiver.url})
        assert r.status_code == 201, r.text
        endpoint = r.json()
        secret = endpoint["secret"]
        assert len(secret) > 20 and endpoint["owner"] == "nba" and endpoint["events"] == ["*"]
        listed = client.get("/v1/webhooks", headers=keys["nba"]).json()["items"]
        assert [e["id"] for e in listed] == [endpoint["id"]] and secret not in json.dumps(listed)
        result = client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=keys["nba"]).json()
        assert result["delivered"] is True and result["status_code"] == 200
        headers, body = receiver.wait_for(1)[0]
        assert headers["Guard-Event-Type"] == "webhook.test" and json.loads(body)["id"] == result["event_id"]
        verify_signature(secret, headers["Guard-Timestamp"], body, headers["Guard-Signature"])

        upload_reference(client, media.reference, keys["nba"])
        scan_file(client, media.pirate, keys["yt"])
        headers, body = receiver.wait_for(2)[1]
        event = json.loads(body)
        assert event["type"] == "incident.flagged" and event["incident"]["owner"] == "nba"
        verify_signature(secret, headers["Guard-Timestamp"], body, headers["Guard-Signature"])
        client.app.state.guard.actions.wait_delivered(event["id"], 10)
        deliveries = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=keys["nba"]).json()
        assert [(d["event_id"], d["status"]) for d in deliveries["items"]] == [(event["id"], "delivered")]
        assert deliveries["attempts"][0]["status_code"] == 200


def test_failed_test_event_is_reported(open_client):
    client, keys = open_client, open_client.keys
    with Receiver(status=500) as receiver:
        endpoint = client.post("/v1/webhooks", headers=keys["yt"], json={"url": receiver.url, "secret": "s" * 20}).json()
        result = client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=keys["yt"]).json()
        assert (result["delivered"], result["status_code"], result["error"]) == (False, 500, "HTTP 500")
        attempts = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=keys["yt"]).json()["attempts"]
        assert (attempts[0]["event_id"], attempts[0]["status_code"]) == (result["event_id"], 500)


def test_webhooks_are_per_tenant(open_client):
    client, keys = open_client, open_client.keys
    endpoint = client.post("/v1/webhooks", headers=keys["nba"], json={"url": "http://127.0.0.1:9/hook"}).json()
    for path in (f"/v1/webhooks/{endpoint['id']}", f"/v1/webhooks/{endpoint['id']}/deliveries"):
        assert client.get(path, headers=keys["fifa"]).status_code == 404
        assert client.get(path, headers=keys["ops"]).status_code == 200
    assert client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=keys["yt"]).status_code == 404
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["fifa"]).status_code == 404
    assert client.get("/v1/webhooks", headers=keys["fifa"]).json() == {"items": []}
    assert client.post("/v1/webhooks", headers=keys["fifa"], json={"url": "http://127.0.0.1:9/", "owner": "nba"}).status_code == 403
    assert client.post("/v1/webhooks", headers=keys["ops"], json={"url": "http://127.0.0.1:9/x", "owner": "fifa"}).status_code == 201
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["nba"]).status_code == 204
    assert client.get(f"/v1/webhooks/{endpoint['id']}", headers=keys["nba"]).status_code == 404


def test_webhook_urls_are_checked(client, tenants):
    for body in ({"url": "ftp://example.com/x"}, {"url": "http://127.0.0.1:8080/hook"}, {"url": "http://10.1.2.3/"}):
        r = client.post("/v1/webhooks", headers=tenants.nba, json=body)
        assert r.status_code == 400, (body, r.text)
    for body in ({"url": "https://example.com/x", "secret": "short"}, {"url": "https://example.com/x", "events": ["x"]},
                 {"url": "https://example.com/x", "events": []}):
        assert client.post("/v1/webhooks", headers=tenants.nba, json=body).status_code == 422

"""Incidents through the API: created by scans, listed per tenant, evidence, review."""

from __future__ import annotations

import io

from PIL import Image

from ..helpers import upload_reference


def _scan(client, path, headers, account=None):
    data = {"account": account} if account else {}
    with open(path, "rb") as fh:
        r = client.post("/v1/scans", headers=headers, files={"file": (path.name, fh, "video/mp4")}, data=data)
    assert r.status_code == 202, r.text
    client.app.state.guard.jobs.wait(r.json()["id"], 60)
    return client.get(f"/v1/scans/{r.json()['id']}", headers=headers).json()


def test_a_scan_match_becomes_an_incident_with_evidence(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba, title="Final")
    job = _scan(client, media.pirate, tenants.yt, account="pirate-channel")
    [incident_id] = job["result"]["incidents"]
    incident = client.get(f"/v1/incidents/{incident_id}", headers=tenants.nba).json()
    assert (incident["reference_id"], incident["owner"], incident["platform"]) == (ref["id"], "nba", "yt")
    assert incident["stream_id"] == f"scan:{job['id']}" and incident["account"] == "pirate-channel"
    assert incident["status"] == "open" and incident["live"] is False
    assert incident["segments"] and abs(incident["reference_start"] - 2.0) < 0.6
    # the scanned file's frame, and the uploaded reference's keyframe kept at ingest
    assert sorted(e["kind"] for e in incident["evidence"]) == ["query", "reference"]
    for evidence in incident["evidence"]:
        r = client.get(evidence["url"], headers=tenants.yt)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(r.content)).size[0] > 0
    last = max(e["id"] for e in incident["evidence"])
    assert client.get(f"/v1/incidents/{incident_id}/evidence/{last + 99}", headers=tenants.nba).status_code == 404
    assert _scan(client, media.other, tenants.yt)["result"]["incidents"] == []


def test_incidents_are_listed_for_their_parties_only(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba)
    first = _scan(client, media.pirate, tenants.yt)
    _scan(client, media.pirate, tenants.twitch)
    assert client.get("/v1/incidents", headers=tenants.nba).json()["total"] == 2
    assert client.get("/v1/incidents", headers=tenants.admin).json()["total"] == 2
    yt = client.get("/v1/incidents", headers=tenants.yt).json()
    assert yt["total"] == 1 and yt["items"][0]["platform"] == "yt"
    assert client.get("/v1/incidents", headers=tenants.fifa).json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    by_stream = client.get("/v1/incidents", headers=tenants.nba, params={"stream_id": f"scan:{first['id']}"}).json()
    assert by_stream["total"] == 1
    assert client.get("/v1/incidents", headers=tenants.nba, params={"reference_id": ref["id"] + 1}).json()["total"] == 0
    assert client.get("/v1/incidents", headers=tenants.nba, params={"status": "confirmed"}).json()["total"] == 0
    assert client.get("/v1/incidents", headers=tenants.nba, params={"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0
    assert client.get("/v1/incidents", headers=tenants.nba, params={"until": "4102444800"}).json()["total"] == 2
    assert client.get("/v1/incidents", headers=tenants.nba, params={"since": "yesterday"}).status_code == 422
    assert client.get("/v1/incidents", headers=tenants.nba, params={"status": "new"}).status_code == 422


def test_review_confirm_and_dismiss_with_allowlisting(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba)
    [incident_id] = _scan(client, media.pirate, tenants.yt, account="Licensed-TV")["result"]["incidents"]
    assert client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.yt,
                       json={"action": "confirm"}).status_code == 403
    assert client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.fifa,
                       json={"action": "confirm"}).status_code == 404
    r = client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.nba, json={"action": "confirm", "note": "clear copy"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed" and r.json()["review_note"] == "clear copy"
    r = client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.nba,
                    json={"action": "dismiss", "allowlist_account": True})
    assert r.json()["status"] == "dismissed"
    assert client.get(f"/v1/references/{ref['id']}", headers=tenants.nba).json()["allowlist"] == ["Licensed-TV"]
    assert _scan(client, media.pirate, tenants.yt, account="licensed-tv")["result"]["incidents"] == []
    assert client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.nba, json={"action": "burn"}).status_code == 422


def test_confirm_applies_a_cut_policy_once(client, tenants, media):
    """A flagged incident confirmed after its reference became ``cut`` sends the takedown, once."""
    ref = upload_reference(client, media.reference, tenants.nba)
    [incident_id] = _scan(client, media.pirate, tenants.yt)["result"]["incidents"]
    guard = client.app.state.guard
    cuts = lambda: [e for e in guard.actions.events(incident_id=incident_id) if e.type == "stream.cut"]  # noqa: E731
    assert cuts() == []
    assert client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba, json={"policy": "cut"}).status_code == 200
    for _ in range(2):
        r = client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.nba, json={"action": "confirm"})
        assert r.status_code == 200
    [takedown] = cuts()
    assert (takedown.owner, takedown.platform) == ("nba", "yt")

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
    kinds = [e["kind"] for e in incident["evidence"]]
    assert kinds.count("query") >= 2 and kinds.count("reference") == kinds.count("query"), "pairs along the copy"
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


# -- ownership conflicts (issue 15) --------------------------------------------------------------


def test_two_owners_of_the_same_footage_share_one_conflict_incident(client, tenants, media, tmp_path):
    """The league's feed and a broadcaster's version of it (its logo, its encode):
    registering the second reports the overlap; a pirate copy makes one incident both owners
    see, marked as a conflict; a third rights holder sees nothing."""
    from guard_synth import broadcast as synth
    from guard_synth.encode import write_video

    from ..helpers import FPS, SIZE

    version = write_video(tmp_path / "version.mp4",
                          (synth.logo(f, "bl", 0.1, seed=3) for f in synth.broadcast(1, SIZE, FPS, 12)), FPS,
                          bit_rate=400_000)
    feed = upload_reference(client, media.reference, tenants.nba, title="Final (league feed)")
    with open(version, "rb") as fh:
        r = client.post("/v1/references", headers=tenants.fifa, files={"file": ("version.mp4", fh, "video/mp4")},
                        data={"title": "Final (broadcaster)"})
    job = client.app.state.guard.jobs.wait(r.json()["id"], 60)
    assert job.status == "done", job
    overlap = job.result["overlaps"]
    assert [(o["reference_id"], o["owner"]) for o in overlap] == [(feed["id"], "nba")]
    assert overlap[0]["end"] - overlap[0]["start"] > 8

    scan = _scan(client, media.pirate, tenants.yt, account="pirate-channel")
    [incident_id] = scan["result"]["incidents"]
    for owner in (tenants.nba, tenants.fifa):
        incident = client.get(f"/v1/incidents/{incident_id}", headers=owner).json()
        assert incident["conflict"] is True and sorted(incident["owners"]) == ["fifa", "nba"]
        assert client.get("/v1/incidents", headers=owner).json()["items"][0]["conflict"] is True
    uefa = {"Authorization": f"Bearer {client.app.state.guard.keys.create('rights_holder', 'uefa')[1]}"}
    assert client.get(f"/v1/incidents/{incident_id}", headers=uefa).status_code == 404
    assert client.get("/v1/incidents", headers=uefa).json()["total"] == 0
    # Each owner reviews for its own reference: the broadcaster's dismissal allowlists on its reference only.
    r = client.post(f"/v1/incidents/{incident_id}/review", headers=tenants.fifa,
                    json={"action": "dismiss", "allowlist_account": True})
    assert r.status_code == 200
    refs = {ref["owner"]: ref for ref in client.get("/v1/references", headers=tenants.admin).json()["items"]}
    assert refs["fifa"]["allowlist"] == ["pirate-channel"] and refs["nba"]["allowlist"] == []


def test_an_incidents_alignment_has_its_matched_frames_and_evidence_pairs(client, tenants, media):
    upload_reference(client, media.reference, tenants.nba, title="Final")
    [incident_id] = _scan(client, media.pirate, tenants.yt)["result"]["incidents"]
    alignment = client.get(f"/v1/incidents/{incident_id}/alignment", headers=tenants.nba).json()
    assert alignment["modality"] == "video" and alignment["segments"]
    for segment in alignment["segments"]:
        assert len(segment["matches"]) >= 8, "the matched frames the plot draws"
        for query_time, reference_time in segment["matches"]:
            assert segment["query_start"] - 1e-3 <= query_time <= segment["query_end"] + 1e-3
            expected = segment["reference_start"] + (query_time - segment["query_start"]) * segment["rate"]
            assert abs(reference_time - expected) < 0.6, "on the alignment line"
    shown = [p for p in alignment["pairs"] if p["query_url"]]
    assert len(shown) >= 2 and all(p["reference_url"] for p in shown)
    for url in (shown[0]["query_url"], shown[0]["reference_url"]):
        r = client.get(url, headers=tenants.nba)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    far = alignment["reference_end"] + 60
    assert client.get(f"/v1/incidents/{incident_id}/reference-frame", params={"at": far},
                      headers=tenants.nba).status_code == 404, "only pictures of the copied span"
    assert client.get(f"/v1/incidents/{incident_id}/alignment", headers=tenants.fifa).status_code == 404

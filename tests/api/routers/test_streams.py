"""Live streams through the API: start, status, incidents, stop, per-platform isolation."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from fastapi.testclient import TestClient

from guard.api import create_app

from guard_synth import broadcast as synth

from ...live_helpers import PacedPublisher, encode, free_port, wait_until
from ..helpers import FPS, SIZE, serve_folder, upload_reference


@pytest.fixture
def live(settings, media):
    """An app allowed to open loopback URLs, a media server, and keys."""
    with serve_folder(media.reference.parent) as base, \
            TestClient(create_app(settings.replace(allow_private_addresses=True))) as client:
        keys = client.app.state.guard.keys
        client.keys = {owner: {"Authorization": f"Bearer {keys.create(role, owner)[1]}"}
                       for role, owner in [("rights_holder", "nba"), ("platform", "yt"), ("platform", "twitch"),
                                           ("admin", "ops")]}
        client.base = base
        yield client


@pytest.mark.slow
def test_monitor_a_live_stream_and_read_its_incident(live, media, tmp_path):
    client, keys = live, live.keys
    # Live encoders send a keyframe every second; a stream joined mid-way needs them.
    pirate = encode(tmp_path / "live.mp4", (synth.logo(f) for f in synth.broadcast(1, SIZE, FPS, 8, start=2)), FPS)
    ref = upload_reference(client, media.reference, keys["nba"], min_seconds="3")
    port = free_port("udp")
    r = client.post("/v1/streams", headers=keys["yt"],
                    json={"url": f"udp://127.0.0.1:{port}", "account": "pirate-tv", "stream_id": "live-7"})
    assert r.status_code == 201, r.text
    stream = r.json()
    assert stream["stream_id"] == "live-7" and stream["platform"] == "yt" and stream["id"].endswith(":live-7")
    assert r.headers["location"] == f"/v1/streams/{stream['id']}"
    path = f"/v1/streams/{stream['id']}"
    with PacedPublisher(pirate, f"udp://127.0.0.1:{port}", "mpegts"):
        assert wait_until(lambda: client.get(path, headers=keys["yt"]).json()["incidents"] >= 1, 30)
        frame = client.get(f"{path}/frame", headers=keys["yt"])
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(frame.content)).size[0] > 0, "the latest frame read"
        assert client.get(f"{path}/frame", headers=keys["twitch"]).status_code == 404
    got = client.get(path, headers=keys["yt"]).json()
    assert got["status"] in ("live", "reconnecting") and got["active"] and got["frames"] > 10
    assert client.post("/v1/streams", headers=keys["yt"],
                       json={"url": f"udp://127.0.0.1:{port}", "account": "x", "stream_id": "live-7"}).status_code == 409
    incidents = client.get("/v1/incidents", headers=keys["yt"], params={"stream_id": stream["id"]}).json()
    assert [i["reference_id"] for i in incidents["items"]] == [ref["id"]]
    assert client.get("/v1/incidents", headers=keys["nba"]).json()["total"] == 1
    assert client.get("/v1/incidents", headers=keys["twitch"]).json()["total"] == 0
    assert [s["id"] for s in client.get("/v1/streams", headers=keys["yt"]).json()["items"]] == [stream["id"]]
    stopped = client.post(f"{path}/stop", headers=keys["yt"]).json()
    assert stopped["status"] == "stopped" and stopped["active"] is False
    assert client.post(f"{path}/stop", headers=keys["yt"]).json()["status"] == "stopped"
    assert client.get(f"{path}/frame", headers=keys["yt"]).status_code == 404, "no longer monitored"


def test_streams_are_per_platform(live):
    client, keys = live, live.keys
    mine = client.post("/v1/streams", headers=keys["yt"],
                       json={"url": f"{client.base}/other.mp4", "account": "a", "stream_id": "same"}).json()
    theirs = client.post("/v1/streams", headers=keys["twitch"],
                         json={"url": f"{client.base}/other.mp4", "account": "b", "stream_id": "same"})
    assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]  # same platform id, no clash
    assert client.get(f"/v1/streams/{mine['id']}", headers=keys["twitch"]).status_code == 404
    assert client.post(f"/v1/streams/{mine['id']}/stop", headers=keys["twitch"]).status_code == 404
    assert client.get(f"/v1/streams/{mine['id']}", headers=keys["ops"]).status_code == 200
    assert client.get("/v1/streams", headers=keys["nba"]).status_code == 403
    assert {s["platform"] for s in client.get("/v1/streams", headers=keys["ops"]).json()["items"]} == {"yt", "twitch"}
    assert client.get("/v1/streams", headers=keys["twitch"], params={"platform": "yt"}).json()["items"] == []
    stopped = client.post(f"/v1/streams/{mine['id']}/stop", headers=keys["yt"]).json()
    assert stopped["active"] is False


@pytest.mark.parametrize("body", [{"url": "file:///etc/passwd", "account": "a"}, {"url": "/dev/zero", "account": "a"},
                                  {"url": "rtmp://10.0.0.1/live", "account": "a"}])
def test_stream_urls_obey_the_policy(client, tenants, body):
    r = client.post("/v1/streams", headers=tenants.yt, json=body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["status"] == r.status_code


def test_stream_body_is_validated(client, tenants):
    for body in ({"url": "rtmp://a.example/live"}, {"account": "a"},
                 {"url": "rtmp://a.example/live", "account": "a", "stream_id": "has:colon"},
                 {"url": "rtmp://a.example/live", "account": "a", "stream_id": "x" * 81}):
        assert client.post("/v1/streams", headers=tenants.yt, json=body).status_code == 422

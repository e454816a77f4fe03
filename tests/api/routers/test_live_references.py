"""Live references through the API: a rights holder starts one on a feed, a platform's monitored
restream raises an incident that carries the aired moment and the delay, the owner ends it and
exports it; other tenants, other roles and hostile URLs are refused."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from guard_synth import broadcast as synth

from ...live_helpers import PacedPublisher, encode, free_port, udp_port_bound, wait_until
from ..helpers import FPS, SIZE


def _start(client: TestClient, headers: dict, **body) -> dict:
    r = client.post("/v1/references/live", headers=headers, json={"title": "Game 7 (live)", **body})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/references/{r.json()['id']}"
    return r.json()


@pytest.mark.slow
def test_a_live_reference_started_by_api_catches_a_restream_with_its_delay(open_client, tmp_path):
    client, keys = open_client, open_client.keys
    feed = encode(tmp_path / "feed.ts", synth.broadcast(31, SIZE, FPS, 24), FPS)
    restream = encode(tmp_path / "restream.ts", (synth.logo(f, "tr") for f in synth.broadcast(31, SIZE, FPS, 24)), FPS)
    feed_port, pirate_port = free_port("udp"), free_port("udp")
    ref = _start(client, keys["nba"], url=f"udp://127.0.0.1:{feed_port}", policy="cut", min_seconds=3)
    assert (ref["live_status"], ref["owner"], ref["policy"]) == ("live", "nba", "cut")
    r = client.post("/v1/streams", headers=keys["yt"],
                    json={"url": f"udp://127.0.0.1:{pirate_port}", "account": "pirate-tv", "stream_id": "p1"})
    assert r.status_code == 201, r.text
    assert wait_until(lambda: udp_port_bound(feed_port) and udp_port_bound(pirate_port), 30)

    with PacedPublisher(feed, f"udp://127.0.0.1:{feed_port}") as feed_publisher:
        assert wait_until(lambda: feed_publisher.started_wall is not None, 10)
        time.sleep(max(0.0, feed_publisher.started_wall + 6.0 - time.time()))
        with PacedPublisher(restream, f"udp://127.0.0.1:{pirate_port}") as pirate_publisher:
            assert wait_until(lambda: client.get("/v1/incidents", headers=keys["yt"]).json()["total"] >= 1, 30)
            offset = pirate_publisher.started_wall - feed_publisher.started_wall
            aired = client.get(f"/v1/references/{ref['id']}", headers=keys["nba"]).json()
            assert aired["live_status"] == "live" and aired["duration"] > 3

    (summary,) = client.get("/v1/incidents", headers=keys["nba"]).json()["items"]
    incident = client.get(f"/v1/incidents/{summary['id']}", headers=keys["nba"]).json()
    assert summary["reference_id"] == incident["reference_id"] == ref["id"]
    assert summary["delay"] == incident["delay"] == pytest.approx(offset, abs=1.0)
    assert summary["aired_at"] == incident["aired_at"]
    assert datetime.fromisoformat(incident["aired_at"]).timestamp() == pytest.approx(feed_publisher.started_wall, abs=2.0)
    assert client.get("/v1/incidents", headers=keys["fifa"]).json()["total"] == 0

    assert client.post(f"/v1/references/{ref['id']}/end", headers=keys["fifa"]).status_code == 404
    ended = client.post(f"/v1/references/{ref['id']}/end", headers=keys["nba"])
    assert ended.status_code == 200, ended.text
    assert ended.json()["live_status"] == "ended" and ended.json()["duration"] > 5
    again = client.post(f"/v1/references/{ref['id']}/end", headers=keys["nba"])
    assert again.status_code == 409 and again.json()["error"]["status"] == 409
    exported = client.get(f"/v1/references/{ref['id']}/export", headers=keys["nba"])
    assert exported.status_code == 200
    assert json.loads(exported.content)["title"] == "Game 7 (live)"


def test_ending_a_feed_that_never_aired_leaves_a_failed_reference(open_client):
    client, keys = open_client, open_client.keys
    port = free_port("udp")
    ref = _start(client, keys["nba"], url=f"udp://127.0.0.1:{port}", retain_hours=6)
    assert ref["live_status"] == "live"
    assert client.get(f"/v1/references/{ref['id']}", headers=keys["fifa"]).status_code == 404
    assert ref["id"] not in [r["id"] for r in client.get("/v1/references", headers=keys["fifa"]).json()["items"]]
    ended = client.post(f"/v1/references/{ref['id']}/end", headers=keys["nba"]).json()
    assert ended["live_status"] in ("failed", "ended")
    assert client.post(f"/v1/references/{ref['id']}/end", headers=keys["nba"]).status_code == 409
    assert client.post("/v1/references/999999/end", headers=keys["nba"]).status_code == 404


def test_only_rights_holders_start_live_references(open_client):
    client, keys = open_client, open_client.keys
    body = {"url": f"udp://127.0.0.1:{free_port('udp')}", "title": "x"}
    assert client.post("/v1/references/live", headers=keys["yt"], json=body).status_code == 403
    assert client.post("/v1/references/live", json=body).status_code == 401


@pytest.mark.parametrize("url", ["file:///etc/passwd", "concat:/a.ts|/b.ts", "/dev/zero", "subfile:,,start,0,end,0,,:x",
                                 "pipe:0", "gopher://example.com/x"])
def test_hostile_feed_urls_are_refused_before_anything_is_stored(open_client, url):
    client, keys = open_client, open_client.keys
    r = client.post("/v1/references/live", headers=keys["nba"], json={"url": url, "title": "x"})
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["status"] == r.status_code
    assert client.get("/v1/references", headers=keys["nba"]).json()["total"] == 0


def test_private_feed_addresses_are_refused_unless_allowed(client, tenants):
    # (udp:// to an address of this machine is a bind, not a connection: allowed, as for streams)
    for url in ("rtmp://10.0.0.1/live", "srt://192.168.1.4:9000", "http://127.0.0.1:8080/feed.m3u8",
                "rtmp://[::1]/live", "udp://10.1.2.3:5000"):
        r = client.post("/v1/references/live", headers=tenants.nba, json={"url": url, "title": "x"})
        assert r.status_code in (400, 422), (url, r.text)
    assert client.get("/v1/references", headers=tenants.nba).json()["total"] == 0


def test_live_reference_body_is_validated(open_client):
    client, keys = open_client, open_client.keys
    url = f"udp://127.0.0.1:{free_port('udp')}"
    for body in ({"url": url}, {"title": "x"}, {"url": url, "title": "x", "unknown": 1},
                 {"url": url, "title": "x", "retain_hours": 0}, {"url": url, "title": "x", "max_seconds": 0.5},
                 {"url": url, "title": "x", "policy": "delete"}, {"url": "", "title": "x"}):
        r = client.post("/v1/references/live", headers=keys["nba"], json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.get("/v1/references", headers=keys["nba"]).json()["total"] == 0

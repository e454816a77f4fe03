"""Scans through the API: uploaded files and URLs (under the stream URL policy) as jobs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from guard.api import create_app
from guard.regions import overlap
from guard_synth import broadcast as synth
from guard_synth import layouts
from guard_synth.encode import write_video

from ..helpers import FPS, SIZE, scan_file, serve_folder, upload_reference, wait_job


@pytest.fixture
def media_server(media):
    """A real HTTP server on loopback serving the test videos."""
    with serve_folder(media.reference.parent) as url:
        yield url


def test_scan_upload_finds_the_copy_with_its_location(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba, title="Final")
    job = scan_file(client, media.pirate, tenants.yt)
    assert job["kind"] == "scan" and job["status"] == "done" and job["progress"] == 1.0
    [m] = job["result"]["matches"]
    assert (m["reference_id"], m["reference_title"]) == (ref["id"], "Final")
    assert m["query_start"] < 0.5 and m["query_end"] > 7.5 and abs(m["reference_start"] - 2.0) < 0.6
    assert client.get(f"/v1/scans/{job['id']}", headers=tenants.yt).json() == job
    clean = scan_file(client, media.other, tenants.yt)
    assert clean["status"] == "done" and clean["result"]["matches"] == []
    listed = client.get("/v1/scans", headers=tenants.yt).json()
    assert [j["id"] for j in listed["items"]] == [clean["id"], job["id"]] and listed["total"] == 2
    assert client.get("/v1/scans", headers=tenants.yt, params={"status": "failed"}).json()["total"] == 0


def test_scan_of_a_broken_file_fails_with_a_message(client, tenants):
    r = client.post("/v1/scans", headers=tenants.yt, files={"file": ("x.mp4", b"\0" * 5000, "video/mp4")})
    job = wait_job(client, r.json()["id"], tenants.yt)
    assert job["status"] == "failed" and job["error"].startswith("x.mp4: ") and "uploads" not in job["error"]


def test_scan_url_over_http(settings, media, media_server):
    with TestClient(create_app(settings.replace(allow_private_addresses=True))) as client:
        keys = client.app.state.guard.keys
        nba = {"Authorization": f"Bearer {keys.create('rights_holder', 'nba')[1]}"}
        yt = {"Authorization": f"Bearer {keys.create('platform', 'yt')[1]}"}
        ref = upload_reference(client, media.reference, nba)
        r = client.post("/v1/scans/url", headers=yt, json={"url": f"{media_server}/pirate.mp4?token=secret"})
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/scans/{r.json()['id']}"
        job = wait_job(client, r.json()["id"], yt)
        assert job["status"] == "done", job
        assert [m["reference_id"] for m in job["result"]["matches"]] == [ref["id"]]
        assert "secret" not in job["result"]["path"] and job["result"]["truncated"] is False
        assert "secret" not in str(job["params"]) and job["params"]["url"] == f"{media_server}/pirate.mp4"
        missing = wait_job(client, client.post("/v1/scans/url", headers=yt,
                                               json={"url": f"{media_server}/nothing.mp4?key=secret"}).json()["id"], yt)
        assert missing["status"] == "failed" and "nothing.mp4" in missing["error"]
        assert "secret" not in missing["error"]


def test_scan_url_reads_windows_and_obeys_match_policies(settings, media, media_server):
    # The game in a window of a streamer's layout, served over HTTP: found in its window, as a
    # scanned file's would be; a reference matched by its sound only is not reported from the picture.
    layout = layouts.streamer_layout(0.4, "bl", 3, SIZE)
    frames = layouts.map_frames(layout, synth.broadcast(1, SIZE, FPS, 10, start=1), FPS)
    write_video(media.reference.parent / "layout.mp4", frames, FPS)
    with TestClient(create_app(settings.replace(allow_private_addresses=True))) as client:
        keys = client.app.state.guard.keys
        nba = {"Authorization": f"Bearer {keys.create('rights_holder', 'nba')[1]}"}
        yt = {"Authorization": f"Bearer {keys.create('platform', 'yt')[1]}"}
        ref = upload_reference(client, media.reference, nba)

        def matches(name: str) -> list[dict]:
            r = client.post("/v1/scans/url", headers=yt, json={"url": f"{media_server}/{name}"})
            job = wait_job(client, r.json()["id"], yt)
            assert job["status"] == "done", job
            return job["result"]["matches"]

        [m] = matches("layout.mp4")
        assert (m["reference_id"], m["modality"]) == (ref["id"], "video-region")
        # (a window needs 2 s of frames to be found)
        assert m["query_start"] < 2.5 and m["query_end"] > 8.5
        x0, y0, x1, y1 = layout.box
        truth = (y0 / SIZE[1], y1 / SIZE[1], x0 / SIZE[0], x1 / SIZE[0])
        left, top, right, bottom = m["region"]
        assert overlap((top, bottom, left, right), truth) >= 0.8
        assert client.patch(f"/v1/references/{ref['id']}", headers=nba, json={"match": "audio"}).status_code == 200
        assert matches("pirate.mp4") == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "concat:/a|/b", "gopher://example.com/",
                                 "http://127.0.0.1:9/x.mp4", "http://10.0.0.1/x.mp4", "http:///nohost"])
def test_scan_url_obeys_the_stream_url_policy(client, tenants, url):
    r = client.post("/v1/scans/url", headers=tenants.yt, json={"url": url})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert client.get("/v1/scans", headers=tenants.yt).json()["total"] == 0


def test_scan_url_body_is_validated(client, tenants):
    for body in ({}, {"url": ""}, {"url": "x" * 3000}, {"url": "https://a.b/c", "extra": 1}, []):
        assert client.post("/v1/scans/url", headers=tenants.yt, json=body).status_code == 422

"""End to end: `guard keys create` and `guard serve` (real uvicorn on 127.0.0.1) in subprocesses;
a rights holder uploads a reference, a platform scans a pirated copy, both read the incident."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx2 as httpx
import pytest

from ..live_helpers import free_port

#: A real server process over HTTP.
pytestmark = pytest.mark.slow


#: The ``guard`` command, run by this interpreter (whatever the PATH holds).
GUARD = [sys.executable, "-c", "from guard.cli import main; main()"]


def _guard(home, *args) -> str:
    out = subprocess.run([*GUARD, "--home", str(home), *args],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


@pytest.fixture
def server(tmp_path):
    """`guard serve` on a free loopback port; yields (base URL, store folder); stopped at the end."""
    home = tmp_path / "store"
    port = free_port()
    env = {**os.environ, "GUARD_UPLOAD_MAX_BYTES": str(8 * 1024 * 1024)}
    process = subprocess.Popen([*GUARD, "--home", str(home), "serve",
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        yield base, home
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        process.stdout.close()


def _wait_job(client, path, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(path).raise_for_status().json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_upload_scan_and_read_the_incident_over_http(server, media):
    base, home = server
    nba_key = _guard(home, "keys", "create", "--role", "rights_holder", "--owner", "nba")
    yt_key = _guard(home, "keys", "create", "--role", "platform", "--owner", "yt")
    assert "nba" in _guard(home, "keys", "list")
    nba = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {nba_key}"}, timeout=30)
    yt = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {yt_key}"}, timeout=30)
    with nba, yt:
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "guard"
        assert httpx.get(f"{base}/v1/references").status_code == 401
        with open(media.reference, "rb") as fh:
            r = nba.post("/v1/references", files={"file": ("final.mp4", fh, "video/mp4")},
                         data={"title": "Cup final", "policy": "cut"})
        assert r.status_code == 202, r.text
        ingest = _wait_job(nba, r.headers["location"])
        assert ingest["status"] == "done", ingest
        ref = ingest["result"]["reference"]

        with open(media.pirate, "rb") as fh:
            r = yt.post("/v1/scans", files={"file": ("upload-123.mp4", fh, "video/mp4")}, data={"account": "uploader9"})
        scan = _wait_job(yt, r.headers["location"])
        assert scan["status"] == "done", scan
        [match] = scan["result"]["matches"]
        assert match["reference_id"] == ref["id"] and abs(match["offset"] - 2.0) < 0.6

        [incident_id] = scan["result"]["incidents"]
        incident = nba.get(f"/v1/incidents/{incident_id}").json()
        assert (incident["reference_title"], incident["account"], incident["platform"]) == ("Cup final", "uploader9", "yt")
        assert yt.get(f"/v1/incidents/{incident_id}").json()["id"] == incident_id
        jpeg = nba.get(incident["evidence"][0]["url"])
        assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
        reviewed = nba.post(f"/v1/incidents/{incident_id}/review", json={"action": "confirm"}).json()
        assert reviewed["status"] == "confirmed"
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {nba_key}"})
        assert metrics.status_code == 403
